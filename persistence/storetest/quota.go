package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Quota: strict per-queue limits on jobs naming a quota (zc.async's scenarios 10-14, 18
// and 19). A job takes a slot of each of its quotas that exists when it is claimed; the slot is
// released when its outcome is committed, when it is failed, rescheduled for later or requeued
// by cleaning, and kept when it is put back at the front of the queue.
func init() {
	register("Quota",
		testCase{"Lifecycle", testQuotaLifecycle},
		testCase{"UnknownNameOnPut", testQuotaUnknownNameOnPut},
		testCase{"UnknownNameOnUpdate", testQuotaUnknownNameOnUpdate},
		testCase{"SizeOne", testQuotaSizeOne},
		testCase{"SizeTwoThenShrink", testQuotaSizeTwoThenShrink},
		testCase{"Grow", testQuotaGrow},
		testCase{"RemovedNameIgnored", testQuotaRemovedNameIgnored},
		testCase{"SecondRunsAfterFirst", testQuotaSecondRunsAfterFirst},
		testCase{"SeveralQuotas", testQuotaSeveralQuotas},
		testCase{"ReleasedByFail", testQuotaReleasedByFail},
		testCase{"RescheduleLaterReleases", testQuotaRescheduleLaterReleases},
		testCase{"RescheduleNowKeeps", testQuotaRescheduleNowKeeps},
		testCase{"ReleasedByCleanRequeue", testQuotaReleasedByCleanRequeue},
		testCase{"InterruptedRetryNowKeepsSlot", testQuotaInterruptedRetryNowKeepsSlot},
		testCase{"InterruptedRetryLaterFreesSlot", testQuotaInterruptedRetryLaterFreesSlot},
		testCase{"ConcurrentClaimsStrict", testQuotaConcurrentClaimsStrict},
	)
}

// ---- helpers shared by quota.go, retry.go and fencing.go (prefix qr) ----

// qrCreateQuota creates quota name of size in Queue, failing on error.
func (b *bundle) qrCreateQuota(name string, size int) {
	b.t.Helper()
	if err := b.s.CreateQuota(b.ctx, Queue, name, size); err != nil {
		b.t.Fatalf("CreateQuota(%s, %d): want success, got %v", name, size, err)
	}
}

// qrPutQuota puts a job calling handler that names quotas.
func (b *bundle) qrPutQuota(handler string, quotas ...string) *persistence.Job {
	b.t.Helper()
	return b.put(Queue, persistence.JobSpec{Call: call(handler), QuotaNames: quotas})
}

// qrHolders returns the sorted holders of quota name.
func (b *bundle) qrHolders(name string) []string {
	b.t.Helper()
	qi, err := b.s.Quota(b.ctx, Queue, name)
	if err != nil {
		b.t.Fatalf("Quota(%s): %v", name, err)
	}
	h := slices.Clone(qi.Holders)
	slices.Sort(h)
	return h
}

// qrWantHolders fails unless quota name is held by exactly want.
func (b *bundle) qrWantHolders(name string, want ...string) {
	b.t.Helper()
	w := slices.Clone(want)
	slices.Sort(w)
	if got := b.qrHolders(name); !slices.Equal(got, w) {
		b.t.Fatalf("quota %s: want holders %v, got %v", name, w, got)
	}
}

// qrClaimNone fails if o can claim anything.
func (b *bundle) qrClaimNone(o persistence.Owner, why string) {
	b.t.Helper()
	if jobs := b.claim(o, 10, nil); len(jobs) != 0 {
		b.t.Fatalf("%s: want nothing claimable, got %v", why, ids(jobs))
	}
}

// qrClaimExactly claims one job for o (no filter) and fails unless it is id.
func (b *bundle) qrClaimExactly(o persistence.Owner, id, why string) *persistence.Job {
	b.t.Helper()
	j := b.claimOne(o, nil)
	if j == nil {
		b.t.Fatalf("%s: want %s claimed, got nothing", why, id)
	}
	if j.ID != id {
		b.t.Fatalf("%s: want %s claimed, got %s", why, id, j.ID)
	}
	if j.Status != persistence.StatusAssigned || j.Owner != o {
		b.t.Fatalf("%s: want %s ASSIGNED to %s, got %s owned by %s", why, id, o, j.Status, j.Owner)
	}
	return j
}

// qrClaimID claims job id for o with a filter that accepts only it.
func (b *bundle) qrClaimID(o persistence.Owner, id string) *persistence.Job {
	b.t.Helper()
	j := b.claimOne(o, func(j *persistence.Job) bool { return j.ID == id })
	if j == nil || j.ID != id {
		b.t.Fatalf("claim of %s by %s: want it claimed, got %v", id, o, j)
	}
	return j
}

// qrRun claims job id for o and starts it.
func (b *bundle) qrRun(o persistence.Owner, id string) *persistence.Job {
	b.t.Helper()
	return b.start(b.qrClaimID(o, id).Fence())
}

// qrDeactivate deactivates o's dispatcher, checking the call works.
func (b *bundle) qrDeactivate(o persistence.Owner) *persistence.CleanReport {
	b.t.Helper()
	r, err := b.s.Deactivate(b.ctx, Queue, o.Dispatcher)
	if err != nil {
		b.t.Fatalf("Deactivate(%s): %v", o.Dispatcher, err)
	}
	return r
}

// qrInterrupt deactivates o (whose agent runs target, ACTIVE) and returns the id of the
// handleInterrupt system job queued for target, after checking the cleaning as documented.
func (b *bundle) qrInterrupt(o persistence.Owner, target string) string {
	b.t.Helper()
	r := b.qrDeactivate(o)
	if !slices.Contains(r.Interrupted, target) {
		b.t.Fatalf("Deactivate(%s): want %s in CleanReport.Interrupted, got %+v", o.Dispatcher, target, r)
	}
	j := b.get(persistence.Ref{Queue: Queue, ID: target})
	if j.Status != persistence.StatusActive || !j.Owner.IsZero() {
		b.t.Fatalf("interrupted %s: want ACTIVE with no owner, got %s owned by %q", target, j.Status, j.Owner)
	}
	var sys *persistence.Job
	for _, id := range r.SystemJobs {
		s := b.get(persistence.Ref{Queue: Queue, ID: id})
		if s.Target == target && s.Call.Handler == persistence.HandlerHandleInterrupt {
			sys = s
		}
	}
	if sys == nil {
		b.t.Fatalf("Deactivate(%s): want a %s system job for %s among %v", o.Dispatcher, persistence.HandlerHandleInterrupt, target, r.SystemJobs)
	}
	if sys.Status != persistence.StatusPending {
		b.t.Fatalf("system job %s: want PENDING, got %s", sys.ID, sys.Status)
	}
	if sys.RetryPolicy != persistence.RetryCommonForeverName || sys.FailureLogLevel != persistence.LevelCritical {
		b.t.Fatalf("system job %s: want policy %s at level CRITICAL, got %s at %v", sys.ID, persistence.RetryCommonForeverName, sys.RetryPolicy, sys.FailureLogLevel)
	}
	// At the head of the queue, with the other system jobs of this cleaning: a dead
	// dispatcher's work does not wait behind the backlog.
	if p := b.pending(Queue); !slices.Contains(p[:min(len(p), len(r.SystemJobs))], sys.ID) {
		b.t.Fatalf("system job %s: want it at the head of the queue, got pending %v", sys.ID, p)
	}
	return sys.ID
}

// qrRecovery is what running a handleInterrupt system job did.
type qrRecovery struct {
	decision persistence.Decision
	counts   persistence.RetryCounts
	job      *persistence.Job // the target after the decision was applied
	runner   persistence.Owner
}

// qrHandleInterrupt runs system job sysID as the runtime would, on a fresh dispatcher: claim
// it, start it, adopt its target, ask policy, apply the decision (put back, reschedule or
// abort) and complete the system job.
func (b *bundle) qrHandleInterrupt(sysID string, policy persistence.RetryPolicy) qrRecovery {
	b.t.Helper()
	runner := b.dispatcher()
	sys := b.qrRun(runner, sysID)
	if sys.Call.Handler != persistence.HandlerHandleInterrupt || sys.Target == "" {
		b.t.Fatalf("system job %s: want a %s job with a target, got %s targeting %q", sysID, persistence.HandlerHandleInterrupt, sys.Call.Handler, sys.Target)
	}
	before := b.get(persistence.Ref{Queue: Queue, ID: sys.Target})
	t, err := b.s.Adopt(b.ctx, sys.Fence(), sys.Target, persistence.StatusActive)
	if err != nil {
		b.t.Fatalf("Adopt(%s by %s): %v", sys.Target, sysID, err)
	}
	if t.Owner != runner || t.Attempt <= before.Attempt || t.Status != persistence.StatusActive {
		b.t.Fatalf("Adopt(%s): want ACTIVE owned by %s with attempt > %d, got %s owned by %s attempt %d",
			sys.Target, runner, before.Attempt, t.Status, t.Owner, t.Attempt)
	}
	counts := persistence.RetryCounts{}
	for k, v := range t.Retry {
		counts[k] = v
	}
	now := b.clock.Now()
	d := policy.Interrupted(counts)
	var out *persistence.Job
	switch d.Action {
	case persistence.ActionStop:
		f := persistence.NewFailure(&persistence.AbortedError{Interruptions: counts[persistence.CountInterruptions]}, "")
		out, err = b.s.Commit(b.ctx, t.Fence(), persistence.Outcome{Failure: f, Retry: counts, Complete: true})
		if err != nil {
			b.t.Fatalf("Commit(%s, AbortedError): %v", t.ID, err)
		}
	default:
		at, _ := d.When(now)
		if d.Action == persistence.ActionRetryNow {
			at = now
		}
		out, err = b.s.Reschedule(b.ctx, t.Fence(), at, counts)
		if err != nil {
			b.t.Fatalf("Reschedule(%s, %s): %v", t.ID, at, err)
		}
		if out.Status != persistence.StatusPending {
			b.t.Fatalf("Reschedule(%s): want PENDING, got %s", t.ID, out.Status)
		}
	}
	done, err := b.s.Commit(b.ctx, sys.Fence(), persistence.Outcome{Result: json.RawMessage(`null`), Complete: true})
	if err != nil {
		b.t.Fatalf("Commit of system job %s: %v", sysID, err)
	}
	if done.Status != persistence.StatusCompleted {
		b.t.Fatalf("system job %s: want COMPLETED after its commit, got %s", sysID, done.Status)
	}
	return qrRecovery{decision: d, counts: counts, job: out, runner: runner}
}

// qrFixedPolicy is a user retry policy that answers every question with one decision.
type qrFixedPolicy struct{ d persistence.Decision }

func (qrFixedPolicy) Name() string { return "storetest.fixed" }
func (p qrFixedPolicy) JobError(error, persistence.RetryCounts) persistence.Decision {
	return p.d
}
func (p qrFixedPolicy) CommitError(error, persistence.RetryCounts) persistence.Decision {
	return p.d
}
func (p qrFixedPolicy) Interrupted(c persistence.RetryCounts) persistence.Decision {
	c[persistence.CountInterruptions]++
	return p.d
}

// ---- tests ----

func testQuotaLifecycle(t *testing.T, h Harness) {
	b := setup(t, h)
	for _, size := range []int{0, -1} {
		if err := b.s.CreateQuota(b.ctx, Queue, "bad", size); !errors.Is(err, persistence.ErrInvalid) {
			t.Fatalf("CreateQuota of size %d: want ErrInvalid, got %v", size, err)
		}
	}
	if _, err := b.s.Quota(b.ctx, Queue, "bad"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("a quota refused for its size must not exist: want ErrNotFound, got %v", err)
	}
	if err := b.s.CreateQuota(b.ctx, Queue, "has space", 1); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("CreateQuota with a bad name: want ErrInvalid, got %v", err)
	}
	b.qrCreateQuota("content", 2)
	b.qrCreateQuota("mail", 1)
	qi, err := b.s.Quota(b.ctx, Queue, "content")
	if err != nil {
		t.Fatalf("Quota(content): %v", err)
	}
	if qi.Name != "content" || qi.Size != 2 || len(qi.Holders) != 0 {
		t.Fatalf("Quota(content): want {content 2 []}, got %+v", qi)
	}
	if err := b.s.CreateQuota(b.ctx, Queue, "content", 5); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("CreateQuota of an existing quota: want ErrInvalid, got %v", err)
	}
	if qi, _ := b.s.Quota(b.ctx, Queue, "content"); qi == nil || qi.Size != 2 {
		t.Fatalf("a refused CreateQuota must not change the quota: want size 2, got %+v", qi)
	}
	names, err := b.s.QuotaNames(b.ctx, Queue)
	if err != nil {
		t.Fatalf("QuotaNames: %v", err)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"content", "mail"}) {
		t.Fatalf("QuotaNames: want [content mail], got %v", names)
	}
	if err := b.s.ResizeQuota(b.ctx, Queue, "content", 5); err != nil {
		t.Fatalf("ResizeQuota(content, 5): %v", err)
	}
	if qi, err := b.s.Quota(b.ctx, Queue, "content"); err != nil || qi.Size != 5 {
		t.Fatalf("after ResizeQuota: want size 5, got %+v, %v", qi, err)
	}
	if err := b.s.RemoveQuota(b.ctx, Queue, "content"); err != nil {
		t.Fatalf("RemoveQuota(content): %v", err)
	}
	if _, err := b.s.Quota(b.ctx, Queue, "content"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("Quota of a removed quota: want ErrNotFound, got %v", err)
	}
	if names, _ := b.s.QuotaNames(b.ctx, Queue); !slices.Equal(names, []string{"mail"}) {
		t.Fatalf("QuotaNames after removing content: want [mail], got %v", names)
	}
	// Quotas belong to their queue.
	if names, err := b.s.QuotaNames(b.ctx, "other"); err != nil || len(names) != 0 {
		t.Fatalf("QuotaNames of another queue: want none, got %v, %v", names, err)
	}
	// A removed name can be created again, with a new size.
	b.qrCreateQuota("content", 1)
	if qi, err := b.s.Quota(b.ctx, Queue, "content"); err != nil || qi.Size != 1 {
		t.Fatalf("re-created quota: want size 1, got %+v, %v", qi, err)
	}
}

