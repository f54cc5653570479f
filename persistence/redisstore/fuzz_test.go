package redisstore

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// No call that Put accepts fails to read back once stored: the job is encoded as the store
// writes it and decoded as every reader reads it. (An argument valid alone could make a
// stored call too deep to read, which wedged its job; see persistence.MaxCallDepth.)
func FuzzStoredCallDecodes(f *testing.F) {
	f.Add("h", `1`, `"x"`, "k", `{"a":[1,2]}`)
	f.Add("h", strings.Repeat("[", 998)+strings.Repeat("]", 998), `null`, "", ``)
	f.Add("h", strings.Repeat("[", 9999)+strings.Repeat("]", 9999), `0`, "", ``)
	f.Add("h", `"`+strings.Repeat(`[\"`, 100)+`"`, `{"\u00e9":"\ud800"}`, "é", `[{}]`)
	f.Add("zasync.other", `[]`, `{}`, "k", strings.Repeat("{\"a\":", 999)+"1"+strings.Repeat("}", 999))
	f.Fuzz(func(t *testing.T, handler, arg1, arg2, kwarg, value string) {
		call := persistence.Call{Handler: handler}
		for _, a := range []string{arg1, arg2} {
			if a != "" {
				call.Args = append(call.Args, json.RawMessage(a))
			}
		}
		if kwarg != "" {
			call.Kwargs = map[string]json.RawMessage{kwarg: json.RawMessage(value)}
		}
		spec := persistence.JobSpec{Call: call}
		if spec.Validate() != nil {
			return
		}
		checkStoredDecodes(t, newJob("q", spec, queuedJob, time.UnixMicro(1700000000000000).UTC()))
		// The same call as one side of a callback's pair, which nests it a level deeper.
		pair := persistence.JobSpec{Choice: &persistence.CallbackChoice{Success: &call}}
		if pair.Validate() == nil {
			checkStoredDecodes(t, newJob("q", pair, callbackJob, time.UnixMicro(1700000000000000).UTC()))
		}
	})
}

// checkStoredDecodes encodes j as the store writes it and decodes it back: it must read
// whole, with the same call.
func checkStoredDecodes(t *testing.T, j *persistence.Job) {
	t.Helper()
	set, _ := encodeJob(j)
	h := make(map[string]string, len(set)/2)
	for i := 0; i < len(set); i += 2 {
		h[set[i].(string)] = set[i+1].(string)
	}
	got, ok, err := decodeJob(j.Ref, h)
	if err != nil || !ok {
		t.Fatalf("accepted, but its stored record does not read back: %v", err)
	}
	want, _ := json.Marshal(j.Call)
	have, _ := json.Marshal(got.Call)
	if string(want) != string(have) {
		t.Fatalf("call stored as %s, read back as %s", want, have)
	}
	if !reflect.DeepEqual(got.Choice != nil, j.Choice != nil) {
		t.Fatalf("pair of calls lost: %+v", got.Choice)
	}
}

