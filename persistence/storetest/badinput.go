package storetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// The BadInput group: every bad input gives a clear error matching its sentinel, and changes
// nothing.
func init() {
	register("BadInput",
		testCase{"GetUnknown", testBadGetUnknown},
		testCase{"Put", testBadPut},
		testCase{"Update", testBadUpdate},
		testCase{"QueueNames", testBadQueueNames},
		testCase{"ClaimAgentName", testBadClaimAgentName},
		testCase{"RegisterConfig", testBadRegisterConfig},
		testCase{"ParseRef", testBadParseRef},
		testCase{"SetAnnotation", testBadSetAnnotation},
		testCase{"ClaimNotActivated", testBadClaimNotActivated},
		testCase{"CommitOutcome", testBadCommitOutcome},
	)
}

// biWantUntouched fails the test when q has anything pending or held.
func (b *bundle) biWantUntouched(q, when string) {
	b.t.Helper()
	b.qtWantPending(q, nil, when)
	b.qtWantStats(q, persistence.QueueStats{}, when)
}

// biWantNoQueues fails the test when the store lists any queue.
func (b *bundle) biWantNoQueues(when string) {
	b.t.Helper()
	qs, err := b.s.Queues(b.ctx)
	if err != nil {
		b.t.Fatalf("%s: Queues: %v", when, err)
	}
	if len(qs) != 0 {
		b.t.Fatalf("%s: Queues = %v, want none", when, qs)
	}
}

// A job id that does not exist: ErrNotFound from Get and from the calls that change a job.
func testBadGetUnknown(t *testing.T, h Harness) {
	b := setup(t, h)
	_, err := b.s.Get(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID})
	qtWantErr(t, err, persistence.ErrNotFound, "Get in a queue never used")
	there := b.putCall("there")
	_, err = b.s.Get(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID})
	qtWantErr(t, err, persistence.ErrNotFound, "Get of an unknown id in a used queue")
	_, err = b.s.Update(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID}, persistence.Change{})
	qtWantErr(t, err, persistence.ErrNotFound, "Update of an unknown id")
	_, err = b.s.Fail(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID}, nil, persistence.NewFailure(persistence.ErrInvalid, ""))
	qtWantErr(t, err, persistence.ErrNotFound, "Fail of an unknown id")
	_, err = b.s.Enqueue(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID})
	qtWantErr(t, err, persistence.ErrNotFound, "Enqueue of an unknown id")
	b.qtWantPending(Queue, []string{there.ID}, "after the refused calls")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 1}, "after the refused calls")
}

// Put and PutMany refuse a bad spec and write nothing; PutMany writes none of its jobs.
func testBadPut(t *testing.T, h Harness) {
	cases := []struct {
		name string
		spec persistence.JobSpec
		want error
	}{
		{"empty handler", persistence.JobSpec{Call: persistence.Call{}}, persistence.ErrInvalid},
		{"handler with spaces", persistence.JobSpec{Call: call(" h ")}, persistence.ErrInvalid},
		{"handler too long", persistence.JobSpec{Call: call(strings.Repeat("h", persistence.MaxHandlerLen+1))}, persistence.ErrInvalid},
		{"arg not JSON", persistence.JobSpec{Call: persistence.Call{Handler: "h", Args: []json.RawMessage{json.RawMessage("{nope")}}}, persistence.ErrInvalid},
		{"kwarg not JSON", persistence.JobSpec{Call: persistence.Call{Handler: "h", Kwargs: map[string]json.RawMessage{"k": json.RawMessage("{nope")}}}, persistence.ErrInvalid},
		{"negative begin_by", persistence.JobSpec{Call: call("h"), BeginBy: -time.Second}, persistence.ErrInvalid},
		// Past year 294,247 the microseconds since 1970 overflow into the past: due at once.
		{"begin_after past MaxTime", persistence.JobSpec{Call: call("h"), BeginAfter: persistence.MaxTime.Add(time.Microsecond)}, persistence.ErrInvalid},
		{"begin_after in year 300,000", persistence.JobSpec{Call: call("h"), BeginAfter: time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)}, persistence.ErrInvalid},
		{"begin_after before the zero time", persistence.JobSpec{Call: call("h"), BeginAfter: time.Date(-300000, 1, 1, 0, 0, 0, 0, time.UTC)}, persistence.ErrInvalid},
		{"unknown quota", persistence.JobSpec{Call: call("h"), QuotaNames: []string{"nosuch"}}, persistence.ErrUnknownQuota},
		{"quota named twice", persistence.JobSpec{Call: call("h"), QuotaNames: []string{"qa", "qa"}}, persistence.ErrInvalid},
		{"bad quota name", persistence.JobSpec{Call: call("h"), QuotaNames: []string{"a b"}}, persistence.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, h)
			if err := b.s.CreateQuota(b.ctx, Queue, "qa", 1); err != nil {
				t.Fatalf("CreateQuota: %v", err)
			}
			_, err := b.s.Put(b.ctx, Queue, tc.spec)
			qtWantErr(t, err, tc.want, "Put("+tc.name+")")
			b.biWantUntouched(Queue, "after Put("+tc.name+")")

			good := persistence.JobSpec{Call: call("good")}
			_, err = b.s.PutMany(b.ctx, Queue, []persistence.JobSpec{good, tc.spec, good})
			qtWantErr(t, err, tc.want, "PutMany(good, "+tc.name+", good)")
			b.biWantUntouched(Queue, "after PutMany(good, "+tc.name+", good)")
		})
	}
}