// Scenario 10: an undefined quota name on Put is refused and nothing is written.
func testQuotaUnknownNameOnPut(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	for _, names := range [][]string{{"x"}, {"content", "x"}} {
		_, err := b.s.Put(b.ctx, Queue, persistence.JobSpec{Call: call("h"), QuotaNames: names})
		if !errors.Is(err, persistence.ErrUnknownQuota) {
			t.Fatalf("Put with quotas %v: want ErrUnknownQuota, got %v", names, err)
		}
	}
	_, err := b.s.PutMany(b.ctx, Queue, []persistence.JobSpec{
		{Call: call("ok"), QuotaNames: []string{"content"}},
		{Call: call("bad"), QuotaNames: []string{"x"}},
	})
	if !errors.Is(err, persistence.ErrUnknownQuota) {
		t.Fatalf("PutMany with one unknown quota: want ErrUnknownQuota, got %v", err)
	}
	if p := b.pending(Queue); len(p) != 0 {
		t.Fatalf("refused puts must write nothing: want an empty queue, got %v", p)
	}
	st, err := b.s.Stats(b.ctx, Queue)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st != (persistence.QueueStats{}) {
		t.Fatalf("refused puts must write nothing: want zero stats, got %+v", st)
	}
	// A quota of another queue does not count.
	if err := b.s.CreateQuota(b.ctx, "other", "elsewhere", 1); err != nil {
		t.Fatalf("CreateQuota(other, elsewhere): %v", err)
	}
	if _, err := b.s.Put(b.ctx, Queue, persistence.JobSpec{Call: call("h"), QuotaNames: []string{"elsewhere"}}); !errors.Is(err, persistence.ErrUnknownQuota) {
		t.Fatalf("Put naming another queue's quota: want ErrUnknownQuota, got %v", err)
	}
	// Defined names are accepted and stored.
	j := b.qrPutQuota("h", "content")
	if !slices.Equal(j.QuotaNames, []string{"content"}) || j.Status != persistence.StatusPending {
		t.Fatalf("Put with quota content: want PENDING naming [content], got %s naming %v", j.Status, j.QuotaNames)
	}
	if got := b.get(j.Ref); !slices.Equal(got.QuotaNames, []string{"content"}) {
		t.Fatalf("Get: want quota names [content], got %v", got.QuotaNames)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{j.ID}) {
		t.Fatalf("want only the accepted job pending, got %v", p)
	}
}

