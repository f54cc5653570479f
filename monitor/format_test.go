package monitor

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, `{"seconds":0}`},
		{400 * time.Nanosecond, `{"seconds":0}`},
		{1500 * time.Millisecond, `{"seconds":1.5}`},
		{50*time.Millisecond + 263049*time.Nanosecond, `{"seconds":0.050263}`},
		{time.Minute, `{"minutes":1}`},
		{90 * time.Minute, `{"hours":1,"minutes":30}`},
		{26*time.Hour + 2*time.Second, `{"days":1,"hours":2,"seconds":2}`},
		{-2 * time.Second, `{"seconds":-2}`},
	} {
		b, err := json.Marshal(duration(tc.d))
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.d, b, err, tc.want)
		}
	}
}

func TestTimestampJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2006, 8, 10, 17, 44, 22, 211_999, time.FixedZone("CEST", 2*3600))
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, `null`},
		{at, `"2006-08-10T15:44:22.000211Z"`},
	} {
		b, err := json.Marshal(timestamp(tc.t))
		if err != nil || string(b) != tc.want {
			t.Errorf("%v: %s, %v; want %s", tc.t, b, err, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		key  int64
		want time.Time
		err  string
	}{
		{in: "7", key: 7},
		{in: "5M", want: now.Add(-5 * time.Minute)},
		{in: "1h30m", want: now.Add(-90 * time.Minute)},
		{in: "2D3H4M5S", want: now.Add(-(51*time.Hour + 4*time.Minute + 5*time.Second))},
		{in: "1.5S", want: now.Add(-1500 * time.Millisecond)},
		{in: "0S", want: now},
		{in: "2026-01-01T00:00:00Z", want: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2026-01-01T01:00:00.5+01:00", want: time.Date(2026, 1, 1, 0, 0, 0, 5e8, time.UTC)},
		{in: "", err: "empty"},
		{in: "0", err: "start at 1"},
		{in: "-3", err: "start at 1"},
		{in: "5X", err: "neither"},
		{in: "M5", err: "neither"},
		{in: "1.5M", err: "neither"},
		{in: "99999999999D", err: "too long"},
		{in: "99999999999999999999H", err: "too long"},
		// The zero time means "no bound" to the runtime: naming it, or earlier, is an error.
		{in: "0001-01-01T00:00:00Z", err: "out of range"},
		{in: "0000-12-31T23:00:00-01:00", err: "out of range"},
		{in: "0000-06-01T00:00:00Z", err: "out of range"},
		{in: "0001-01-01T00:00:00.000001Z", want: time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)},
	} {
		got, err := parseTime(tc.in, now)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %+v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.key != 0:
			if !got.isKey || got.key != tc.key {
				t.Errorf("%q: %+v, want poll key %d", tc.in, got, tc.key)
			}
		case got.isKey || !got.time.Equal(tc.want):
			t.Errorf("%q: %+v, want %s", tc.in, got, tc.want)
		}
	}
}
