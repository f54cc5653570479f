package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

func init() {
	register("Revoke",
		testCase{"PendingAndScheduled", testRevokeWaiting},
		testCase{"RunningIsFencedOut", testRevokeRunning},
		testCase{"CommitWinsFirst", testRevokeAfterCommit},
		testCase{"NoticeReachesSubscribers", testRevokeNotice},
		testCase{"BadInput", testRevokeBadInput},
		testCase{"RacesCommit", testRevokeRacesCommit},
	)
	register("Pause",
		testCase{"ClaimsNothingWhilePaused", testPauseClaims},
		testCase{"StatsAndIdempotence", testPauseStats},
	)
}

// cancelled is the failure tests revoke with.
func cancelled() *persistence.Failure {
	return persistence.NewFailure(persistence.ErrCancelled, "")
}

// wantRevoked checks that j is failed as cancelled, in CALLBACKS with no owner or holder, out
// of its queue, and that a resumeCallbacks job for it waits in the queue.
func (b *bundle) wantRevoked(j *persistence.Job) {
	b.t.Helper()
	got := b.get(j.Ref)
	if got.Status != persistence.StatusCallbacks || !errors.Is(got.Failure, persistence.ErrCancelled) ||
		!got.Owner.IsZero() || !got.Holder.IsZero() {
		b.t.Fatalf("revoked job: %s, failure %v, owner %q, holder %q; want CALLBACKS, cancelled, no owner", got.Status, got.Failure, got.Owner, got.Holder)
	}
	var resumers int
	for _, id := range b.pending(Queue) {
		if id == j.ID {
			b.t.Fatalf("revoked job %s still in the queue", j.ID)
		}
		if sys := b.get(j.Ref.In(id)); sys.Call.Handler == persistence.HandlerResumeCallbacks && sys.Target == j.ID {
			resumers++
		}
	}
	if resumers != 1 {
		b.t.Fatalf("%d resumeCallbacks jobs for %s, want 1", resumers, j.ID)
	}
}

// A due job and a scheduled one are revoked out of the queue, and each gets a job to run its
// callbacks.
func testRevokeWaiting(t *testing.T, h Harness) {
	b := setup(t, h)
	due := b.putCall("work")
	later := b.put(Queue, persistence.JobSpec{Call: call("later"), BeginAfter: Epoch.Add(time.Hour)})
	for _, j := range []*persistence.Job{due, later} {
		if _, err := b.s.Revoke(b.ctx, j.Ref, cancelled()); err != nil {
			t.Fatalf("Revoke(%s): %v", j.Ref, err)
		}
		b.wantRevoked(j)
	}
	st, err := b.s.Stats(b.ctx, Queue)
	if err != nil || st.Scheduled != 0 {
		t.Fatalf("Stats after revokes: %+v %v, want nothing scheduled", st, err)
	}
}

// A running job is revoked: its slot is free at once, and each later write of its run is
// refused as reassigned, whether it commits alone or in a batch.
func testRevokeRunning(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	one, two := b.putCall("one"), b.putCall("two")
	r1 := b.start(b.claimOne(o, nil).Fence())
	r2 := b.start(b.claimOne(o, nil).Fence())
	for _, r := range []*persistence.Job{r1, r2} {
		if _, err := b.s.Revoke(b.ctx, r.Ref, cancelled()); err != nil {
			t.Fatalf("Revoke(%s) of a running job: %v", r.Ref, err)
		}
	}
	b.wantRevoked(one)
	b.wantRevoked(two)
	held, err := b.s.AgentJobs(b.ctx, Queue, o)
	if err != nil || len(held) != 0 {
		t.Fatalf("agent holds %v (%v) after the revokes, want nothing", held, err)
	}
	if _, err := b.s.Commit(b.ctx, r1.Fence(), persistence.Outcome{Result: json.RawMessage("1"), Complete: true}); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("Commit of a revoked run: %v, want ErrReassigned", err)
	}
	_, errs, err := b.s.CommitMany(b.ctx, []persistence.Commit{{Fence: r2.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage("2"), Complete: true}, Known: r2}})
	if err != nil || !errors.Is(errs[0], persistence.ErrReassigned) {
		t.Fatalf("CommitMany of a revoked run: %v %v, want ErrReassigned", errs, err)
	}
	if err := b.s.SaveRetry(b.ctx, r1.Fence(), persistence.RetryCounts{"x": 1}); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("SaveRetry of a revoked run: %v, want ErrReassigned", err)
	}
	b.wantRevoked(one) // the refused writes changed nothing
	if _, err := b.s.Revoke(b.ctx, one.Ref, cancelled()); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("second Revoke: %v, want ErrBadStatus (its outcome is stored)", err)
	}
}