// Update refuses bad values and changes nothing.
func testBadUpdate(t *testing.T, h Harness) {
	zero := time.Time{}
	tooLate := time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)
	negative := -time.Minute
	empty := persistence.Call{}
	notJSON := persistence.Call{Handler: "h", Args: []json.RawMessage{json.RawMessage("{nope")}}
	twice := []string{"qa", "qa"}
	unknown := []string{"nosuch"}
	cases := []struct {
		name    string
		pending bool // the job is PENDING (put) rather than NEW (created)
		change  persistence.Change
		want    error
	}{
		{"zero begin_after", false, persistence.Change{BeginAfter: &zero}, persistence.ErrInvalid},
		{"begin_after in year 300,000", false, persistence.Change{BeginAfter: &tooLate}, persistence.ErrInvalid},
		{"empty handler", false, persistence.Change{Call: &empty}, persistence.ErrInvalid},
		{"arg not JSON", false, persistence.Change{Call: &notJSON}, persistence.ErrInvalid},
		{"negative begin_by, new", false, persistence.Change{BeginBy: &negative}, persistence.ErrInvalid},
		{"negative begin_by, pending", true, persistence.Change{BeginBy: &negative}, persistence.ErrInvalid},
		{"quota named twice", true, persistence.Change{QuotaNames: &twice}, persistence.ErrInvalid},
		{"unknown quota, pending", true, persistence.Change{QuotaNames: &unknown}, persistence.ErrUnknownQuota},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, h)
			if err := b.s.CreateQuota(b.ctx, Queue, "qa", 1); err != nil {
				t.Fatalf("CreateQuota: %v", err)
			}
			spec := persistence.JobSpec{Call: call("orig", 1), BeginBy: time.Hour}
			var j *persistence.Job
			if tc.pending {
				j = b.put(Queue, spec)
			} else {
				var err error
				if j, err = b.s.Create(b.ctx, Queue, spec); err != nil {
					t.Fatalf("Create: %v", err)
				}
			}
			before := b.get(j.Ref)
			_, err := b.s.Update(b.ctx, j.Ref, tc.change)
			qtWantErr(t, err, tc.want, "Update("+tc.name+")")
			after := b.get(j.Ref)
			if after.Status != before.Status || after.Call.String() != before.Call.String() ||
				!after.BeginAfter.Equal(before.BeginAfter) || after.BeginBy != before.BeginBy ||
				len(after.QuotaNames) != len(before.QuotaNames) {
				t.Fatalf("after Update(%s): %s %s begin_after %s begin_by %s quotas %v, want unchanged %s %s %s %s %v",
					tc.name, after.Status, after.Call.String(), after.BeginAfter, after.BeginBy, after.QuotaNames,
					before.Status, before.Call.String(), before.BeginAfter, before.BeginBy, before.QuotaNames)
			}
			if tc.pending {
				b.qtWantPending(Queue, []string{j.ID}, "after Update("+tc.name+")")
			}
		})
	}
}

// Names that would break the key schema are rejected, not escaped, by every method that takes
// a queue name; the longest allowed name works.
func testBadQueueNames(t *testing.T, h Harness) {
	names := map[string]string{
		"hash tag":      "a{b}",
		"colon":         "a:b",
		"space":         "a b",
		"empty":         "",
		"non-ASCII":     "ü",
		"101 chars":     strings.Repeat("a", persistence.MaxNameLen+1),
		"slash":         "a/b",
		"star":          "a*",
		"newline":       "a\nb",
		"closing brace": "a}",
	}
	for label, name := range names {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			b := setup(t, h)
			_, err := b.s.Put(b.ctx, name, persistence.JobSpec{Call: call("h")})
			qtWantErr(t, err, persistence.ErrInvalid, "Put")
			_, err = b.s.Pending(b.ctx, name, 0, 10)
			qtWantErr(t, err, persistence.ErrInvalid, "Pending")
			_, err = b.s.Claim(b.ctx, persistence.ClaimParams{Queue: name, Dispatcher: newUUID(), Agent: "main", Size: 1})
			qtWantErr(t, err, persistence.ErrInvalid, "Claim")
			err = b.s.Register(b.ctx, name, newUUID(), DefaultConfig())
			qtWantErr(t, err, persistence.ErrInvalid, "Register")
			b.biWantNoQueues("after the refused calls")
		})
	}
	t.Run("longest", func(t *testing.T) {
		t.Parallel()
		b := setup(t, h)
		name := strings.Repeat("a", persistence.MaxNameLen)
		j := b.put(name, persistence.JobSpec{Call: call("h")})
		b.qtWantPending(name, []string{j.ID}, "Put in a queue with a 100-character name")
	})
}

