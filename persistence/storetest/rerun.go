package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/zasync/zasync/persistence"
)

func init() {
	register("Rerun",
		testCase{"FailedJobRunsAgain", testRerunFailed},
		testCase{"Refused", testRerunRefused},
		testCase{"WithParts", testRerunParts},
	)
	register("Delete",
		testCase{"WaitingAndCompleted", testDeleteJobs},
		testCase{"RunningAndPartsRefused", testDeleteRefused},
	)
}

// failRun claims, starts and fails job j for o with message msg; the outcome is stored
// (COMPLETED without callbacks, CALLBACKS with some).
func (b *bundle) failRun(o persistence.Owner, j *persistence.Job, msg string) *persistence.Job {
	b.t.Helper()
	c := b.claimOne(o, func(c *persistence.Job) bool { return c.ID == j.ID })
	if c == nil {
		b.t.Fatalf("cannot claim %s", j.ID)
	}
	r := b.start(c.Fence())
	done, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Failure: persistence.NewFailure(errors.New(msg), ""), Complete: true})
	if err != nil {
		b.t.Fatalf("Commit failure of %s: %v", j.ID, err)
	}
	return done
}

// A failed job with a completed callback is put back: due again, its first run kept in its
// attempts, its outcome and history entry gone, its callback NEW again; its next claim is
// attempt 2, and its second failure is kept after the first.
func testRerunFailed(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.putCall("work")
	cb, _ := cbkAdd(b, j.Ref, "report")
	failed := b.failRun(o, j, "first")
	cbkRun(b, failed.Fence(), cb.ID, "1")
	done := b.complete(failed.Fence(), 1)
	if ids, _ := b.s.Completed(b.ctx, Queue, o, Epoch.Add(-1), Epoch.Add(1e12), 0); !slices.Contains(ids, j.ID) {
		t.Fatalf("history of %s: %v, want %s in it", o, ids, j.ID)
	}

	got, err := b.s.Rerun(b.ctx, j.Ref, nil)
	if err != nil {
		t.Fatalf("Rerun: %v", err)
	}
	stored := b.get(j.Ref)
	for _, r := range []*persistence.Job{got, stored} {
		if r.Status != persistence.StatusPending || r.Failure != nil || r.Result != nil || !r.Owner.IsZero() ||
			!r.ActiveStart.IsZero() || !r.Completed.IsZero() || len(r.Attempts) != 1 {
			t.Fatalf("rerun job: %+v, want PENDING, cleared, with one past attempt", r)
		}
	}
	past := stored.Attempts[0]
	if past.Attempt != done.Attempt || past.Owner != o.String() || past.Failure == nil || past.Failure.Message != "first" ||
		!past.Completed.Equal(done.Completed) || !past.Start.Equal(done.ActiveStart) {
		t.Fatalf("past attempt %+v, want the first run (attempt %d by %s, failed: first)", past, done.Attempt, o)
	}
	if p := b.pending(Queue); !slices.Contains(p, j.ID) {
		t.Fatalf("queue %v, want the rerun job in it", p)
	}
	if ids, _ := b.s.Completed(b.ctx, Queue, o, Epoch.Add(-1), Epoch.Add(1e12), 0); slices.Contains(ids, j.ID) {
		t.Fatalf("history of %s still lists the rerun job: %v", o, ids)
	}
	if c := b.get(cb.Ref); c.Status != persistence.StatusNew || c.Result != nil || !c.Owner.IsZero() {
		t.Fatalf("callback after the rerun: %s, result %s, owner %q; want NEW, cleared", c.Status, c.Result, c.Owner)
	}

	again := b.failRun(o, j, "second")
	if again.Attempt != done.Attempt+1 {
		t.Fatalf("rerun claimed as attempt %d, want %d", again.Attempt, done.Attempt+1)
	}
	cbkRun(b, again.Fence(), cb.ID, "2")
	b.complete(again.Fence(), 1)
	if _, err := b.s.Rerun(b.ctx, j.Ref, nil); err != nil {
		t.Fatalf("second Rerun: %v", err)
	}
	if a := b.get(j.Ref).Attempts; len(a) != 2 || a[0].Failure.Message != "first" || a[1].Failure.Message != "second" {
		t.Fatalf("attempts after two reruns: %+v", a)
	}
}

// Only a failed completed job reruns; anything else is refused and unchanged.
func testRerunRefused(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	waiting := b.putCall("waiting")
	if _, err := b.s.Rerun(b.ctx, waiting.Ref, nil); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Rerun of a pending job: %v, want ErrBadStatus", err)
	}
	ok := b.putCall("ok")
	r := b.start(b.claimOne(o, func(c *persistence.Job) bool { return c.ID == ok.ID }).Fence())
	b.complete(b.commit(r.Fence(), "1").Fence(), 0)
	if _, err := b.s.Rerun(b.ctx, ok.Ref, nil); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Rerun of a job that succeeded: %v, want ErrBadStatus", err)
	}
	if got := b.get(ok.Ref); got.Status != persistence.StatusCompleted || string(got.Result) != "1" {
		t.Fatalf("refused rerun changed the job: %s %s", got.Status, got.Result)
	}
	if _, err := b.s.Rerun(b.ctx, ok.Ref.In("nope"), nil); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("Rerun of an unknown job: %v, want ErrNotFound", err)
	}
	if _, err := b.s.Rerun(b.ctx, persistence.Ref{Queue: "a b", ID: "x"}, nil); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("Rerun in a bad queue name: %v, want ErrInvalid", err)
	}
}