// A run that commits first wins: the revoke is refused and changes nothing.
func testRevokeAfterCommit(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.putCall("work")
	r := b.start(b.claimOne(o, nil).Fence())
	done := b.commit(r.Fence(), "7")
	if _, err := b.s.Revoke(b.ctx, j.Ref, cancelled()); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Revoke in CALLBACKS: %v, want ErrBadStatus", err)
	}
	b.complete(done.Fence(), 0)
	if _, err := b.s.Revoke(b.ctx, j.Ref, cancelled()); !errors.Is(err, persistence.ErrBadStatus) {
		t.Fatalf("Revoke when COMPLETED: %v, want ErrBadStatus", err)
	}
	if got := b.get(j.Ref); got.Status != persistence.StatusCompleted || string(got.Result) != "7" {
		t.Fatalf("after refused revokes: %s %s, want COMPLETED with 7", got.Status, got.Result)
	}
	if p := b.pending(Queue); len(p) != 0 {
		t.Fatalf("refused revokes queued %v", p)
	}
}

// Revoking a job a run may hold tells the queue's subscribers, with a notice naming the job;
// revoking a job that waits in its queue wakes no one.
func testRevokeNotice(t *testing.T, h Harness) {
	b := setup(t, h)
	sub, err := b.s.Subscribe(b.ctx, Queue)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()
	o := b.dispatcher()
	waiting := b.putCall("waiting")
	running := b.putCall("running")
	<-sub.C() // the puts' wake-ups
	<-sub.C()
	if _, err := b.s.Revoke(b.ctx, waiting.Ref, cancelled()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	var r *persistence.Job
	for _, j := range b.claim(o, 3, nil) {
		if j.ID == running.ID {
			r = j
		}
	}
	if r == nil {
		t.Fatalf("running job not claimed")
	}
	if _, err := b.s.Revoke(b.ctx, r.Ref, cancelled()); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case v := <-sub.C():
			ref, ok := persistence.ParseRevokeNotice(v)
			if !ok {
				if v != Queue {
					t.Fatalf("subscription delivered %q, want a wake-up or a notice", v)
				}
				continue // a wake-up (the resumeCallbacks jobs)
			}
			if ref != running.Ref {
				t.Fatalf("notice names %s, want %s (the waiting job notifies no one)", ref, running.Ref)
			}
			return
		case <-deadline:
			t.Fatalf("no revoke notice")
		}
	}
}

// Bad input changes nothing.
func testRevokeBadInput(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.putCall("work")
	if _, err := b.s.Revoke(b.ctx, j.Ref.In("nope"), cancelled()); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("Revoke of an unknown job: %v, want ErrNotFound", err)
	}
	if _, err := b.s.Revoke(b.ctx, j.Ref, nil); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("Revoke with no failure: %v, want ErrInvalid", err)
	}
	if _, err := b.s.Revoke(b.ctx, persistence.Ref{Queue: "a:b", ID: "x"}, cancelled()); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("Revoke in a bad queue name: %v, want ErrInvalid", err)
	}
	if got := b.get(j.Ref); got.Status != persistence.StatusPending {
		t.Fatalf("after bad revokes: %s, want PENDING", got.Status)
	}
}

// A paused queue takes puts and hands out nothing, with or without a filter (the script and
// the transaction); once resumed, its jobs are claimed in order.
func testPauseClaims(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	first := b.putCall("first")
	if changed, err := b.s.SetPaused(b.ctx, Queue, true); err != nil || !changed {
		t.Fatalf("pause: %v %v, want changed", changed, err)
	}
	b.putCall("second")
	if got := b.claim(o, 3, nil); len(got) != 0 {
		t.Fatalf("claimed %v from a paused queue", ids(got))
	}
	if got := b.claim(o, 3, func(*persistence.Job) bool { return true }); len(got) != 0 {
		t.Fatalf("claimed %v with a filter from a paused queue", ids(got))
	}
	if changed, err := b.s.SetPaused(b.ctx, Queue, false); err != nil || !changed {
		t.Fatalf("resume: %v %v, want changed", changed, err)
	}
	if got := b.claimOne(o, nil); got == nil || got.ID != first.ID {
		t.Fatalf("after resume claimed %v, want %s", got, first.ID)
	}
}

