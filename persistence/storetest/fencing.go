package storetest

import (
	"encoding/json"
	"errors"
	"maps"
	"testing"

	"github.com/zasync/zasync/persistence"
)

// Fencing: once a job is taken from a run (cleaned as dead, reassigned, adopted), every write
// of that run fails with ErrReassigned and changes nothing, and the current owner's state is
// untouched (ARCHITECTURE.md, "State in Redis": fencing).
func init() {
	register("Fencing",
		testCase{"ReassignedAfterDeath", testFencingReassignedAfterDeath},
		testCase{"CleanedOwnerFencedOut", testFencingCleanedOwnerFencedOut},
		testCase{"RequeuedJobFencedOut", testFencingRequeuedJobFencedOut},
		testCase{"WrongAttempt", testFencingWrongAttempt},
		testCase{"WrongOwner", testFencingWrongOwner},
		testCase{"StartActiveBadStatus", testFencingStartActiveBadStatus},
		testCase{"CommitTwice", testFencingCommitTwice},
		testCase{"AdoptBumpsAttempt", testFencingAdoptBumpsAttempt},
		testCase{"LateCommitNoted", testFencingLateCommitNoted},
	)
}

// fcWantReassigned fails unless err is ErrReassigned (and not a bad status).
func fcWantReassigned(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("%s with a stale fence: want ErrReassigned, got %v", op, err)
	}
}

// fcSnapshot is what a stale write must not change.
type fcSnapshot struct {
	status      persistence.Status
	owner       persistence.Owner
	attempt     int64
	result      string
	failure     *persistence.Failure
	retry       persistence.RetryCounts
	beginAfter  string
	waitingOn   string
	activeStart string
}

func fcSnap(j *persistence.Job) fcSnapshot {
	return fcSnapshot{
		status: j.Status, owner: j.Owner, attempt: j.Attempt, result: string(j.Result), failure: j.Failure,
		retry: j.Retry, beginAfter: j.BeginAfter.String(), waitingOn: j.WaitingOn, activeStart: j.ActiveStart.String(),
	}
}

// fcUnchanged fails if the job differs from before.
func (b *bundle) fcUnchanged(ref persistence.Ref, before fcSnapshot, after string) {
	b.t.Helper()
	now := fcSnap(b.get(ref))
	same := now.status == before.status && now.owner == before.owner && now.attempt == before.attempt &&
		now.result == before.result && (now.failure == nil) == (before.failure == nil) &&
		maps.Equal(now.retry, before.retry) && now.beginAfter == before.beginAfter &&
		now.waitingOn == before.waitingOn && now.activeStart == before.activeStart
	if !same {
		b.t.Fatalf("after %s: want the job unchanged %+v, got %+v", after, before, now)
	}
}