// Scenario 10: setting an undefined quota name on a PENDING job is refused and changes nothing.
func testQuotaUnknownNameOnUpdate(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	b.qrCreateQuota("mail", 1)
	j := b.qrPutQuota("h", "mail")
	bad := []string{"content", "x"}
	if _, err := b.s.Update(b.ctx, j.Ref, persistence.Change{QuotaNames: &bad}); !errors.Is(err, persistence.ErrUnknownQuota) {
		t.Fatalf("Update of a PENDING job with quotas %v: want ErrUnknownQuota, got %v", bad, err)
	}
	if got := b.get(j.Ref); !slices.Equal(got.QuotaNames, []string{"mail"}) || got.Status != persistence.StatusPending {
		t.Fatalf("a refused Update must change nothing: want PENDING naming [mail], got %s naming %v", got.Status, got.QuotaNames)
	}
	good := []string{"content"}
	u, err := b.s.Update(b.ctx, j.Ref, persistence.Change{QuotaNames: &good})
	if err != nil {
		t.Fatalf("Update with a defined quota: %v", err)
	}
	if !slices.Equal(u.QuotaNames, good) || !slices.Equal(b.get(j.Ref).QuotaNames, good) {
		t.Fatalf("Update with quotas [content]: want them stored, got %v", b.get(j.Ref).QuotaNames)
	}
	// The new name is the one enforced: a held content slot blocks the job.
	blocker := b.qrPutQuota("blocker", "content")
	o := b.dispatcher()
	// The updated job is ahead of the blocker: it takes the slot, and the blocker waits.
	b.qrClaimExactly(o, j.ID, "first claim")
	b.qrWantHolders("content", j.ID)
	b.qrWantHolders("mail")
	b.qrClaimNone(o, "blocker waits on content")
	if got := b.get(blocker.Ref); got.Status != persistence.StatusPending {
		t.Fatalf("blocker: want PENDING, got %s", got.Status)
	}
}