// Stats and Paused tell a paused queue; pausing twice or resuming a running queue changes
// nothing; the dispatchers' listing is not disturbed by the mark.
func testPauseStats(t *testing.T, h Harness) {
	b := setup(t, h)
	b.dispatcher()
	for _, step := range []struct {
		paused, changed bool
	}{{true, true}, {true, false}, {false, true}, {false, false}, {true, true}} {
		changed, err := b.s.SetPaused(b.ctx, Queue, step.paused)
		if err != nil || changed != step.changed {
			t.Fatalf("SetPaused(%v): %v %v, want changed %v", step.paused, changed, err, step.changed)
		}
		paused, err := b.s.Paused(b.ctx, Queue)
		st, serr := b.s.Stats(b.ctx, Queue)
		if err != nil || serr != nil || paused != step.paused || st.Paused != step.paused {
			t.Fatalf("after SetPaused(%v): Paused %v (%v), Stats %+v (%v)", step.paused, paused, err, st, serr)
		}
	}
	recs, err := b.s.Dispatchers(b.ctx, Queue)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Dispatchers of a paused queue: %d records, %v; want 1", len(recs), err)
	}
	if _, err := b.s.SetPaused(b.ctx, "a b", true); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("pause of a bad name: %v, want ErrInvalid", err)
	}
}

// A revoke and the run's own commit race, a thousand times: one of them goes first in a third
// of the rounds each, and the two go at once in the others, half of the commits through
// CommitMany (the script) and half through Commit (the transaction). Each round has exactly
// one winner, the loser is told (ErrReassigned for the commit, ErrBadStatus for the revoke),
// and the record is the winner's alone.
func testRevokeRacesCommit(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	const rounds = 1000
	wins := map[string]int{}
	for i := range rounds {
		j := b.putCall("work", i)
		r := b.start(b.claimOne(o, nil).Fence())
		result := json.RawMessage(fmt.Sprint(i))
		var commitErr, revokeErr error
		commit := func() {
			_, commitErr = dspRetry(func() (*persistence.Job, error) {
				out := persistence.Outcome{Result: result, Complete: true}
				if i%2 == 0 {
					return b.s.Commit(b.ctx, r.Fence(), out)
				}
				_, errs, err := b.s.CommitMany(b.ctx, []persistence.Commit{{Fence: r.Fence(), Outcome: out, Known: r}})
				if err == nil {
					err = errs[0]
				}
				return nil, err
			})
		}
		revoke := func() {
			_, revokeErr = dspRetry(func() (*persistence.Job, error) { return b.s.Revoke(b.ctx, j.Ref, cancelled()) })
		}
		switch i % 3 {
		case 0:
			commit()
			revoke()
		case 1:
			revoke()
			commit()
		default:
			var wg sync.WaitGroup
			start := make(chan struct{})
			wg.Go(func() { <-start; commit() })
			wg.Go(func() { <-start; revoke() })
			close(start)
			wg.Wait()
		}
		got := b.get(j.Ref)
		switch {
		case commitErr == nil && errors.Is(revokeErr, persistence.ErrBadStatus):
			wins["commit"]++
			if got.Status != persistence.StatusCompleted || string(got.Result) != string(result) || got.Failure != nil || got.Owner != o {
				t.Fatalf("round %d, the commit won: %s, result %s, failure %v, owner %q", i, got.Status, got.Result, got.Failure, got.Owner)
			}
		case revokeErr == nil && errors.Is(commitErr, persistence.ErrReassigned):
			wins["revoke"]++
			b.wantRevoked(j)
		default:
			t.Fatalf("round %d: commit %v, revoke %v; want exactly one to win and the other told", i, commitErr, revokeErr)
		}
		for _, id := range b.pending(Queue) { // the resumeCallbacks job, not run here
			if _, err := b.s.Remove(b.ctx, j.Ref.In(id)); err != nil {
				t.Fatalf("Remove: %v", err)
			}
		}
		if held, err := b.s.AgentJobs(b.ctx, Queue, o); err != nil || len(held) != 0 {
			t.Fatalf("round %d: the agent holds %v (%v), want nothing", i, held, err)
		}
	}
	if wins["commit"] < rounds/3 || wins["revoke"] < rounds/3 {
		t.Fatalf("wins %v: each side goes first in a third of the rounds", wins)
	}
	t.Logf("wins over %d rounds: %v", rounds, wins)
}