// The main case: dispatcher A runs a job, is presumed dead and cleaned; B recovers the job,
// runs it again; every late write of A fails with ErrReassigned and leaves B's run alone.
func testFencingReassignedAfterDeath(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	a := b.dispatcher()
	ra := b.qrRun(a, x.ID)
	oldFence := ra.Fence()
	sys := b.qrInterrupt(a, x.ID) // A presumed dead
	rec := b.qrHandleInterrupt(sys, persistence.RetryCommonFourTimes)
	if rec.decision.Action != persistence.ActionRetryNow {
		t.Fatalf("first interruption: want retry now, got %s", rec.decision)
	}
	bOwner := rec.runner
	rb := b.qrRun(bOwner, x.ID)
	if rb.Attempt <= oldFence.Attempt || rb.Owner != bOwner {
		t.Fatalf("B's run: want owner %s with attempt above A's %d, got %s attempt %d", bOwner, oldFence.Attempt, rb.Owner, rb.Attempt)
	}
	before := fcSnap(b.get(x.Ref))
	other := b.putCall("other")

	_, err := b.s.Commit(b.ctx, oldFence, persistence.Outcome{Result: json.RawMessage(`13`)})
	fcWantReassigned(t, "Commit", err)
	b.fcUnchanged(x.Ref, before, "A's Commit")
	_, err = b.s.Commit(b.ctx, oldFence, persistence.Outcome{Failure: persistence.NewFailure(errors.New("late"), ""), Complete: true})
	fcWantReassigned(t, "Commit of a failure", err)
	b.fcUnchanged(x.Ref, before, "A's Commit of a failure")
	_, err = b.s.Start(b.ctx, oldFence)
	fcWantReassigned(t, "Start", err)
	b.fcUnchanged(x.Ref, before, "A's Start")
	_, err = b.s.Complete(b.ctx, oldFence, 0)
	fcWantReassigned(t, "Complete", err)
	b.fcUnchanged(x.Ref, before, "A's Complete")
	err = b.s.SaveRetry(b.ctx, oldFence, persistence.RetryCounts{"late": 99})
	fcWantReassigned(t, "SaveRetry", err)
	b.fcUnchanged(x.Ref, before, "A's SaveRetry")
	_, err = b.s.Reschedule(b.ctx, oldFence, b.clock.Now(), persistence.RetryCounts{"late": 99})
	fcWantReassigned(t, "Reschedule", err)
	b.fcUnchanged(x.Ref, before, "A's Reschedule")
	_, err = b.s.Wait(b.ctx, oldFence, other.ID, true)
	fcWantReassigned(t, "Wait", err)
	b.fcUnchanged(x.Ref, before, "A's Wait")
	_, err = b.s.Adopt(b.ctx, oldFence, other.ID, persistence.StatusPending)
	fcWantReassigned(t, "Adopt by a stale run", err)
	b.fcUnchanged(x.Ref, before, "A's Adopt")
	if o := b.get(other.Ref); o.Status != persistence.StatusPending || !o.Owner.IsZero() {
		t.Fatalf("a stale Adopt must not touch its target: want PENDING with no owner, got %s owned by %s", o.Status, o.Owner)
	}

	got := b.get(x.Ref)
	if got.Status != persistence.StatusActive || got.Owner != bOwner || got.Result != nil || got.Failure != nil {
		t.Fatalf("B's run: want ACTIVE, owner %s, no outcome; got %s, %s, %s, %+v", bOwner, got.Status, got.Owner, got.Result, got.Failure)
	}
	if p := b.pending(Queue); len(p) != 1 || p[0] != other.ID {
		t.Fatalf("stale writes must not queue anything: want only [other] pending, got %v", p)
	}
	c := b.commit(rb.Fence(), `42`)
	if c.Owner != bOwner {
		t.Fatalf("B's Commit: want owner %s kept, got %s", bOwner, c.Owner)
	}
	// Still refused once the job has moved on.
	_, err = b.s.Complete(b.ctx, oldFence, 0)
	fcWantReassigned(t, "Complete after B committed", err)
	_, err = b.s.Commit(b.ctx, oldFence, persistence.Outcome{Result: json.RawMessage(`13`)})
	fcWantReassigned(t, "Commit after B committed", err)
	if got := b.get(x.Ref); string(got.Result) != "42" || got.Status != persistence.StatusCallbacks {
		t.Fatalf("after A's late writes: want B's 42 in CALLBACKS, got %s in %s", got.Result, got.Status)
	}
	done, err := b.s.Complete(b.ctx, c.Fence(), 0)
	if err != nil {
		t.Fatalf("B's Complete: %v", err)
	}
	if done.Status != persistence.StatusCompleted || string(done.Result) != "42" {
		t.Fatalf("B's Complete: want COMPLETED with 42, got %s with %s", done.Status, done.Result)
	}
}

// Cleaning clears the owner of an ACTIVE job: its old run is fenced out at once, before any
// system job runs, and also after the dispatcher reactivates itself.
func testFencingCleanedOwnerFencedOut(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	a := b.dispatcher()
	ra := b.qrRun(a, x.ID)
	b.qrInterrupt(a, x.ID)
	before := fcSnap(b.get(x.Ref))
	_, err := b.s.Commit(b.ctx, ra.Fence(), persistence.Outcome{Result: json.RawMessage(`42`)})
	fcWantReassigned(t, "Commit after cleaning", err)
	b.fcUnchanged(x.Ref, before, "Commit after cleaning")
	// The dispatcher was alive after all: its ping reactivates it without cleaning, and its
	// cleaned job stays out of its reach.
	pr, err := b.s.Ping(b.ctx, Queue, a.Dispatcher)
	if err != nil {
		t.Fatalf("Ping of a deactivated dispatcher: %v", err)
	}
	if !pr.Reactivated {
		t.Fatalf("Ping of a deactivated dispatcher: want Reactivated, got %+v", pr)
	}
	err = b.s.SaveRetry(b.ctx, ra.Fence(), persistence.RetryCounts{"x": 1})
	fcWantReassigned(t, "SaveRetry after reactivation", err)
	_, err = b.s.Commit(b.ctx, ra.Fence(), persistence.Outcome{Result: json.RawMessage(`42`)})
	fcWantReassigned(t, "Commit after reactivation", err)
	b.fcUnchanged(x.Ref, before, "writes after reactivation")
}