// Scenario 11: with a quota of size 1, a second job naming it is not claimable while the first
// is claimed; jobs without the quota are; after the first commits, the second is claimed.
func testQuotaSizeOne(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	job4 := b.qrPutQuota("job4", "content")
	job3 := b.qrPutQuota("job3", "content")
	free := b.putCall("free")
	o := b.dispatcher()
	b.qrClaimExactly(o, job4.ID, "first claim")
	b.qrWantHolders("content", job4.ID)
	// job3 is skipped, not a barrier: the job behind it is claimed.
	b.qrClaimExactly(o, free.ID, "job3 blocked, free job claimable")
	b.qrClaimNone(o, "job3 while job4 holds the only slot")
	if p := b.pending(Queue); !slices.Equal(p, []string{job3.ID}) {
		t.Fatalf("want job3 still pending, got %v", p)
	}
	if got := b.get(job3.Ref); got.Status != persistence.StatusPending {
		t.Fatalf("job3: want PENDING, got %s", got.Status)
	}
	// Starting does not release the slot.
	r := b.start(b.get(job4.Ref).Fence())
	b.qrClaimNone(o, "job3 while job4 runs")
	b.qrWantHolders("content", job4.ID)
	b.commit(r.Fence(), `42`)
	b.qrWantHolders("content")
	b.qrClaimExactly(o, job3.ID, "job3 after job4 committed")
	b.qrWantHolders("content", job3.ID)
}