// A Claim naming an agent that would break the key schema is refused and claims nothing.
func testBadClaimAgentName(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.qtDispatcher()
	j := b.putCall("h")
	for _, agent := range []string{"", "a b", "a:b", "a{b}", strings.Repeat("a", persistence.MaxNameLen+1)} {
		_, err := b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: o.Dispatcher, Agent: agent, Size: 3})
		qtWantErr(t, err, persistence.ErrInvalid, "Claim by agent "+agent)
	}
	b.qtWantPending(Queue, []string{j.ID}, "after the refused claims")
	qtWantStatus(t, b.get(j.Ref), persistence.StatusPending, "after the refused claims")
}

// Register refuses a bad UUID or config and records nothing.
func testBadRegisterConfig(t *testing.T, h Harness) {
	noPing := DefaultConfig()
	noPing.PingInterval = 0
	noDeath := DefaultConfig()
	noDeath.PingDeathInterval = -time.Second
	dupAgent := DefaultConfig()
	dupAgent.Agents = []persistence.AgentSpec{{Name: "main", Size: 1}, {Name: "main", Size: 2}}
	badAgent := DefaultConfig()
	badAgent.Agents = []persistence.AgentSpec{{Name: "a:b", Size: 1}}
	negSize := DefaultConfig()
	negSize.Agents = []persistence.AgentSpec{{Name: "main", Size: -1}}
	fresh := func() string { return newUUID() }
	cases := []struct {
		name string
		uuid func() string
		cfg  persistence.DispatcherConfig
	}{
		{"bad uuid", func() string { return "a b" }, DefaultConfig()},
		{"empty uuid", func() string { return "" }, DefaultConfig()},
		{"uuid with hash tag", func() string { return "{q}" }, DefaultConfig()},
		{"zero ping interval", fresh, noPing},
		{"negative death interval", fresh, noDeath},
		{"agent twice", fresh, dupAgent},
		{"bad agent name", fresh, badAgent},
		{"negative agent size", fresh, negSize},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, h)
			uuid := tc.uuid()
			err := b.s.Register(b.ctx, Queue, uuid, tc.cfg)
			qtWantErr(t, err, persistence.ErrInvalid, "Register("+tc.name+")")
			recs, err := b.s.Dispatchers(b.ctx, Queue)
			if err != nil {
				t.Fatalf("Dispatchers: %v", err)
			}
			if len(recs) != 0 {
				t.Fatalf("after Register(%s): %d records, want none", tc.name, len(recs))
			}
		})
	}
}

// ParseRef refuses anything but queue/id with valid names.
func testBadParseRef(t *testing.T, h Harness) {
	for _, s := range []string{"nope", "", "/", "q/", "/id", "a b/id", "a:b/id", "q/a b", "q/a:b"} {
		_, err := persistence.ParseRef(s)
		qtWantErr(t, err, persistence.ErrInvalid, fmt.Sprintf("ParseRef(%q)", s))
	}
	want := persistence.Ref{Queue: Queue, ID: qtMissingID}
	got, err := persistence.ParseRef(want.String())
	if err != nil || got != want {
		t.Fatalf("ParseRef(%q) = %v, %v, want %v", want.String(), got, err, want)
	}
}