// A claimed job requeued by cleaning is out of its old run's reach, before and after someone
// else claims it.
func testFencingRequeuedJobFencedOut(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	a := b.dispatcher()
	ca := b.qrClaimID(a, x.ID)
	b.qrDeactivate(a)
	_, err := b.s.Start(b.ctx, ca.Fence())
	fcWantReassigned(t, "Start of a requeued job", err)
	if got := b.get(x.Ref); got.Status != persistence.StatusPending || !got.Owner.IsZero() {
		t.Fatalf("requeued job after a stale Start: want PENDING with no owner, got %s owned by %s", got.Status, got.Owner)
	}
	_, err = b.s.Reschedule(b.ctx, ca.Fence(), b.clock.Now(), nil)
	fcWantReassigned(t, "Reschedule of a requeued job", err)
	o := b.dispatcher()
	cb := b.qrClaimExactly(o, x.ID, "requeued job")
	if cb.Attempt <= ca.Attempt {
		t.Fatalf("second claim: want attempt above %d, got %d", ca.Attempt, cb.Attempt)
	}
	_, err = b.s.Start(b.ctx, ca.Fence())
	fcWantReassigned(t, "Start after another claim", err)
	if got := b.get(x.Ref); got.Status != persistence.StatusAssigned || got.Owner != o || got.Attempt != cb.Attempt {
		t.Fatalf("after the stale Start: want ASSIGNED to %s attempt %d, got %s, %s, %d", o, cb.Attempt, got.Status, got.Owner, got.Attempt)
	}
	b.commit(b.start(cb.Fence()).Fence(), `42`)
}

// The right owner with another attempt is fenced out, whichever way the attempt is off.
func testFencingWrongAttempt(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	o := b.dispatcher()
	c := b.qrClaimID(o, x.ID)
	for _, delta := range []int64{-1, 1, 100} {
		f := c.Fence()
		f.Attempt += delta
		_, err := b.s.Start(b.ctx, f)
		fcWantReassigned(t, "Start with an attempt off by "+jsonInt(delta), err)
		if got := b.get(x.Ref); got.Status != persistence.StatusAssigned || got.Attempt != c.Attempt {
			t.Fatalf("a refused Start must change nothing: want ASSIGNED attempt %d, got %s attempt %d", c.Attempt, got.Status, got.Attempt)
		}
	}
	r := b.start(c.Fence())
	f := r.Fence()
	f.Attempt++
	_, err := b.s.Commit(b.ctx, f, persistence.Outcome{Result: json.RawMessage(`13`)})
	fcWantReassigned(t, "Commit with a later attempt", err)
	err = b.s.SaveRetry(b.ctx, f, persistence.RetryCounts{"x": 1})
	fcWantReassigned(t, "SaveRetry with a later attempt", err)
	if got := b.get(x.Ref); got.Status != persistence.StatusActive || got.Result != nil || len(got.Retry) != 0 {
		t.Fatalf("refused writes must change nothing: want ACTIVE with no result or counters, got %s, %s, %v", got.Status, got.Result, got.Retry)
	}
	b.commit(r.Fence(), `42`)
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Another agent, of the same or another dispatcher, cannot write a job it does not own.
func testFencingWrongOwner(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	o := b.dispatcher()
	other := b.dispatcher()
	c := b.qrClaimID(o, x.ID)
	for _, owner := range []persistence.Owner{other, {Dispatcher: o.Dispatcher, Agent: "second"}, {}} {
		f := c.Fence()
		f.Owner = owner
		_, err := b.s.Start(b.ctx, f)
		fcWantReassigned(t, "Start by "+owner.String(), err)
	}
	r := b.start(c.Fence())
	f := r.Fence()
	f.Owner = other
	_, err := b.s.Commit(b.ctx, f, persistence.Outcome{Result: json.RawMessage(`13`)})
	fcWantReassigned(t, "Commit by another dispatcher", err)
	_, err = b.s.Reschedule(b.ctx, f, b.clock.Now(), nil)
	fcWantReassigned(t, "Reschedule by another dispatcher", err)
	if got := b.get(x.Ref); got.Status != persistence.StatusActive || got.Owner != o || got.Result != nil {
		t.Fatalf("refused writes must change nothing: want ACTIVE owned by %s, got %s owned by %s with %s", o, got.Status, got.Owner, got.Result)
	}
	b.commit(r.Fence(), `42`)
}

// The right fence in the wrong status is a bad status, not a reassignment.
func testFencingStartActiveBadStatus(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	o := b.dispatcher()
	r := b.qrRun(o, x.ID)
	_, err := b.s.Start(b.ctx, r.Fence())
	if !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Start of an ACTIVE job by its own fence: want ErrBadStatus, got %v", err)
	}
	var bse *persistence.BadStatusError
	if !errors.As(err, &bse) || bse.Status != persistence.StatusActive {
		t.Fatalf("want a *BadStatusError reporting ACTIVE, got %#v", err)
	}
	if errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("the job's own run is not reassigned: got %v", err)
	}
	if got := b.get(x.Ref); got.Status != persistence.StatusActive || !got.ActiveStart.Equal(r.ActiveStart) {
		t.Fatalf("a refused Start must change nothing: want ACTIVE since %s, got %s since %s", r.ActiveStart, got.Status, got.ActiveStart)
	}
	// Complete needs CALLBACKS.
	if _, err := b.s.Complete(b.ctx, r.Fence(), 0); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Complete of an ACTIVE job: want ErrBadStatus, got %v", err)
	}
	b.commit(r.Fence(), `42`)
}

