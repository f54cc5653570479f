package persistence

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Ticks of cron expressions (five and six fields, descriptors, zones) and intervals, from a
// fixed time: Next is the first tick after a time, Latest the newest at or before it.
func TestScheduleTicks(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	now := at("2026-03-28T23:30:17Z") // the night before Paris moves to summer time
	for _, tc := range []struct {
		spec         string
		loc          *time.Location
		next, latest string
		str          string
	}{
		{"* * * * * *", nil, "2026-03-28T23:30:18Z", "2026-03-28T23:30:17Z", "* * * * * *"},
		{"*/5 * * * * *", nil, "2026-03-28T23:30:20Z", "2026-03-28T23:30:15Z", "*/5 * * * * *"},
		{"0 * * * *", nil, "2026-03-29T00:00:00Z", "2026-03-28T23:00:00Z", "0 * * * *"},
		{"@daily", nil, "2026-03-29T00:00:00Z", "2026-03-28T00:00:00Z", "@daily"},
		{"30 2 * * *", paris, "2026-03-30T00:30:00Z", "2026-03-28T01:30:00Z", "CRON_TZ=Europe/Paris 30 2 * * *"}, // 02:30 does not exist on the 29th in Paris
		{"CRON_TZ=Europe/Paris 0 9 * * 1-5", nil, "2026-03-30T07:00:00Z", "2026-03-27T08:00:00Z", "CRON_TZ=Europe/Paris 0 9 * * 1-5"},
		{"TZ=UTC 0 0 1 1 *", paris, "2027-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "TZ=UTC 0 0 1 1 *"},
		{"@every 1s", nil, "2026-03-28T23:30:18Z", "2026-03-28T23:30:17Z", "@every 1s"},
		{"@every 90s", nil, "2026-03-28T23:31:30Z", "2026-03-28T23:30:00Z", "@every 1m30s"},
		{"@every 1h", paris, "2026-03-29T00:00:00Z", "2026-03-28T23:00:00Z", "@every 1h0m0s"},
	} {
		s, err := ParseSchedule(tc.spec, tc.loc)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if got := s.Next(now); !got.Equal(at(tc.next)) {
			t.Errorf("%q: next %s, want %s", tc.spec, got, tc.next)
		}
		if got := s.Latest(now); !got.Equal(at(tc.latest)) {
			t.Errorf("%q: latest %s, want %s", tc.spec, got, tc.latest)
		}
		if got := s.Latest(at(tc.latest)); !got.Equal(at(tc.latest)) {
			t.Errorf("%q: latest at a tick %s, want the tick", tc.spec, got)
		}
		if s.String() != tc.str {
			t.Errorf("%q: String %q, want %q", tc.spec, s.String(), tc.str)
		}
		// What String gives parses, with no zone given, to the same ticks: the spec is
		// what other processes and listings read.
		again, err := ParseSchedule(s.String(), nil)
		if err != nil || !again.Next(now).Equal(s.Next(now)) {
			t.Errorf("%q: reparsed %q: %v", tc.spec, s.String(), err)
		}
	}
}

// An interval's ticks are multiples of it since the Unix epoch: every process computes the
// same ones, whenever it started.
func TestIntervalTicksAnchoredToEpoch(t *testing.T) {
	t.Parallel()
	s, err := ParseSchedule("@every 7s", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []time.Time{time.Unix(1_800_000_003, 0), time.Unix(1_800_000_005, 999), time.Unix(1_800_000_000, 0)} {
		n := s.Next(from)
		if n.Unix()%7 != 0 || !n.After(from) || n.Sub(from) > 7*time.Second {
			t.Errorf("next after %s: %s", from, n)
		}
	}
}

// A cron expression that never matches has no ticks.
func TestScheduleWithoutTicks(t *testing.T) {
	t.Parallel()
	s, err := ParseSchedule("0 0 30 2 *", nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if !s.Next(now).IsZero() || !s.Latest(now).IsZero() {
		t.Errorf("February 30th: next %s, latest %s", s.Next(now), s.Latest(now))
	}
}

// Bad schedules, names and policies are ErrInvalid, in one line.
func TestScheduleBadInput(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", "  ", "* * *", "61 * * * *", "@every", "@every 0s", "@every -1m", "@every 1500ms",
		"@every soon", "@fortnightly", "CRON_TZ=Nowhere/Town * * * * *", "TZ=Local 0 * * * *", "* * * * * * *"} {
		_, err := ParseSchedule(spec, nil)
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line wrapping ErrInvalid", spec, err)
		}
	}
	for _, name := range []string{"", "a b", "a:b", "{x}", strings.Repeat("n", MaxScheduleNameLen+1)} {
		if err := ValidateScheduleName(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q: %v, want ErrInvalid", name, err)
		}
	}
	if err := Missed("always").Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("missed policy: %v", err)
	}
}

// A tick's job id names its schedule and its tick, and is a valid job id.
func TestTickJobID(t *testing.T) {
	t.Parallel()
	tick := time.Date(2026, 12, 7, 21, 0, 5, 0, time.FixedZone("x", 3600))
	name := strings.Repeat("n.", MaxScheduleNameLen/2)[:MaxScheduleNameLen]
	id := TickJobID(name, tick)
	if err := ValidateName("job id", id); err != nil {
		t.Fatal(err)
	}
	if got := TickJobID("s", tick); got != "tick.s.20261207T200005Z" {
		t.Errorf("id %q", got)
	}
	n, at, ok := ParseTickJobID(id)
	if !ok || n != name || !at.Equal(tick) {
		t.Errorf("parsed %q %s %v", n, at, ok)
	}
	for _, bad := range []string{"0190aa", "tick.", "tick.s", "tick.s.2026", ".tick.s.20261207T200005Z"} {
		if _, _, ok := ParseTickJobID(bad); ok {
			t.Errorf("%q parsed as a tick job id", bad)
		}
	}
}