// Scenario 12: size 2 gives two claims, then none; shrinking to 1 stops nothing and blocks new
// claims until both holders have committed.
func testQuotaSizeTwoThenShrink(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 2)
	j1 := b.qrPutQuota("j1", "content")
	j2 := b.qrPutQuota("j2", "content")
	j3 := b.qrPutQuota("j3", "content")
	o := b.dispatcher()
	got := b.claim(o, 3, nil)
	if !slices.Equal(ids(got), []string{j1.ID, j2.ID}) {
		t.Fatalf("claim with 3 free slots and a quota of 2: want [j1 j2], got %v", ids(got))
	}
	b.qrWantHolders("content", j1.ID, j2.ID)
	b.qrClaimNone(o, "third job with the quota full")
	if err := b.s.ResizeQuota(b.ctx, Queue, "content", 1); err != nil {
		t.Fatalf("ResizeQuota(content, 1): %v", err)
	}
	qi, err := b.s.Quota(b.ctx, Queue, "content")
	if err != nil || qi.Size != 1 || len(qi.Holders) != 2 {
		t.Fatalf("after shrinking to 1: want size 1 with both holders, got %+v, %v", qi, err)
	}
	// Both still run.
	r1 := b.start(got[0].Fence())
	r2 := b.start(got[1].Fence())
	b.qrClaimNone(o, "third job after the shrink")
	b.commit(r1.Fence(), `42`)
	b.qrWantHolders("content", j2.ID)
	b.qrClaimNone(o, "third job with one holder left and size 1")
	b.commit(r2.Fence(), `42`)
	b.qrWantHolders("content")
	b.qrClaimExactly(o, j3.ID, "third job once both finished")
}

// Growing a quota lets a blocked job be claimed at once.
func testQuotaGrow(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	j1 := b.qrPutQuota("j1", "content")
	j2 := b.qrPutQuota("j2", "content")
	o := b.dispatcher()
	b.qrClaimExactly(o, j1.ID, "first")
	b.qrClaimNone(o, "second with size 1")
	if err := b.s.ResizeQuota(b.ctx, Queue, "content", 2); err != nil {
		t.Fatalf("ResizeQuota(content, 2): %v", err)
	}
	b.qrClaimExactly(o, j2.ID, "second after growing to 2")
	b.qrWantHolders("content", j1.ID, j2.ID)
}