// A result is committed once: a second Commit with the same fence is refused and the first
// result stays.
func testFencingCommitTwice(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	o := b.dispatcher()
	r := b.qrRun(o, x.ID)
	b.commit(r.Fence(), `42`)
	_, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Result: json.RawMessage(`43`)})
	if !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("second Commit with the same fence: want ErrBadStatus, got %v", err)
	}
	if got := b.get(x.Ref); string(got.Result) != "42" || got.Status != persistence.StatusCallbacks {
		t.Fatalf("after a refused second Commit: want 42 in CALLBACKS, got %s in %s", got.Result, got.Status)
	}
	if _, err := b.s.Complete(b.ctx, r.Fence(), 0); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	_, err = b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Result: json.RawMessage(`43`)})
	if !errors.Is(err, persistence.ErrBadStatus) && !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("Commit of a COMPLETED job: want ErrBadStatus or ErrReassigned, got %v", err)
	}
	if got := b.get(x.Ref); string(got.Result) != "42" || got.Status != persistence.StatusCompleted {
		t.Fatalf("after a refused Commit: want 42 COMPLETED, got %s in %s", got.Result, got.Status)
	}
}

// Adopt gives the target to the adopting run with a higher attempt: the previous run's fence
// no longer holds, the new one does. Adopting by a stale run or in a wrong status is refused.
func testFencingAdoptBumpsAttempt(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	y := b.putCall("y")
	a, c := b.dispatcher(), b.dispatcher()
	rx := b.qrRun(a, x.ID)
	ry := b.qrRun(c, y.ID)
	if _, err := b.s.Adopt(b.ctx, ry.Fence(), x.ID, persistence.StatusCallbacks); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Adopt of an ACTIVE job allowing only CALLBACKS: want ErrBadStatus, got %v", err)
	}
	if got := b.get(x.Ref); got.Owner != a || got.Attempt != rx.Attempt {
		t.Fatalf("a refused Adopt must change nothing: want owner %s attempt %d, got %s attempt %d", a, rx.Attempt, got.Owner, got.Attempt)
	}
	stale := ry.Fence()
	stale.Attempt++
	_, err := b.s.Adopt(b.ctx, stale, x.ID, persistence.StatusActive)
	fcWantReassigned(t, "Adopt by a stale run", err)
	ad, err := b.s.Adopt(b.ctx, ry.Fence(), x.ID, persistence.StatusActive)
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if ad.Attempt != rx.Attempt+1 || ad.Owner != c || ad.Status != persistence.StatusActive {
		t.Fatalf("Adopt: want ACTIVE owned by %s with attempt %d, got %s owned by %s attempt %d", c, rx.Attempt+1, ad.Status, ad.Owner, ad.Attempt)
	}
	if got := b.get(x.Ref); got.Attempt != ad.Attempt || got.Owner != c {
		t.Fatalf("Get after Adopt: want owner %s attempt %d, got %s attempt %d", c, ad.Attempt, got.Owner, got.Attempt)
	}
	err = b.s.SaveRetry(b.ctx, rx.Fence(), persistence.RetryCounts{"x": 1})
	fcWantReassigned(t, "SaveRetry by the adopted job's previous run", err)
	_, err = b.s.Commit(b.ctx, rx.Fence(), persistence.Outcome{Result: json.RawMessage(`13`)})
	fcWantReassigned(t, "Commit by the adopted job's previous run", err)
	if got := b.get(x.Ref); got.Result != nil || len(got.Retry) != 0 {
		t.Fatalf("refused writes must change nothing: want no result or counters, got %s, %v", got.Result, got.Retry)
	}
	c42, err := b.s.Commit(b.ctx, ad.Fence(), persistence.Outcome{Result: json.RawMessage(`42`)})
	if err != nil {
		t.Fatalf("Commit with the adoption's fence: %v", err)
	}
	if string(c42.Result) != "42" || c42.Status != persistence.StatusCallbacks {
		t.Fatalf("Commit with the adoption's fence: want 42 in CALLBACKS, got %s in %s", c42.Result, c42.Status)
	}
	// The adopting run itself is untouched.
	if got := b.get(y.Ref); got.Status != persistence.StatusActive || got.Owner != c || got.Attempt != ry.Attempt {
		t.Fatalf("the adopting job: want ACTIVE owned by %s attempt %d, got %s, %s, %d", c, ry.Attempt, got.Status, got.Owner, got.Attempt)
	}
}

