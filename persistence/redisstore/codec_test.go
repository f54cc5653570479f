package redisstore

import (
	"encoding/json"
	"log/slog"
	"maps"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zasync/zasync/persistence"
)

// encodeJob and decodeJob are inverses: whatever a job holds comes back from Redis unchanged.
func FuzzCodecRoundTrip(f *testing.F) {
	f.Add("h", `[1,"a"]`, uint8(3), int64(2), "d1", "main", int64(1700000000000000), int64(3600000000), "q1", `{"x":1}`, "Boom", "trace", "cb1", true, 8)
	f.Add("zasync.fail", `null`, uint8(0), int64(0), "", "", int64(0), int64(0), "", ``, "", "", "", false, 0)
	f.Add("plain", `1`, uint8(1), int64(1), "", "", int64(0), int64(0), "", ``, "00-abc-01", "x", "", false, 1)
	f.Fuzz(func(t *testing.T, handler, arg string, status uint8, attempt int64, disp, agent string,
		beginAfter, beginBy int64, quota, result, failType, stack, callback string, parked bool, level int) {
		if !json.Valid([]byte(arg)) || (result != "" && !json.Valid([]byte(result))) {
			t.Skip()
		}
		// What the store would refuse (names) or NewFailure would have made valid (texts).
		for _, s := range []string{handler, quota, failType, stack, callback} {
			if !utf8.ValidString(s) {
				t.Skip()
			}
		}
		j := &persistence.Job{
			Ref:             persistence.Ref{Queue: "q", ID: "id"},
			Call:            persistence.Call{Handler: handler, Args: []json.RawMessage{json.RawMessage(arg)}},
			Status:          persistence.Status(status % 6),
			Attempt:         attempt,
			BeginBy:         time.Duration(beginBy) * time.Microsecond,
			Timeout:         time.Duration(beginBy/7) * time.Microsecond,
			RetryPolicy:     persistence.RetryCommonFourTimesName,
			FailureLogLevel: slog.Level(level),
			Parked:          parked,
			// Every priority, the default (not stored) among them.
			Priority: persistence.MinPriority + int(uint64(attempt)%uint64(persistence.MaxPriority)),
		}
		if level%2 != 0 { // a call of no arguments, with metadata
			j.Call = persistence.Call{Handler: handler, Meta: map[string]string{"k": stack, "traceparent": failType}}
		}
		if disp != "" && agent != "" && validName(disp) && validName(agent) {
			j.Owner = persistence.Owner{Dispatcher: disp, Agent: agent}
			j.Holder = j.Owner
		}
		if beginAfter != 0 {
			j.BeginAfter = time.UnixMicro(beginAfter).UTC()
		}
		// The common values that are not stored, and others.
		if attempt%2 == 0 {
			j.Created = j.BeginAfter
		} else {
			j.Created = time.UnixMicro(1700000000000000).UTC()
		}
		if status%2 == 1 {
			j.RetryPolicy = persistence.NeverRetryName
		}
		// Completion times: none, as the run ended (not stored), later (callbacks), and a
		// completion without a run's end.
		ended := time.UnixMicro(1700000000000000).UTC().Add(time.Second)
		switch (attempt%4 + 4) % 4 {
		case 1:
			j.ActiveEnd, j.Completed = ended, ended
		case 2:
			j.ActiveEnd, j.Completed = ended, ended.Add(time.Second)
		case 3:
			j.ActiveEnd = ended
		}
		if beginBy%3 == 0 {
			j.ActiveEnd = time.Time{}
		}
		if quota != "" {
			j.QuotaNames = []string{quota}
		}
		if result != "" {
			j.Result = json.RawMessage(result)
		}
		if failType != "" {
			j.Failure = &persistence.Failure{Type: failType, Message: "m", Stack: stack}
			j.Retry = persistence.RetryCounts{persistence.CountConflicts: 2}
		}
		if callback != "" {
			j.Callbacks = []string{callback}
			j.Choice = &persistence.CallbackChoice{Failure: &persistence.Call{Handler: handler}}
			j.Children, j.Composite, j.Sealed = []string{callback, "c2"}, callback, parked
		}
		set, _ := encodeJob(j)
		h := make(map[string]string, len(set)/2)
		for i := 0; i < len(set); i += 2 {
			h[set[i].(string)] = set[i+1].(string)
		}
		got, ok, err := decodeJob(j.Ref, h)
		if err != nil || !ok {
			t.Fatalf("decode: %v ok=%v", err, ok)
		}
		if !reflect.DeepEqual(normal(got), normal(j)) {
			t.Fatalf("round trip changed the job:\n got %#v\nwant %#v", *normal(got), *normal(j))
		}
	})
}

// validName reports whether s may be an owner part (owner strings are split at '/').
func validName(s string) bool { return persistence.ValidateName("x", s) == nil }

// normal compares raw JSON by its compact form (encoding may compact it).
func normal(j *persistence.Job) *persistence.Job {
	c := *j
	c.Call.Args = nil
	for _, a := range j.Call.Args {
		c.Call.Args = append(c.Call.Args, compact(a))
	}
	if j.Result != nil {
		c.Result = compact(j.Result)
	}
	return &c
}

func compact(r json.RawMessage) json.RawMessage {
	var v any
	if json.Unmarshal(r, &v) != nil {
		return r
	}
	b, _ := json.Marshal(v)
	return b
}

// A record that stores the values a new one leaves out (begin_after equal to created, the
// default retry policy, the ERROR level, a completion at the run's end) reads as the compact
// one does.
func TestCommonValuesReadTheSameStoredOrNot(t *testing.T) {
	created := "1700000000000000"
	compact := map[string]string{fCall: `{"handler":"h"}`, fStatus: "pending", fCreated: created}
	full := map[string]string{fCall: `{"handler":"h"}`, fStatus: "pending", fCreated: created,
		fBeginAfter: created, fPolicy: persistence.RetryCommonFourTimesName, fLevel: "8"}
	ref := persistence.Ref{Queue: "q", ID: "id"}
	a, _, errA := decodeJob(ref, compact)
	b, _, errB := decodeJob(ref, full)
	if errA != nil || errB != nil {
		t.Fatalf("decode: %v, %v", errA, errB)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("compact %+v\nfull    %+v", *a, *b)
	}
	if a.RetryPolicy != persistence.RetryCommonFourTimesName || a.FailureLogLevel != slog.LevelError || !a.BeginAfter.Equal(a.Created) {
		t.Fatalf("compact record read as %+v", *a)
	}
	if set, _ := encodeJob(a); len(set) != 6 {
		t.Fatalf("a put job is stored as %v, want three fields", set)
	}

	// A completed job's completion, when it is the end of its run.
	const ended = "1700000001000000"
	compact = map[string]string{fCall: `{"handler":"h"}`, fStatus: "completed", fCreated: created, fActiveEnd: ended, fResult: "1"}
	full = maps.Clone(compact)
	full[fCompleted] = ended
	a, _, errA = decodeJob(ref, compact)
	b, _, errB = decodeJob(ref, full)
	if errA != nil || errB != nil {
		t.Fatalf("decode: %v, %v", errA, errB)
	}
	if !reflect.DeepEqual(a, b) || !a.Completed.Equal(a.ActiveEnd) || a.Completed.IsZero() {
		t.Fatalf("compact %+v\nfull    %+v", *a, *b)
	}
	set, _ := encodeJob(a)
	for i := 0; i < len(set); i += 2 {
		if set[i] == fCompleted {
			t.Fatalf("a job completed as its run ended is stored as %v, with its completion", set)
		}
	}
}