// Scenario 13: a quota removed while pending jobs name it is ignored at claim.
func testQuotaRemovedNameIgnored(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	j1 := b.qrPutQuota("j1", "content")
	j2 := b.qrPutQuota("j2", "content")
	if err := b.s.RemoveQuota(b.ctx, Queue, "content"); err != nil {
		t.Fatalf("RemoveQuota: %v", err)
	}
	o := b.dispatcher()
	got := b.claim(o, 3, nil)
	if !slices.Equal(ids(got), []string{j1.ID, j2.ID}) {
		t.Fatalf("both jobs naming a removed quota: want [j1 j2] claimed, got %v", ids(got))
	}
	if _, err := b.s.Quota(b.ctx, Queue, "content"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("claims must not re-create a removed quota: want ErrNotFound, got %v", err)
	}
	// The jobs run and commit normally.
	for _, j := range got {
		b.commit(b.start(j.Fence()).Fence(), `42`)
	}
}

// Scenario 14: the limit is global to the queue: while job1 runs, job2 of the same quota stays
// PENDING for every dispatcher; it runs after job1 has committed.
func testQuotaSecondRunsAfterFirst(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("test", 1)
	job1 := b.qrPutQuota("job1", "test")
	job2 := b.qrPutQuota("job2", "test")
	d1, d2 := b.dispatcher(), b.dispatcher()
	r1 := b.start(b.qrClaimExactly(d1, job1.ID, "job1").Fence())
	for _, o := range []persistence.Owner{d1, d2} {
		b.qrClaimNone(o, "job2 while job1 is ACTIVE")
	}
	if got := b.get(job2.Ref); got.Status != persistence.StatusPending {
		t.Fatalf("job2: want PENDING while job1 runs, got %s", got.Status)
	}
	c, err := b.s.Commit(b.ctx, r1.Fence(), persistence.Outcome{Result: json.RawMessage(`42`), Complete: true})
	if err != nil {
		t.Fatalf("Commit(job1, complete): %v", err)
	}
	if c.Status != persistence.StatusCompleted {
		t.Fatalf("Commit with Complete and no callbacks: want COMPLETED, got %s", c.Status)
	}
	b.qrWantHolders("test")
	r2 := b.start(b.qrClaimExactly(d2, job2.ID, "job2 after job1").Fence())
	b.qrWantHolders("test", job2.ID)
	b.commit(r2.Fence(), `42`)
	if got := b.get(job2.Ref); got.Status != persistence.StatusCallbacks || string(got.Result) != "42" {
		t.Fatalf("job2: want CALLBACKS with 42, got %s with %s", got.Status, got.Result)
	}
	if _, err := b.s.Complete(b.ctx, r2.Fence(), 0); err != nil {
		t.Fatalf("Complete(job2): %v", err)
	}
	if got := b.get(job2.Ref); got.Status != persistence.StatusCompleted {
		t.Fatalf("job2 after Complete: want COMPLETED, got %s", got.Status)
	}
}

// A job takes a slot of every quota it names; it is claimable only when all have room.
func testQuotaSeveralQuotas(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("a", 1)
	b.qrCreateQuota("b", 2)
	ab := b.qrPutQuota("ab", "a", "b")
	onlyB := b.qrPutQuota("onlyB", "b")
	onlyA := b.qrPutQuota("onlyA", "a")
	alsoB := b.qrPutQuota("alsoB", "b")
	o := b.dispatcher()
	got := b.claim(o, 10, nil)
	if !slices.Equal(ids(got), []string{ab.ID, onlyB.ID}) {
		t.Fatalf("want [ab onlyB] claimed (a full, then b full), got %v", ids(got))
	}
	b.qrWantHolders("a", ab.ID)
	b.qrWantHolders("b", ab.ID, onlyB.ID)
	r := b.start(got[0].Fence())
	b.commit(r.Fence(), `42`)
	b.qrWantHolders("a")
	b.qrWantHolders("b", onlyB.ID)
	got = b.claim(o, 10, nil)
	if !slices.Equal(ids(got), []string{onlyA.ID, alsoB.ID}) {
		t.Fatalf("after ab committed: want [onlyA alsoB], got %v", ids(got))
	}
}