// A refused late commit leaves a trace on the job: the stale run's entry in Attempts says
// when, and nothing else of the job changes. A second refusal of the same run updates that
// entry rather than adding one; other stale writes (a Start) leave no note.
func testFencingLateCommitNoted(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	a := b.dispatcher()
	oldFence := b.qrRun(a, x.ID).Fence()
	sys := b.qrInterrupt(a, x.ID)
	rb := b.qrRun(b.qrHandleInterrupt(sys, persistence.RetryCommonFourTimes).runner, x.ID)
	if _, err := b.s.Start(b.ctx, oldFence); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("stale Start: %v, want ErrReassigned", err)
	}
	if n := lateNotes(b.get(x.Ref), oldFence); n != 0 {
		t.Fatalf("a stale Start left %d late-commit notes, want none", n)
	}
	before := fcSnap(b.get(x.Ref))
	for range 2 {
		_, err := b.s.Commit(b.ctx, oldFence, persistence.Outcome{Result: json.RawMessage(`13`)})
		fcWantReassigned(t, "Commit", err)
	}
	b.fcUnchanged(x.Ref, before, "A's late commits")
	j := b.get(x.Ref)
	if n := lateNotes(j, oldFence); n != 1 {
		t.Fatalf("after two refused commits of one run: %d entries of it with LateCommit, want 1: %+v", n, j.Attempts)
	}
	for _, at := range j.Attempts {
		if at.Attempt == rb.Attempt && !at.LateCommit.IsZero() {
			t.Fatalf("the current run is marked late: %+v", at)
		}
	}
	if c := b.commit(rb.Fence(), `42`); string(c.Result) != "42" {
		t.Fatalf("the current run's commit after the note: %s", c.Result)
	}
}

// lateNotes counts j's entries for the run f names that carry a refused late commit.
func lateNotes(j *persistence.Job, f persistence.Fence) int {
	n := 0
	for _, a := range j.Attempts {
		if a.Attempt == f.Attempt && a.Owner == f.Owner.String() && !a.LateCommit.IsZero() {
			n++
		}
	}
	return n
}