// SetAnnotation refuses a value that is not JSON (keeping the old value) and an unknown job.
func testBadSetAnnotation(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.putCall("h")
	err := b.s.SetAnnotation(b.ctx, j.Ref, "fresh", json.RawMessage("{nope"))
	qtWantErr(t, err, persistence.ErrInvalid, "SetAnnotation(not JSON) of an unset name")
	if v, ok, err := b.s.Annotation(b.ctx, j.Ref, "fresh"); err != nil || ok {
		t.Fatalf("Annotation after the refused set: %s, %v, %v, want not set", v, ok, err)
	}

	if err := b.s.SetAnnotation(b.ctx, j.Ref, "note", json.RawMessage(`"hello"`)); err != nil {
		t.Fatalf("SetAnnotation(JSON): %v", err)
	}
	err = b.s.SetAnnotation(b.ctx, j.Ref, "note", json.RawMessage("{nope"))
	qtWantErr(t, err, persistence.ErrInvalid, "SetAnnotation(not JSON) over a set name")
	v, ok, err := b.s.Annotation(b.ctx, j.Ref, "note")
	if err != nil || !ok || string(v) != `"hello"` {
		t.Fatalf("Annotation after the refused overwrite: %s, %v, %v, want \"hello\" kept", v, ok, err)
	}
	all, err := b.s.Annotations(b.ctx, j.Ref)
	if err != nil || len(all) != 1 {
		t.Fatalf("Annotations: %v, %v, want only \"note\"", all, err)
	}

	err = b.s.SetAnnotation(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID}, "note", json.RawMessage(`1`))
	qtWantErr(t, err, persistence.ErrNotFound, "SetAnnotation of an unknown job")
	if _, ok, err := b.s.Annotation(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID}, "note"); ok {
		t.Fatalf("Annotation of an unknown job after the refused set: ok, want not set (err %v)", err)
	}
}

// A dispatcher that is not activated (never, no more, or presumed dead) cannot claim, and the
// queue is left as it was.
func testBadClaimNotActivated(t *testing.T, h Harness) {
	cases := []struct {
		name    string
		prepare func(b *bundle, uuid string)
	}{
		{"never activated", func(b *bundle, uuid string) {
			if err := b.s.Register(b.ctx, Queue, uuid, DefaultConfig()); err != nil {
				b.t.Fatalf("Register: %v", err)
			}
		}},
		{"deactivated", func(b *bundle, uuid string) {
			b.activate(Queue, uuid, DefaultConfig())
			if _, err := b.s.Deactivate(b.ctx, Queue, uuid); err != nil {
				b.t.Fatalf("Deactivate: %v", err)
			}
		}},
		{"dead", func(b *bundle, uuid string) {
			b.activate(Queue, uuid, DefaultConfig())
			b.clock.Advance(DefaultConfig().PingDeathInterval + time.Second)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, h)
			j := b.putCall("h")
			uuid := newUUID()
			tc.prepare(b, uuid)
			_, err := b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: uuid, Agent: "main", Size: 3})
			qtWantErr(t, err, persistence.ErrNotActivated, "Claim by a dispatcher "+tc.name)
			b.qtWantPending(Queue, []string{j.ID}, "after the refused claim")
			g := b.get(j.Ref)
			qtWantStatus(t, g, persistence.StatusPending, "after the refused claim")
			if !g.Owner.IsZero() || g.Attempt != 0 {
				t.Fatalf("after the refused claim: owner %q attempt %d, want nobody and 0", g.Owner, g.Attempt)
			}
			b.qtWantStats(Queue, persistence.QueueStats{Due: 1}, "after the refused claim")
		})
	}
}

// Commit refuses an outcome with both or neither of Result and Failure, or a Result that is not
// JSON, and leaves the job ACTIVE; a good commit then still works.
func testBadCommitOutcome(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.qtDispatcher()
	a := b.qtStart(o, b.putCall("h").ID)
	f := persistence.NewFailure(persistence.ErrConflict, "")
	cases := []struct {
		name string
		o    persistence.Outcome
	}{
		{"both", persistence.Outcome{Result: json.RawMessage("1"), Failure: f}},
		{"neither", persistence.Outcome{}},
		{"neither, complete", persistence.Outcome{Complete: true}},
		{"result not JSON", persistence.Outcome{Result: json.RawMessage("{nope")}},
	}
	for _, tc := range cases {
		_, err := b.s.Commit(b.ctx, a.Fence(), tc.o)
		qtWantErr(t, err, persistence.ErrInvalid, "Commit("+tc.name+")")
		g := b.get(a.Ref)
		qtWantStatus(t, g, persistence.StatusActive, "after Commit("+tc.name+")")
		if g.Result != nil || g.Failure != nil || !g.ActiveEnd.IsZero() {
			t.Fatalf("after Commit(%s): result %s failure %v end %s, want none", tc.name, g.Result, g.Failure, g.ActiveEnd)
		}
	}
	done, err := b.s.Commit(b.ctx, a.Fence(), persistence.Outcome{Result: json.RawMessage("42")})
	if err != nil {
		t.Fatalf("Commit(42) after the refused ones: %v", err)
	}
	qtWantStatus(t, done, persistence.StatusCallbacks, "Commit(42)")
	if string(done.Result) != "42" {
		t.Fatalf("Commit(42): result %s, want 42", done.Result)
	}
}