// Fail releases the slot of a claimed job.
func testQuotaReleasedByFail(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	j1 := b.qrPutQuota("j1", "content")
	j2 := b.qrPutQuota("j2", "content")
	o := b.dispatcher()
	c := b.qrClaimExactly(o, j1.ID, "first")
	fence := c.Fence()
	f, err := b.s.Fail(b.ctx, c.Ref, &fence, persistence.NewFailure(&persistence.TimeoutError{}, ""))
	if err != nil {
		t.Fatalf("Fail(j1): %v", err)
	}
	if f.Status != persistence.StatusCallbacks || f.Failure == nil || f.Failure.Type != "TimeoutError" {
		t.Fatalf("Fail(j1): want CALLBACKS with a TimeoutError failure, got %s with %+v", f.Status, f.Failure)
	}
	b.qrWantHolders("content")
	b.qrClaimExactly(o, j2.ID, "second after the first failed")
}

// A Reschedule for later releases the slot; the job comes back when it is due.
func testQuotaRescheduleLaterReleases(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	j1 := b.qrPutQuota("j1", "content")
	j2 := b.qrPutQuota("j2", "content")
	o := b.dispatcher()
	r := b.start(b.qrClaimExactly(o, j1.ID, "first").Fence())
	at := b.clock.Now().Add(time.Hour)
	rs, err := b.s.Reschedule(b.ctx, r.Fence(), at, nil)
	if err != nil {
		t.Fatalf("Reschedule(j1, +1h): %v", err)
	}
	if rs.Status != persistence.StatusPending || !rs.BeginAfter.Equal(at) {
		t.Fatalf("Reschedule(j1, +1h): want PENDING beginning after %s, got %s after %s", at, rs.Status, rs.BeginAfter)
	}
	b.qrWantHolders("content")
	r2 := b.start(b.qrClaimExactly(o, j2.ID, "second once the first was rescheduled for later").Fence())
	b.clock.Advance(time.Hour)
	o = b.dispatcher() // the first one is dead by now
	b.qrClaimNone(o, "j1 due again but j2 holds the slot")
	b.commit(r2.Fence(), `42`)
	b.qrClaimExactly(o, j1.ID, "j1 when due and the slot is free")
}

// A Reschedule at now (or earlier) keeps the slot and puts the job at the front.
func testQuotaRescheduleNowKeeps(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	j1 := b.qrPutQuota("j1", "content")
	j2 := b.qrPutQuota("j2", "content")
	o := b.dispatcher()
	c := b.qrClaimExactly(o, j1.ID, "first")
	rs, err := b.s.Reschedule(b.ctx, c.Fence(), b.clock.Now().Add(-time.Minute), nil)
	if err != nil {
		t.Fatalf("Reschedule(j1, now-1m): %v", err)
	}
	if rs.Status != persistence.StatusPending {
		t.Fatalf("Reschedule(j1, now-1m): want PENDING, got %s", rs.Status)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{j1.ID, j2.ID}) {
		t.Fatalf("put back: want [j1 j2] pending, got %v", p)
	}
	b.qrWantHolders("content", j1.ID)
	if j := b.claimOne(o, func(j *persistence.Job) bool { return j.ID == j2.ID }); j != nil {
		t.Fatalf("j2 while the put-back j1 keeps the slot: want nothing, got %s", j.ID)
	}
	b.qrClaimExactly(o, j1.ID, "the put-back job, holding its slot")
	b.qrWantHolders("content", j1.ID)
	b.qrClaimNone(o, "j2 while j1 runs again")
}

// Cleaning a dead dispatcher requeues its ASSIGNED jobs and releases their slots.
func testQuotaReleasedByCleanRequeue(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	j1 := b.qrPutQuota("j1", "content")
	j2 := b.qrPutQuota("j2", "content")
	a := b.dispatcher()
	b.qrClaimExactly(a, j1.ID, "first")
	r := b.qrDeactivate(a)
	if !slices.Equal(r.Requeued, []string{j1.ID}) {
		t.Fatalf("Deactivate: want [j1] requeued, got %+v", r)
	}
	b.qrWantHolders("content")
	if p := b.pending(Queue); !slices.Equal(p, []string{j2.ID, j1.ID}) {
		t.Fatalf("requeued job goes to the end: want [j2 j1], got %v", p)
	}
	o := b.dispatcher()
	b.qrClaimExactly(o, j2.ID, "j2 after j1 was requeued")
	b.qrClaimNone(o, "j1 behind j2 in the same quota")
}

