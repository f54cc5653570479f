package storetest

import (
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Retry: interruptions and retry decisions applied through the store (zc.async's
// scenarios 15-17 and 25), and retry counters persisting in the job record.
func init() {
	register("Retry",
		testCase{"DefaultPolicies", testRetryDefaultPolicies},
		testCase{"InterruptedPutBackFirst", testRetryInterruptedPutBackFirst},
		testCase{"TenthInterruptionAborts", testRetryTenthInterruptionAborts},
		testCase{"InterruptedRetryAt", testRetryInterruptedRetryAt},
		testCase{"InterruptedRetryAfter", testRetryInterruptedRetryAfter},
		testCase{"JobErrorRetryAfter", testRetryJobErrorRetryAfter},
		testCase{"RescheduleNowFromAssigned", testRetryRescheduleNowFromAssigned},
		testCase{"SaveRetryPersists", testRetrySaveRetryPersists},
		testCase{"RescheduleCounts", testRetryRescheduleCounts},
		testCase{"CommitStoresCounts", testRetryCommitStoresCounts},
		testCase{"CountsSurviveReclaim", testRetryCountsSurviveReclaim},
	)
}

// Scenario 25: a queued job gets RetryCommonFourTimes and ERROR unless told otherwise; the
// choice is stored on the job by name; system jobs get RetryCommonForever and CRITICAL.
func testRetryDefaultPolicies(t *testing.T, h Harness) {
	b := setup(t, h)
	def := b.putCall("default")
	for _, j := range []*persistence.Job{def, b.get(def.Ref)} {
		if j.RetryPolicy != persistence.RetryCommonFourTimesName {
			t.Fatalf("default policy: want %s stored, got %q", persistence.RetryCommonFourTimesName, j.RetryPolicy)
		}
		if j.FailureLogLevel != slog.LevelError {
			t.Fatalf("default failure log level: want ERROR, got %v", j.FailureLogLevel)
		}
		if len(j.Retry) != 0 {
			t.Fatalf("a new job: want no retry counters, got %v", j.Retry)
		}
	}
	if p, err := def.Policy(persistence.NewRetryPolicies()); err != nil || p != persistence.RetryCommonFourTimes {
		t.Fatalf("the stored policy name must resolve to RetryCommonFourTimes, got %v, %v", p, err)
	}
	warn := slog.LevelWarn
	never := b.put(Queue, persistence.JobSpec{Call: call("pay"), RetryPolicy: persistence.NeverRetryName, FailureLogLevel: &warn})
	if got := b.get(never.Ref); got.RetryPolicy != persistence.NeverRetryName || got.FailureLogLevel != slog.LevelWarn {
		t.Fatalf("explicit policy and level: want NeverRetry at WARN, got %q at %v", got.RetryPolicy, got.FailureLogLevel)
	}
	custom := b.put(Queue, persistence.JobSpec{Call: call("c"), RetryPolicy: "storetest.fixed"})
	if got := b.get(custom.Ref); got.RetryPolicy != "storetest.fixed" {
		t.Fatalf("user policy: want storetest.fixed stored, got %q", got.RetryPolicy)
	}
	// System jobs (checked by qrInterrupt): RetryCommonForever, CRITICAL, target set.
	a := b.dispatcher()
	b.qrRun(a, def.ID)
	sys := b.get(def.Ref.In(b.qrInterrupt(a, def.ID)))
	if !sys.Call.IsSystem() || sys.Target != def.ID {
		t.Fatalf("system job: want a system call targeting %s, got %s targeting %q", def.ID, sys.Call.Handler, sys.Target)
	}
}

// Scenario 15: an interrupted job under the default policy comes back first in the queue,
// PENDING, ahead of older pending jobs, with the interruption counted.
func testRetryInterruptedPutBackFirst(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	older1 := b.putCall("older1")
	older2 := b.putCall("older2")
	a := b.dispatcher()
	b.qrRun(a, x.ID)
	sys := b.qrInterrupt(a, x.ID)
	if p := b.pending(Queue); !slices.Equal(p, []string{sys, older1.ID, older2.ID}) {
		t.Fatalf("after the interruption: want [handleInterrupt older1 older2], got %v", p)
	}
	rec := b.qrHandleInterrupt(sys, persistence.RetryCommonFourTimes)
	if rec.decision.Action != persistence.ActionRetryNow || rec.decision.Count != 1 {
		t.Fatalf("first interruption: want retry now counted 1, got %s count %d", rec.decision, rec.decision.Count)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{x.ID, older1.ID, older2.ID}) {
		t.Fatalf("put back: want [x older1 older2], got %v", p)
	}
	got := b.get(x.Ref)
	if got.Status != persistence.StatusPending || got.Result != nil || got.Failure != nil {
		t.Fatalf("put-back job: want PENDING with no outcome, got %s, %s, %+v", got.Status, got.Result, got.Failure)
	}
	if got.Retry[persistence.CountInterruptions] != 1 {
		t.Fatalf("put-back job: want Retry[interruptions] = 1 in the record, got %v", got.Retry)
	}
	st, err := b.s.Stats(b.ctx, Queue)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	o := b.dispatcher()
	if c := b.claimOne(o, nil); c == nil || c.ID != x.ID {
		t.Fatalf("next claim: want the put-back job %s, got %v", x.ID, c)
	}
	// Checked last, so that the claim order is checked whatever the counts say.
	if st.Due != 3 || st.PutBack != 1 || st.Scheduled != 0 {
		t.Fatalf("Stats with three jobs due, one put back: want {Due:3 Scheduled:0 PutBack:1}, got %+v", st)
	}
}

// Scenario 16: nine interruptions put the job back; the tenth aborts it with AbortedError. The
// counter persists in the job record between runs, on different dispatchers.
func testRetryTenthInterruptionAborts(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("poison")
	other := b.putCall("other")
	runner := b.dispatcher()
	for n := 1; n <= 10; n++ {
		if p := b.pending(Queue); len(p) == 0 || p[0] != x.ID {
			t.Fatalf("round %d: want the job first in the queue, got %v", n, p)
		}
		b.qrRun(runner, x.ID)
		sys := b.qrInterrupt(runner, x.ID)
		rec := b.qrHandleInterrupt(sys, persistence.RetryCommonFourTimes)
		runner = rec.runner
		got := b.get(x.Ref)
		if got.Retry[persistence.CountInterruptions] != n {
			t.Fatalf("round %d: want Retry[interruptions] = %d in the record, got %v", n, n, got.Retry)
		}
		if n < 10 {
			if rec.decision.Action != persistence.ActionRetryNow {
				t.Fatalf("interruption %d: want retry now, got %s", n, rec.decision)
			}
			if got.Status != persistence.StatusPending || got.Failure != nil {
				t.Fatalf("interruption %d: want PENDING without failure, got %s, %+v", n, got.Status, got.Failure)
			}
			continue
		}
		if rec.decision.Action != persistence.ActionStop {
			t.Fatalf("interruption 10: want stop, got %s", rec.decision)
		}
		if got.Status != persistence.StatusCompleted {
			t.Fatalf("interruption 10: want COMPLETED, got %s", got.Status)
		}
		if got.Failure == nil || !persistence.IsKind(got.Failure, "AbortedError") || got.Result != nil {
			t.Fatalf("interruption 10: want an AbortedError failure and no result, got %+v, %s", got.Failure, got.Result)
		}
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{other.ID}) {
		t.Fatalf("after the abort: want only the other job pending, got %v", p)
	}
}

// Scenario 17: an interruption answered with RetryAt(3000-01-01) reschedules the job: PENDING,
// scheduled, not claimable until the clock passes it.
func testRetryInterruptedRetryAt(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.put(Queue, persistence.JobSpec{Call: call("x"), RetryPolicy: "storetest.fixed"})
	a := b.dispatcher()
	b.qrRun(a, x.ID)
	sys := b.qrInterrupt(a, x.ID)
	at := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := b.qrHandleInterrupt(sys, qrFixedPolicy{persistence.RetryAt(at)})
	qrWantScheduled(b, x.Ref, at, rec)
}

// Scenario 17: an interruption answered with RetryAfter(1h) reschedules the job an hour on.
func testRetryInterruptedRetryAfter(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.put(Queue, persistence.JobSpec{Call: call("x"), RetryPolicy: "storetest.fixed"})
	a := b.dispatcher()
	b.qrRun(a, x.ID)
	sys := b.qrInterrupt(a, x.ID)
	rec := b.qrHandleInterrupt(sys, qrFixedPolicy{persistence.RetryAfter(time.Hour)})
	qrWantScheduled(b, x.Ref, b.clock.Now().Add(time.Hour), rec)
}

// qrWantScheduled checks a job rescheduled to at: PENDING, counted as scheduled, unclaimable
// before at and claimable at it.
func qrWantScheduled(b *bundle, ref persistence.Ref, at time.Time, rec qrRecovery) {
	b.t.Helper()
	got := b.get(ref)
	if got.Status != persistence.StatusPending || !got.BeginAfter.Equal(at) {
		b.t.Fatalf("rescheduled job: want PENDING beginning after %s, got %s after %s", at, got.Status, got.BeginAfter)
	}
	if got.Retry[persistence.CountInterruptions] != 1 {
		b.t.Fatalf("rescheduled job: want the interruption counted in the record, got %v", got.Retry)
	}
	st, err := b.s.Stats(b.ctx, Queue)
	if err != nil {
		b.t.Fatalf("Stats: %v", err)
	}
	if st.Scheduled != 1 || st.Due != 0 || st.PutBack != 0 {
		b.t.Fatalf("Stats: want 1 scheduled, none due, none put back, got %+v", st)
	}
	o := b.dispatcher()
	b.qrClaimNone(o, "a job scheduled for "+at.String())
	b.clock.Set(at.Add(-time.Second))
	o = b.dispatcher() // dispatchers activated before the jump are dead by now
	b.qrClaimNone(o, "one second before its begin_after")
	b.clock.Set(at)
	c := b.qrClaimExactly(o, ref.ID, "at its begin_after")
	if c.Attempt <= rec.job.Attempt {
		b.t.Fatalf("re-claim: want attempt above %d, got %d", rec.job.Attempt, c.Attempt)
	}
}

// Scenario 17: a job error answered with RetryAfter(1h) reschedules the running job.
func testRetryJobErrorRetryAfter(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	later := b.putCall("later")
	o := b.dispatcher()
	r := b.qrRun(o, x.ID)
	counts := persistence.RetryCounts{"custom": 1}
	d := qrFixedPolicy{persistence.RetryAfter(time.Hour)}.JobError(nil, counts)
	now := b.clock.Now()
	at, putBack := d.When(now)
	if putBack || !at.Equal(now.Add(time.Hour)) {
		t.Fatalf("When: want %s, not a put back; got %s, %v", now.Add(time.Hour), at, putBack)
	}
	rs, err := b.s.Reschedule(b.ctx, r.Fence(), at, counts)
	if err != nil {
		t.Fatalf("Reschedule(+1h): %v", err)
	}
	if rs.Status != persistence.StatusPending || !rs.BeginAfter.Equal(at) {
		t.Fatalf("Reschedule(+1h): want PENDING beginning after %s, got %s after %s", at, rs.Status, rs.BeginAfter)
	}
	if got := b.get(x.Ref); got.Retry["custom"] != 1 || got.Status != persistence.StatusPending {
		t.Fatalf("rescheduled job: want PENDING with counters {custom:1}, got %s with %v", got.Status, got.Retry)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{later.ID, x.ID}) {
		t.Fatalf("want the due job before the scheduled one, got %v", p)
	}
	st, err := b.s.Stats(b.ctx, Queue)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	b.qrClaimExactly(o, later.ID, "the due job")
	b.qrClaimNone(o, "the job rescheduled for an hour later")
	b.clock.Advance(time.Hour)
	o = b.dispatcher() // the first one is dead by now
	b.qrClaimExactly(o, x.ID, "the rescheduled job once due")
	// Checked last, so that the claims are checked whatever the counts say.
	if st.Scheduled != 1 || st.Due != 1 {
		t.Fatalf("Stats with one job due and one an hour ahead: want {Due:1 Scheduled:1}, got %+v", st)
	}
}

// Reschedule at now of an ASSIGNED job puts it back at the front of the queue.
func testRetryRescheduleNowFromAssigned(t *testing.T, h Harness) {
	b := setup(t, h)
	older := b.putCall("older")
	x := b.putCall("x")
	o := b.dispatcher()
	c := b.qrClaimID(o, x.ID)
	rs, err := b.s.Reschedule(b.ctx, c.Fence(), b.clock.Now(), nil)
	if err != nil {
		t.Fatalf("Reschedule(now): %v", err)
	}
	if rs.Status != persistence.StatusPending {
		t.Fatalf("Reschedule(now): want PENDING, got %s", rs.Status)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{x.ID, older.ID}) {
		t.Fatalf("put back: want [x older], got %v", p)
	}
	b.qrClaimExactly(o, x.ID, "the put-back job first")
}

// SaveRetry stores the counters of a running job; Get shows them.
func testRetrySaveRetryPersists(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	o := b.dispatcher()
	r := b.qrRun(o, x.ID)
	counts := persistence.RetryCounts{}
	persistence.RetryCommonFourTimes.JobError(persistence.ErrConflict, counts)
	persistence.RetryCommonFourTimes.JobError(persistence.ErrConflict, counts)
	if err := b.s.SaveRetry(b.ctx, r.Fence(), counts); err != nil {
		t.Fatalf("SaveRetry: %v", err)
	}
	got := b.get(x.Ref)
	if !maps.Equal(got.Retry, persistence.RetryCounts{persistence.CountConflicts: 2}) {
		t.Fatalf("after SaveRetry: want {conflicts:2}, got %v", got.Retry)
	}
	if got.Status != persistence.StatusActive || got.Owner != o || got.Attempt != r.Attempt {
		t.Fatalf("SaveRetry must not change the run: want ACTIVE owned by %s attempt %d, got %s, %s, %d", o, r.Attempt, got.Status, got.Owner, got.Attempt)
	}
	// Replaced, not merged.
	if err := b.s.SaveRetry(b.ctx, r.Fence(), persistence.RetryCounts{persistence.CountUnavailable: 7}); err != nil {
		t.Fatalf("second SaveRetry: %v", err)
	}
	if got := b.get(x.Ref); !maps.Equal(got.Retry, persistence.RetryCounts{persistence.CountUnavailable: 7}) {
		t.Fatalf("after a second SaveRetry: want {unavailable:7}, got %v", got.Retry)
	}
	// The counters still work with a policy after being read back.
	back := b.get(x.Ref).Retry
	for range 3 {
		persistence.RetryCommonFourTimes.JobError(persistence.ErrConflict, back)
	}
	if err := b.s.SaveRetry(b.ctx, r.Fence(), back); err != nil {
		t.Fatalf("third SaveRetry: %v", err)
	}
	if got := b.get(x.Ref); got.Retry[persistence.CountConflicts] != 3 || got.Retry[persistence.CountUnavailable] != 7 {
		t.Fatalf("after a third SaveRetry: want {conflicts:3 unavailable:7}, got %v", got.Retry)
	}
}

// Reschedule with counts replaces the counters; with nil it keeps them.
func testRetryRescheduleCounts(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	o := b.dispatcher()
	r := b.qrRun(o, x.ID)
	if err := b.s.SaveRetry(b.ctx, r.Fence(), persistence.RetryCounts{"a": 1, "b": 2}); err != nil {
		t.Fatalf("SaveRetry: %v", err)
	}
	if _, err := b.s.Reschedule(b.ctx, r.Fence(), b.clock.Now(), nil); err != nil {
		t.Fatalf("Reschedule(nil counts): %v", err)
	}
	if got := b.get(x.Ref); !maps.Equal(got.Retry, persistence.RetryCounts{"a": 1, "b": 2}) {
		t.Fatalf("Reschedule with nil counts: want {a:1 b:2} kept, got %v", got.Retry)
	}
	r = b.qrRun(o, x.ID)
	if _, err := b.s.Reschedule(b.ctx, r.Fence(), b.clock.Now().Add(time.Minute), persistence.RetryCounts{"c": 3}); err != nil {
		t.Fatalf("Reschedule(counts): %v", err)
	}
	if got := b.get(x.Ref); !maps.Equal(got.Retry, persistence.RetryCounts{"c": 3}) {
		t.Fatalf("Reschedule with counts: want {c:3} replacing the old ones, got %v", got.Retry)
	}
}

// Commit with Outcome.Retry stores the counters with the outcome.
func testRetryCommitStoresCounts(t *testing.T, h Harness) {
	b := setup(t, h)
	ok := b.putCall("ok")
	bad := b.putCall("bad")
	o := b.dispatcher()
	r := b.qrRun(o, ok.ID)
	c, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Result: json.RawMessage(`42`), Retry: persistence.RetryCounts{persistence.CountConflicts: 2}})
	if err != nil {
		t.Fatalf("Commit(42, counts): %v", err)
	}
	if got := b.get(ok.Ref); string(got.Result) != "42" || got.Retry[persistence.CountConflicts] != 2 || c.Status != persistence.StatusCallbacks {
		t.Fatalf("Commit with counts: want 42 and {conflicts:2} in CALLBACKS, got %s, %v, %s", got.Result, got.Retry, c.Status)
	}
	r = b.qrRun(o, bad.ID)
	if err := b.s.SaveRetry(b.ctx, r.Fence(), persistence.RetryCounts{"old": 1}); err != nil {
		t.Fatalf("SaveRetry: %v", err)
	}
	f := persistence.NewFailure(persistence.ErrConflict, "stack")
	if _, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Failure: f, Retry: persistence.RetryCounts{persistence.CountConflicts: 5}, Complete: true}); err != nil {
		t.Fatalf("Commit(failure, counts): %v", err)
	}
	got := b.get(bad.Ref)
	if !maps.Equal(got.Retry, persistence.RetryCounts{persistence.CountConflicts: 5}) {
		t.Fatalf("Commit of a failure with counts: want {conflicts:5}, got %v", got.Retry)
	}
	if got.Status != persistence.StatusCompleted || got.Failure == nil || got.Failure.Type != "ConflictError" || got.Failure.Stack != "stack" {
		t.Fatalf("Commit of a failure: want COMPLETED with the ConflictError failure, got %s with %+v", got.Status, got.Failure)
	}
}

// Counters survive a put back and a new claim on another dispatcher.
func testRetryCountsSurviveReclaim(t *testing.T, h Harness) {
	b := setup(t, h)
	x := b.putCall("x")
	a := b.dispatcher()
	b.qrRun(a, x.ID)
	sys := b.qrInterrupt(a, x.ID)
	rec := b.qrHandleInterrupt(sys, persistence.RetryCommonFourTimes)
	r := b.qrRun(rec.runner, x.ID)
	if r.Retry[persistence.CountInterruptions] != 1 {
		t.Fatalf("started again: want Retry[interruptions] = 1 on the job, got %v", r.Retry)
	}
	c := b.commit(r.Fence(), `42`)
	if c.Retry[persistence.CountInterruptions] != 1 || b.get(x.Ref).Retry[persistence.CountInterruptions] != 1 {
		t.Fatalf("committed without new counts: want Retry[interruptions] = 1 kept, got %v", b.get(x.Ref).Retry)
	}
}