// Decoding never panics on whatever bytes a job hash holds: a field that cannot be read
// gives the job read in part with a *persistence.CorruptError naming the field, and the job
// read in part can be written back.
func FuzzDecodeStoredJob(f *testing.F) {
	f.Add(`{"handler":"h","args":[1]}`, "active", "3", `{"interruptions":2}`, `["a"]`, `{"type":"X","message":"m"}`, `["c1"]`, "1700000000000000")
	f.Add(`{"handler":"h","args":[`+strings.Repeat("[", 9999)+strings.Repeat("]", 9999)+`]}`, "pending", "", "", "", "", "", "")
	f.Add("{nope", "sideways", "x", "[", "{", "nope", "{}", "9999999999999999999999")
	f.Add(`{"handler":"h"}`, "", "-1", "null", "null", "null", "null", "-1")
	f.Add(`{"handler":"h"}`, "completed", "2", `[{"attempt":1,"owner":"u/a","completed":"2026-01-01T00:00:00Z","failure":{"type":"X","message":"m"}}]`, "", "", "", "1")
	f.Add(`{"handler":"h"}`, "pending", "1", `[{"attempt":"one"}]`, "", "", "", "")
	f.Add(`{"handler":"h"}`, "pending", "9", "", "", "", "", "")  // a priority, as attempt and begin_after too
	f.Add(`{"handler":"h"}`, "pending", "10", "", "", "", "", "") // out of range
	f.Fuzz(func(t *testing.T, call, status, attempt, retry, quotas, failure, callbacks, created string) {
		ref := persistence.Ref{Queue: "q", ID: "id"}
		h := map[string]string{}
		for f, v := range map[string]string{fCall: call, fStatus: status, fAttempt: attempt, fRetry: retry,
			fQuotas: quotas, fFailure: failure, fCallbacks: callbacks, fCreated: created, fChoice: failure, fChildren: callbacks,
			fBeginAfter: attempt, fLevel: created, fAttempts: retry, fPriority: attempt} {
			if v != "" {
				h[f] = v
			}
		}
		if len(h) == 0 {
			return
		}
		j, ok, err := decodeJob(ref, h)
		if !ok || j == nil {
			t.Fatalf("a hash with fields read as no job: %v", err)
		}
		var corrupt *persistence.CorruptError
		switch {
		case err == nil && j.Corrupt != nil, err != nil && (!errors.As(err, &corrupt) || corrupt != j.Corrupt):
			t.Fatalf("error %v with Corrupt %v: want both or neither", err, j.Corrupt)
		case err != nil && !errors.Is(err, persistence.ErrCorrupt):
			t.Fatalf("error %v is not ErrCorrupt", err)
		}
		if j.Priority < persistence.MinPriority || j.Priority > persistence.MaxPriority {
			t.Fatalf("priority %d read from %q: a claim would look for it in no queue", j.Priority, attempt)
		}
		encodeJob(j) // a job read in part can be written back
		var kv []string
		for f, v := range h {
			kv = append(kv, f, v)
		}
		if _, err := decodeFlat(ref, strings.Join(kv, "\x00")); err != nil && !errors.Is(err, persistence.ErrCorrupt) {
			t.Fatalf("decodeFlat: %v, want nil or ErrCorrupt", err)
		}
	})
}

// A dispatcher record or ping that was written by hand reads as ErrCorrupt, never a panic,
// and one that reads is written back as it read.
func FuzzDecodeStoredDispatcher(f *testing.F) {
	f.Add(`{"ping_interval":30000000,"ping_death_interval":60000000,"agents":[{"Name":"main","Size":3}],"activated":1700000000000000}`, "1700000000000000")
	f.Add(`{"agents":null,"buried":-5}`, "")
	f.Add(`{nope`, "x")
	f.Add(`{"ping_interval":9223372036854775807,"agents":[{"Name":"","Size":-1}]}`, "-9223372036854775808")
	f.Fuzz(func(t *testing.T, raw, ping string) {
		d, err := decodeDispatcher("q", "u", raw, ping)
		if err != nil {
			if !errors.Is(err, persistence.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		rec := newDispatcherRecord(d.DispatcherConfig)
		rec.Activated, rec.Buried = micros(d.Activated), micros(d.Buried)
		again, err := decodeDispatcher("q", "u", rec.encode(), ping)
		if err != nil || !reflect.DeepEqual(again, d) {
			t.Fatalf("written back and read again: %+v %v, want %+v", again, err, d)
		}
	})
}

// An entry of the log of dispatcher events reads as an event or as ErrCorrupt, and an event
// read is written back as it read.
func FuzzDecodeStoredEvent(f *testing.F) {
	f.Add(`{"dispatcher":"d1","at":1700000000000000,"kind":"found_dead","jobs":3}`)
	f.Add(`{"dispatcher":"d1","at":1,"kind":"came_back"}`)
	f.Add(`{"dispatcher":"","at":0,"kind":"x","jobs":-1}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, raw string) {
		ev, err := decodeEvent("q", raw)
		if err != nil {
			if !errors.Is(err, persistence.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := decodeEvent("q", encodeEvent(ev))
		if err != nil || again != ev {
			t.Fatalf("written back and read again: %+v %v, want %+v", again, err, ev)
		}
	})
}