// Scenario 18: a job interrupted and retried now keeps its slot: another job of the same quota
// stays unclaimable, and the interrupted one is claimed first.
func testQuotaInterruptedRetryNowKeepsSlot(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	j1 := b.qrPutQuota("j1", "content")
	j2 := b.qrPutQuota("j2", "content")
	a := b.dispatcher()
	b.qrRun(a, j1.ID)
	sys := b.qrInterrupt(a, j1.ID)
	b.qrWantHolders("content", j1.ID)
	rec := b.qrHandleInterrupt(sys, persistence.RetryCommonFourTimes)
	if rec.decision.Action != persistence.ActionRetryNow {
		t.Fatalf("first interruption: want retry now, got %s", rec.decision)
	}
	if p := b.pending(Queue); len(p) != 2 || p[0] != j1.ID {
		t.Fatalf("put back: want j1 first of [j1 j2], got %v", p)
	}
	b.qrWantHolders("content", j1.ID)
	o := b.dispatcher()
	if j := b.claimOne(o, func(j *persistence.Job) bool { return j.ID == j2.ID }); j != nil {
		t.Fatalf("j2 while the interrupted j1 keeps the slot: want nothing, got %s", j.ID)
	}
	again := b.qrClaimExactly(o, j1.ID, "interrupted job re-claimed first")
	if again.Attempt <= rec.job.Attempt {
		t.Fatalf("re-claim: want attempt above %d, got %d", rec.job.Attempt, again.Attempt)
	}
	b.qrWantHolders("content", j1.ID)
	b.qrClaimNone(o, "j2 while j1 runs again")
	b.commit(b.start(again.Fence()).Fence(), `42`)
	b.qrClaimExactly(o, j2.ID, "j2 after j1 finished")
}

// Scenario 19: a job interrupted and retried later frees its slot: the other job of the quota
// is claimable.
func testQuotaInterruptedRetryLaterFreesSlot(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 1)
	// The job names the test policy so that the runtime would pick it up by name.
	j1 := b.put(Queue, persistence.JobSpec{Call: call("j1"), QuotaNames: []string{"content"}, RetryPolicy: "storetest.fixed"})
	j2 := b.qrPutQuota("j2", "content")
	a := b.dispatcher()
	b.qrRun(a, j1.ID)
	sys := b.qrInterrupt(a, j1.ID)
	rec := b.qrHandleInterrupt(sys, qrFixedPolicy{persistence.RetryAfter(time.Hour)})
	want := b.clock.Now().Add(time.Hour)
	if rec.job.Status != persistence.StatusPending || !rec.job.BeginAfter.Equal(want) {
		t.Fatalf("retry later: want PENDING beginning after %s, got %s after %s", want, rec.job.Status, rec.job.BeginAfter)
	}
	b.qrWantHolders("content")
	o := b.dispatcher()
	r2 := b.start(b.qrClaimExactly(o, j2.ID, "j2 once j1 was rescheduled for later").Fence())
	b.qrWantHolders("content", j2.ID)
	b.clock.Advance(time.Hour)
	o = b.dispatcher() // the first one is dead by now
	b.qrClaimNone(o, "j1 due again while j2 holds the slot")
	b.commit(r2.Fence(), `42`)
	b.qrClaimExactly(o, j1.ID, "j1 when due and free")
}

// Concurrent claims from many dispatchers never exceed a quota.
func testQuotaConcurrentClaimsStrict(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qrCreateQuota("content", 2)
	for i := 0; i < 10; i++ {
		b.qrPutQuota("j", "content")
	}
	const claimers = 8
	owners := make([]persistence.Owner, claimers)
	for i := range owners {
		owners[i] = b.dispatcher()
	}
	var (
		mu      sync.Mutex
		claimed []string
		errs    []error
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for _, o := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			jobs, err := b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: 3})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !errors.Is(err, persistence.ErrConflict) {
				errs = append(errs, err)
			}
			claimed = append(claimed, ids(jobs)...)
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent claims: want success or ErrConflict, got %v", errs)
	}
	if len(claimed) > 2 {
		t.Fatalf("concurrent claims with a quota of 2: want at most 2 jobs claimed, got %v", claimed)
	}
	// Sequential claims fill the quota exactly.
	for len(claimed) < 2 {
		jobs := b.claim(owners[0], 3, nil)
		if len(jobs) == 0 {
			t.Fatalf("quota of 2 with %v claimed: want another claimable job", claimed)
		}
		claimed = append(claimed, ids(jobs)...)
	}
	if len(claimed) != 2 {
		t.Fatalf("want exactly 2 jobs claimed, got %v", claimed)
	}
	b.qrWantHolders("content", claimed...)
	b.qrClaimNone(owners[1], "with the quota full")
}