// A pending job, a scheduled one and a completed one with its callback are deleted: their
// records, queue entries and history entries are gone.
func testDeleteJobs(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	done := b.putCall("done")
	cb, _ := cbkAdd(b, done.Ref, "report")
	failed := b.failRun(o, done, "x")
	cbkRun(b, failed.Fence(), cb.ID, "1")
	b.complete(failed.Fence(), 1)
	waiting := b.putCall("waiting")
	later := b.put(Queue, persistence.JobSpec{Call: call("later"), BeginAfter: Epoch.Add(1e12)})

	gone, err := b.s.Delete(b.ctx, Queue, []string{waiting.ID, later.ID, done.ID, cb.ID})
	if err != nil || len(gone) != 4 {
		t.Fatalf("Delete: %d jobs, %v", len(gone), err)
	}
	for _, j := range []*persistence.Job{waiting, later, done, cb} {
		if _, err := b.s.Get(b.ctx, j.Ref); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Get(%s) after Delete: %v, want ErrNotFound", j.ID, err)
		}
	}
	if p := b.pending(Queue); len(p) != 0 {
		t.Fatalf("queue after Delete: %v", p)
	}
	if ids, _ := b.s.Completed(b.ctx, Queue, o, Epoch.Add(-1), Epoch.Add(1e12), 0); len(ids) != 0 {
		t.Fatalf("history after Delete: %v", ids)
	}
	if st, err := b.s.Stats(b.ctx, Queue); err != nil || st.Due+st.Scheduled+st.Held != 0 {
		t.Fatalf("stats after Delete: %+v %v", st, err)
	}
}

// A running job, a job whose callback is not listed with it, and a list naming an unknown
// job are refused, and nothing of the list is deleted.
func testDeleteRefused(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	running := b.putCall("running")
	r := b.start(b.claimOne(o, nil).Fence())
	parent := b.putCall("parent")
	cbkAdd(b, parent.Ref, "report")
	other := b.putCall("other")
	for _, tc := range []struct {
		ids  []string
		want error
	}{
		{[]string{other.ID, r.ID}, persistence.ErrBadStatus},
		{[]string{other.ID, parent.ID}, persistence.ErrConflict},
		{[]string{"nope", other.ID}, persistence.ErrNotFound},
		{nil, persistence.ErrInvalid},
	} {
		if _, err := b.s.Delete(b.ctx, Queue, tc.ids); !errors.Is(err, tc.want) {
			t.Fatalf("Delete(%v): %v, want %v", tc.ids, err, tc.want)
		}
	}
	for _, j := range []*persistence.Job{running, parent, other} {
		b.get(j.Ref) // still there
	}
	if p := b.pending(Queue); !slices.Contains(p, other.ID) || !slices.Contains(p, parent.ID) {
		t.Fatalf("queue after refused deletes: %v", p)
	}
}

// A composite reruns with the parts it is given: each back to NEW (a new call for one that is
// given one), its run kept in its attempts; without parts it is refused, and so is a part
// that is not completed; nothing changes when refused.
func testRerunParts(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	comp := b.putCall("composite")
	part, _, err := b.s.AddChild(b.ctx, comp.Ref, persistence.JobSpec{Call: call("part", 1)})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := b.s.AddChild(b.ctx, comp.Ref, persistence.JobSpec{Call: call("other")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.Enqueue(b.ctx, part.Ref); err != nil {
		t.Fatal(err)
	}
	b.failRun(o, part, "part failed") // no callbacks: COMPLETED at once
	if _, err := b.s.Enqueue(b.ctx, other.Ref); err != nil {
		t.Fatal(err)
	}
	otherRun := b.start(b.claimOne(o, func(c *persistence.Job) bool { return c.ID == other.ID }).Fence())
	b.failRun(o, comp, "composite failed")

	if _, err := b.s.Rerun(b.ctx, comp.Ref, nil); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Rerun of a composite without parts: %v, want ErrBadStatus", err)
	}
	if _, err := b.s.Rerun(b.ctx, comp.Ref, []persistence.RerunPart{{ID: part.ID}, {ID: other.ID}}); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Rerun with a running part: %v, want ErrBadStatus", err)
	}
	if got := b.get(comp.Ref); got.Status != persistence.StatusCompleted {
		t.Fatalf("refused reruns changed the composite: %s", got.Status)
	}
	b.complete(b.commit(otherRun.Fence(), "2").Fence(), 0)

	again := call("part", 2)
	if _, err := b.s.Rerun(b.ctx, comp.Ref, []persistence.RerunPart{{ID: part.ID, Call: &again}}); err != nil {
		t.Fatalf("Rerun with parts: %v", err)
	}
	if got := b.get(comp.Ref); got.Status != persistence.StatusPending || len(got.Attempts) != 1 {
		t.Fatalf("the composite: %s with %d attempts, want PENDING with one", got.Status, len(got.Attempts))
	}
	p := b.get(part.Ref)
	if p.Status != persistence.StatusNew || p.Failure != nil || len(p.Attempts) != 1 || p.Attempts[0].Failure.Message != "part failed" ||
		p.Call.String() != again.String() {
		t.Fatalf("the part: %s, failure %v, attempts %+v, call %s; want NEW with its new call and its run kept", p.Status, p.Failure, p.Attempts, p.Call.String())
	}
	if got := b.get(other.Ref); got.Status != persistence.StatusCompleted || string(got.Result) != "2" {
		t.Fatalf("the part not given: %s %s, want it left completed", got.Status, got.Result)
	}
	if pending := b.pending(Queue); !slices.Equal(pending, []string{comp.ID}) {
		t.Fatalf("queue %v, want the composite alone (its parts are queued by its run)", pending)
	}
}
