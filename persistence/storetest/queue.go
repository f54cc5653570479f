package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// The Queue group: putting, ordering, pulling and claiming jobs, begin_after and begin_by,
// the mutation rules of a job that is not running, and the queue's monitoring reads
// (zc.async's scenarios 1-9, at the store level).
func init() {
	register("Queue",
		testCase{"PutClaim", testQueuePutClaim},
		testCase{"BeginAfterFuture", testQueueBeginAfterFuture},
		testCase{"ScheduledOrder", testQueueScheduledOrder},
		testCase{"PastBeginAfter", testQueuePastBeginAfter},
		testCase{"TimeZone", testQueueTimeZone},
		testCase{"PullRemove", testQueuePullRemove},
		testCase{"ClaimFilter", testQueueClaimFilter},
		testCase{"BeginByExpired", testQueueBeginByExpired},
		testCase{"BeginByExpiredFilter", testQueueBeginByExpiredFilter},
		testCase{"BeginByDeadline", testQueueBeginByDeadline},
		testCase{"BeginByLongPast", testQueueBeginByLongPast},
		testCase{"UpdateRules", testQueueUpdateRules},
		testCase{"FailRules", testQueueFailRules},
		testCase{"GetMany", testQueueGetMany},
		testCase{"PutMany", testQueuePutMany},
		testCase{"PutEach", testQueuePutEach},
		testCase{"PutEachNoneValid", testQueuePutEachNoneValid},
		testCase{"Stats", testQueueStats},
		testCase{"Subscribe", testQueueSubscribe},
		testCase{"Queues", testQueueQueues},
		testCase{"Completions", testQueueCompletions},
	)
}

// qtMissingID is a well-formed job id that no test creates.
const qtMissingID = "0190aaaa-0000-7000-8000-000000000000"

// qtAt returns hh:mm:ss UTC on Epoch's day.
func qtAt(hh, mm, ss int) time.Time { return time.Date(2006, 8, 10, hh, mm, ss, 0, time.UTC) }

// qtDispatcher registers and activates a dispatcher in Queue that stays alive however far a
// test moves the clock (its ping death interval is 1000 hours), and returns its agent "main".
func (b *bundle) qtDispatcher() persistence.Owner {
	b.t.Helper()
	c := DefaultConfig()
	c.PingDeathInterval = 1000 * time.Hour
	u := newUUID()
	b.activate(Queue, u, c)
	return persistence.Owner{Dispatcher: u, Agent: "main"}
}

// qtStats reads the stats of q, failing the test on error.
func (b *bundle) qtStats(q string) persistence.QueueStats {
	b.t.Helper()
	st, err := b.s.Stats(b.ctx, q)
	if err != nil {
		b.t.Fatalf("Stats(%s): %v", q, err)
	}
	return st
}

// qtWantStats fails the test when q's stats are not want.
func (b *bundle) qtWantStats(q string, want persistence.QueueStats, when string) {
	b.t.Helper()
	if got := b.qtStats(q); got != want {
		b.t.Fatalf("%s: Stats(%s) = %+v, want %+v", when, q, got, want)
	}
}

// qtWantPending fails the test when the pending ids of q are not want, in that order.
func (b *bundle) qtWantPending(q string, want []string, when string) {
	b.t.Helper()
	if got := b.pending(q); !slices.Equal(got, want) {
		b.t.Fatalf("%s: Pending(%s) = %v, want %v", when, q, got, want)
	}
}

// qtWantErr fails the test unless errors.Is(err, target).
func qtWantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want one matching errors.Is(err, %v)", what, target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one matching errors.Is(err, %v)", what, err, target)
	}
}

// qtWantStatus fails the test when j is not in status want.
func qtWantStatus(t *testing.T, j *persistence.Job, want persistence.Status, what string) {
	t.Helper()
	if j == nil {
		t.Fatalf("%s: got no job, want one in status %s", what, want)
	}
	if j.Status != want {
		t.Fatalf("%s: job %s has status %s, want %s", what, j.ID, j.Status, want)
	}
}

// qtStart claims the head of Queue for o and starts it: the job comes back ACTIVE.
func (b *bundle) qtStart(o persistence.Owner, want string) *persistence.Job {
	b.t.Helper()
	c := b.claimOne(o, nil)
	if c == nil || c.ID != want {
		b.t.Fatalf("claim: got %v, want job %s", c, want)
	}
	a, err := b.s.Start(b.ctx, c.Fence())
	if err != nil {
		b.t.Fatalf("Start(%s): %v", c.ID, err)
	}
	qtWantStatus(b.t, a, persistence.StatusActive, "Start")
	return a
}

// Scenario 1: a job put with no time is PENDING, due now, with no deadline; a claim hands it
// to the agent (owner and holder) for its first attempt and empties the queue.
func testQueuePutClaim(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.putCall("hello", 1, "two")
	for _, g := range []*persistence.Job{j, b.get(j.Ref)} {
		qtWantStatus(t, g, persistence.StatusPending, "after Put")
		if g.Queue != Queue || g.ID == "" {
			t.Fatalf("after Put: ref %s, want queue %q and an id", g.Ref, Queue)
		}
		if !g.BeginAfter.Equal(Epoch) {
			t.Fatalf("after Put: BeginAfter %s, want the clock's now %s", g.BeginAfter, Epoch)
		}
		if g.BeginBy != 0 {
			t.Fatalf("after Put: BeginBy %s, want 0 (no deadline)", g.BeginBy)
		}
		if got, want := g.Call.String(), `hello(1, "two")`; got != want {
			t.Fatalf("after Put: call %s, want %s", got, want)
		}
		if !g.Owner.IsZero() || !g.Holder.IsZero() {
			t.Fatalf("after Put: owner %q holder %q, want nobody", g.Owner, g.Holder)
		}
	}
	b.qtWantPending(Queue, []string{j.ID}, "after Put")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 1}, "after Put")

	o := b.qtDispatcher()
	c := b.claimOne(o, nil)
	if c == nil || c.ID != j.ID {
		t.Fatalf("Claim: got %v, want job %s", c, j.ID)
	}
	for _, g := range []*persistence.Job{c, b.get(j.Ref)} {
		qtWantStatus(t, g, persistence.StatusAssigned, "after Claim")
		if g.Owner != o || g.Holder != o {
			t.Fatalf("after Claim: owner %q holder %q, want both %q", g.Owner, g.Holder, o)
		}
		if g.Attempt != 1 {
			t.Fatalf("after Claim: attempt %d, want 1", g.Attempt)
		}
	}
	b.qtWantPending(Queue, nil, "after Claim")
	if again := b.claimOne(o, nil); again != nil {
		t.Fatalf("second Claim: got job %s, want nothing (queue empty)", again.ID)
	}
}

// Scenario 2: a job is never claimed before its begin_after, and is claimable from it on.
func testQueueBeginAfterFuture(t *testing.T, h Harness) {
	b := setup(t, h)
	at := qtAt(16, 0, 0)
	j := b.put(Queue, persistence.JobSpec{Call: call("later"), BeginAfter: at})
	qtWantStatus(t, j, persistence.StatusPending, "Put")
	if !j.BeginAfter.Equal(at) {
		t.Fatalf("Put: BeginAfter %s, want %s", j.BeginAfter, at)
	}
	o := b.qtDispatcher()
	if got := b.claim(o, 3, nil); len(got) != 0 {
		t.Fatalf("Claim at 15:44: got %v, want nothing before 16:00", ids(got))
	}
	b.clock.Set(at.Add(-time.Second))
	if got := b.claim(o, 3, nil); len(got) != 0 {
		t.Fatalf("Claim at 15:59:59: got %v, want nothing before 16:00", ids(got))
	}
	b.qtWantPending(Queue, []string{j.ID}, "after early claims")
	qtWantStatus(t, b.get(j.Ref), persistence.StatusPending, "after early claims")

	b.clock.Set(at)
	got := b.claim(o, 3, nil)
	if !slices.Equal(ids(got), []string{j.ID}) {
		t.Fatalf("Claim at 16:00: got %v, want [%s]", ids(got), j.ID)
	}
	qtWantStatus(t, got[0], persistence.StatusAssigned, "Claim at 16:00")
	b.qtWantPending(Queue, nil, "after Claim at 16:00")
}

// Scenario 3: scheduled jobs wait in begin_after order whatever their put order, behind the
// due jobs.
func testQueueScheduledOrder(t *testing.T, h Harness) {
	b := setup(t, h)
	j2 := b.put(Queue, persistence.JobSpec{Call: call("at1602"), BeginAfter: qtAt(16, 2, 0)})
	j1 := b.put(Queue, persistence.JobSpec{Call: call("at1601"), BeginAfter: qtAt(16, 1, 0)})
	j0 := b.put(Queue, persistence.JobSpec{Call: call("at1600"), BeginAfter: qtAt(16, 0, 0)})
	now := b.putCall("now")
	b.qtWantPending(Queue, []string{now.ID, j0.ID, j1.ID, j2.ID}, "after Puts")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 1, Scheduled: 3}, "after Puts")

	o := b.qtDispatcher()
	if c := b.claimOne(o, nil); c == nil || c.ID != now.ID {
		t.Fatalf("Claim at 15:44: got %v, want the due job %s", c, now.ID)
	}
	if c := b.claimOne(o, nil); c != nil {
		t.Fatalf("Claim at 15:44: got %s, want nothing (the rest is scheduled)", c.ID)
	}
	b.clock.Set(qtAt(16, 3, 0))
	var got []string
	for range 3 {
		c := b.claimOne(o, nil)
		if c == nil {
			t.Fatalf("Claim at 16:03: got nothing after %v, want [%s %s %s]", got, j0.ID, j1.ID, j2.ID)
		}
		got = append(got, c.ID)
	}
	if want := []string{j0.ID, j1.ID, j2.ID}; !slices.Equal(got, want) {
		t.Fatalf("claims at 16:03: got %v, want %v (16:00, 16:01, 16:02)", got, want)
	}
	b.qtWantPending(Queue, nil, "after claims")
}

// Scenario 4: a begin_after in the past means now: the job goes to the end of the queue,
// after a job put earlier, and keeps its begin_after.
func testQueuePastBeginAfter(t *testing.T, h Harness) {
	b := setup(t, h)
	job6 := b.putCall("job6")
	past := qtAt(15, 35, 0)
	job7 := b.put(Queue, persistence.JobSpec{Call: call("job7"), BeginAfter: past})
	for _, g := range []*persistence.Job{job7, b.get(job7.Ref)} {
		qtWantStatus(t, g, persistence.StatusPending, "Put with a past begin_after")
		if !g.BeginAfter.Equal(past) {
			t.Fatalf("Put with a past begin_after: BeginAfter %s, want it kept as %s", g.BeginAfter, past)
		}
	}
	b.qtWantPending(Queue, []string{job6.ID, job7.ID}, "after Puts")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 2}, "after Puts")
	job8 := b.putCall("job8")
	b.qtWantPending(Queue, []string{job6.ID, job7.ID, job8.ID}, "after a third Put")

	o := b.qtDispatcher()
	got := b.claim(o, 3, nil)
	if want := []string{job6.ID, job7.ID, job8.ID}; !slices.Equal(ids(got), want) {
		t.Fatalf("Claim: got %v, want %v (put order)", ids(got), want)
	}
}

// Scenario 5: a begin_after in another zone is stored as the same instant in UTC.
func testQueueTimeZone(t *testing.T, h Harness) {
	b := setup(t, h)
	est := time.FixedZone("EST", -5*3600)
	at := time.Date(2006, 8, 10, 11, 30, 0, 0, est)
	want := qtAt(16, 30, 0)
	j := b.put(Queue, persistence.JobSpec{Call: call("est"), BeginAfter: at})
	for name, g := range map[string]*persistence.Job{"Put": j, "Get": b.get(j.Ref)} {
		if !g.BeginAfter.Equal(want) {
			t.Fatalf("%s: BeginAfter %s, want %s", name, g.BeginAfter, want)
		}
		if g.BeginAfter.Location() != time.UTC {
			t.Fatalf("%s: BeginAfter in %s, want UTC", name, g.BeginAfter.Location())
		}
	}
	o := b.qtDispatcher()
	b.clock.Set(want.Add(-time.Second))
	if c := b.claimOne(o, nil); c != nil {
		t.Fatalf("Claim at 16:29:59 UTC: got %s, want nothing before 16:30 UTC", c.ID)
	}
	b.clock.Set(want)
	if c := b.claimOne(o, nil); c == nil || c.ID != j.ID {
		t.Fatalf("Claim at 16:30 UTC: got %v, want %s", c, j.ID)
	}
}

// Scenario 6: Pull and Remove cancel unclaimed jobs (back to NEW); a pulled job re-enqueued
// goes to the end.
func testQueuePullRemove(t *testing.T, h Harness) {
	b := setup(t, h)
	var jobs []*persistence.Job
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		jobs = append(jobs, b.putCall(name))
	}
	ja, jb, jc, jd, je := jobs[0], jobs[1], jobs[2], jobs[3], jobs[4]

	wantNew := func(j *persistence.Job, err error, want *persistence.Job, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if j == nil || j.ID != want.ID {
			t.Fatalf("%s: got %v, want job %s", what, j, want.ID)
		}
		qtWantStatus(t, j, persistence.StatusNew, what)
		qtWantStatus(t, b.get(want.Ref), persistence.StatusNew, what+" then Get")
	}

	j, err := b.s.Pull(b.ctx, Queue, 0)
	wantNew(j, err, ja, "Pull(0)")
	j, err = b.s.Pull(b.ctx, Queue, -1)
	wantNew(j, err, je, "Pull(-1)")
	j, err = b.s.Remove(b.ctx, jb.Ref)
	wantNew(j, err, jb, "Remove(b)")
	b.qtWantPending(Queue, []string{jc.ID, jd.ID}, "after Pull, Pull, Remove")

	_, err = b.s.Remove(b.ctx, jb.Ref)
	qtWantErr(t, err, persistence.ErrNotInQueue, "second Remove(b)")
	for _, i := range []int{2, 3, -3, 100} {
		_, err = b.s.Pull(b.ctx, Queue, i)
		qtWantErr(t, err, persistence.ErrNotInQueue, "Pull out of range")
	}
	b.qtWantPending(Queue, []string{jc.ID, jd.ID}, "after failed Pull and Remove")

	j, err = b.s.Enqueue(b.ctx, ja.Ref)
	if err != nil {
		t.Fatalf("Enqueue(a): %v", err)
	}
	qtWantStatus(t, j, persistence.StatusPending, "Enqueue(a)")
	b.qtWantPending(Queue, []string{jc.ID, jd.ID, ja.ID}, "after Enqueue(a)")

	_, err = b.s.Enqueue(b.ctx, jc.Ref)
	qtWantErr(t, err, persistence.ErrBadStatus, "Enqueue of a PENDING job")
	b.qtWantPending(Queue, []string{jc.ID, jd.ID, ja.ID}, "after Enqueue of a PENDING job")

	j, err = b.s.Pull(b.ctx, Queue, 1)
	wantNew(j, err, jd, "Pull(1)")
	b.qtWantPending(Queue, []string{jc.ID, ja.ID}, "after Pull(1)")

	o := b.qtDispatcher()
	if c := b.claimOne(o, nil); c == nil || c.ID != jc.ID {
		t.Fatalf("Claim: got %v, want %s", c, jc.ID)
	}
	_, err = b.s.Remove(b.ctx, jc.Ref)
	qtWantErr(t, err, persistence.ErrNotInQueue, "Remove of an ASSIGNED job")
	qtWantStatus(t, b.get(jc.Ref), persistence.StatusAssigned, "after Remove of an ASSIGNED job")

	if _, err = b.s.Pull(b.ctx, Queue, 0); err != nil {
		t.Fatalf("Pull(0) of the last job: %v", err)
	}
	_, err = b.s.Pull(b.ctx, Queue, 0)
	qtWantErr(t, err, persistence.ErrNotInQueue, "Pull(0) of an empty queue")
}

// Scenario 7: a claim with a filter takes only the matching due jobs; the others stay queued,
// in order.
func testQueueClaimFilter(t *testing.T, h Harness) {
	b := setup(t, h)
	r1 := b.putCall("red", 1)
	b1 := b.putCall("blue", 2)
	r2 := b.putCall("red", 3)
	b2 := b.putCall("blue", 4)
	b3 := b.put(Queue, persistence.JobSpec{Call: call("blue", 5), BeginAfter: qtAt(16, 0, 0)})
	blue := func(j *persistence.Job) bool { return j.Call.Handler == "blue" }

	o := b.qtDispatcher()
	if c := b.claimOne(o, blue); c == nil || c.ID != b1.ID {
		t.Fatalf("Claim(blue, max 1): got %v, want %s", c, b1.ID)
	}
	got := b.claim(o, 10, blue)
	if !slices.Equal(ids(got), []string{b2.ID}) {
		t.Fatalf("Claim(blue): got %v, want [%s] (the other blue job is not due)", ids(got), b2.ID)
	}
	b.qtWantPending(Queue, []string{r1.ID, r2.ID, b3.ID}, "after filtered claims")
	for _, j := range []*persistence.Job{r1, r2, b3} {
		qtWantStatus(t, b.get(j.Ref), persistence.StatusPending, "job the filter rejected")
	}

	b.clock.Set(qtAt(16, 0, 0))
	got = b.claim(o, 10, blue)
	if !slices.Equal(ids(got), []string{b3.ID}) {
		t.Fatalf("Claim(blue) at 16:00: got %v, want [%s]", ids(got), b3.ID)
	}
	got = b.claim(o, 10, nil)
	if want := []string{r1.ID, r2.ID}; !slices.Equal(ids(got), want) {
		t.Fatalf("Claim without filter: got %v, want %v", ids(got), want)
	}
}

// Scenario 8: a job not started by begin_after+begin_by is handed out as a HandlerFail job
// targeting it; running that job the way the runtime does completes the original with a
// TimeoutError failure.
func testQueueBeginByExpired(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.put(Queue, persistence.JobSpec{Call: call("slow"), BeginBy: time.Hour})
	if j.BeginBy != time.Hour {
		t.Fatalf("Put: BeginBy %s, want 1h", j.BeginBy)
	}
	o := b.qtDispatcher()
	b.clock.Set(Epoch.Add(time.Hour + time.Second))
	w := b.claimOne(o, nil)
	if w == nil {
		t.Fatalf("Claim after the deadline: got nothing, want a %s job", persistence.HandlerFail)
	}
	if w.ID == j.ID {
		t.Fatalf("Claim after the deadline: got the expired job %s itself, want a %s job targeting it", j.ID, persistence.HandlerFail)
	}
	if w.Call.Handler != persistence.HandlerFail || w.Target != j.ID {
		t.Fatalf("Claim after the deadline: got handler %q target %q, want %q target %q",
			w.Call.Handler, w.Target, persistence.HandlerFail, j.ID)
	}
	qtWantStatus(t, w, persistence.StatusAssigned, "the fail job")
	if w.Queue != Queue || w.Owner != o || w.Holder != o {
		t.Fatalf("the fail job: queue %q owner %q holder %q, want %q, %q, %q", w.Queue, w.Owner, w.Holder, Queue, o, o)
	}
	orig := b.get(j.Ref)
	qtWantStatus(t, orig, persistence.StatusNew, "the expired job after the claim")
	b.qtWantPending(Queue, nil, "after the claim")
	if c := b.claimOne(o, nil); c != nil {
		t.Fatalf("second Claim: got %s (%s), want nothing", c.ID, c.Call.Handler)
	}

	started, err := b.s.Start(b.ctx, w.Fence())
	if err != nil {
		t.Fatalf("Start(fail job): %v", err)
	}
	qtWantStatus(t, started, persistence.StatusActive, "Start(fail job)")
	adopted, err := b.s.Adopt(b.ctx, started.Fence(), j.ID, persistence.StatusNew)
	if err != nil {
		t.Fatalf("Adopt(expired job): %v", err)
	}
	if adopted.ID != j.ID || adopted.Owner != o || adopted.Attempt <= orig.Attempt {
		t.Fatalf("Adopt: got %s owner %q attempt %d, want %s owner %q attempt > %d",
			adopted.ID, adopted.Owner, adopted.Attempt, j.ID, o, orig.Attempt)
	}
	fence := adopted.Fence()
	failure := persistence.NewFailure(&persistence.TimeoutError{BeginAfter: orig.BeginAfter, BeginBy: orig.BeginBy}, "")
	failed, err := b.s.Fail(b.ctx, j.Ref, &fence, failure)
	if err != nil {
		t.Fatalf("Fail(expired job, fenced): %v", err)
	}
	for name, g := range map[string]*persistence.Job{"Fail": failed, "Get after Fail": b.get(j.Ref)} {
		qtWantStatus(t, g, persistence.StatusCallbacks, name)
		if !g.Failed() || g.Failure.Type != "TimeoutError" || !persistence.IsKind(g.Failure, "TimeoutError") {
			t.Fatalf("%s: failure %v, want a TimeoutError", name, g.Failure)
		}
	}
	done, err := b.s.Complete(b.ctx, fence, 0)
	if err != nil {
		t.Fatalf("Complete(expired job): %v", err)
	}
	qtWantStatus(t, done, persistence.StatusCompleted, "Complete(expired job)")
	qtWantStatus(t, b.get(j.Ref), persistence.StatusCompleted, "Get after Complete")
	if g := b.get(j.Ref); !persistence.IsKind(g.Failure, "TimeoutError") {
		t.Fatalf("Get after Complete: failure %v, want the TimeoutError kept", g.Failure)
	}

	wd, err := b.s.Commit(b.ctx, started.Fence(), persistence.Outcome{Result: json.RawMessage("null"), Complete: true})
	if err != nil {
		t.Fatalf("Commit(fail job): %v", err)
	}
	qtWantStatus(t, wd, persistence.StatusCompleted, "Commit(fail job)")
	b.qtWantStats(Queue, persistence.QueueStats{}, "after both completed")
}

// Scenario 8, the filter: it is applied to the expired job itself, not to the HandlerFail job
// that would be handed out in its place.
func testQueueBeginByExpiredFilter(t *testing.T, h Harness) {
	cases := []struct {
		name   string
		filter func(*persistence.Job) bool
		claims bool
	}{
		{"rejects the original", func(j *persistence.Job) bool { return j.Call.Handler != "slow" }, false},
		{"accepts only the fail handler", func(j *persistence.Job) bool { return j.Call.Handler == persistence.HandlerFail }, false},
		{"accepts the original", func(j *persistence.Job) bool { return j.Call.Handler == "slow" }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, h)
			j := b.put(Queue, persistence.JobSpec{Call: call("slow"), BeginBy: time.Hour})
			o := b.qtDispatcher()
			b.clock.Set(Epoch.Add(time.Hour + time.Second))
			got := b.claim(o, 3, tc.filter)
			if !tc.claims {
				if len(got) != 0 {
					t.Fatalf("Claim: got %v, want nothing", ids(got))
				}
				qtWantStatus(t, b.get(j.Ref), persistence.StatusPending, "the expired job, rejected")
				b.qtWantPending(Queue, []string{j.ID}, "after the rejecting claim")
				return
			}
			if len(got) != 1 || got[0].Call.Handler != persistence.HandlerFail || got[0].Target != j.ID {
				t.Fatalf("Claim: got %v, want one %s job targeting %s", got, persistence.HandlerFail, j.ID)
			}
			qtWantStatus(t, b.get(j.Ref), persistence.StatusNew, "the expired job, accepted")
			b.qtWantPending(Queue, nil, "after the accepting claim")
		})
	}
}

// At begin_after+begin_by exactly the job is not yet expired: it is claimed itself.
func testQueueBeginByDeadline(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.put(Queue, persistence.JobSpec{Call: call("slow"), BeginBy: time.Hour})
	o := b.qtDispatcher()
	b.clock.Set(Epoch.Add(time.Hour))
	c := b.claimOne(o, nil)
	if c == nil || c.ID != j.ID || c.Call.Handler != "slow" {
		t.Fatalf("Claim at the deadline exactly: got %v, want the job %s itself", c, j.ID)
	}
	qtWantStatus(t, c, persistence.StatusAssigned, "Claim at the deadline exactly")
}

// Scenario 9: a job put with a begin_after long past and a begin_by already over is handed out
// as a HandlerFail job by the very first claim.
func testQueueBeginByLongPast(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.put(Queue, persistence.JobSpec{
		Call: call("ancient"), BeginAfter: Epoch.Add(-30 * 24 * time.Hour), BeginBy: time.Hour,
	})
	qtWantStatus(t, j, persistence.StatusPending, "Put")
	o := b.qtDispatcher()
	w := b.claimOne(o, nil)
	if w == nil || w.ID == j.ID || w.Call.Handler != persistence.HandlerFail || w.Target != j.ID {
		t.Fatalf("first Claim: got %v, want a new %s job targeting %s", w, persistence.HandlerFail, j.ID)
	}
	qtWantStatus(t, w, persistence.StatusAssigned, "the fail job")
	qtWantStatus(t, b.get(j.Ref), persistence.StatusNew, "the expired job")
	b.qtWantPending(Queue, nil, "after the claim")
}

// The call and begin_after change only while NEW; begin_by and quota names
// while NEW or PENDING; a refused change changes nothing.
func testQueueUpdateRules(t *testing.T, h Harness) {
	b := setup(t, h)
	if err := b.s.CreateQuota(b.ctx, Queue, "qa", 1); err != nil {
		t.Fatalf("CreateQuota: %v", err)
	}
	j := b.putCall("orig", 1)
	other := call("other", 2)
	later := qtAt(17, 0, 0)
	twoHours := 2 * time.Hour

	refused := []struct {
		name   string
		change persistence.Change
	}{
		{"call", persistence.Change{Call: &other}},
		{"begin_after", persistence.Change{BeginAfter: &later}},
		{"begin_by and call", persistence.Change{BeginBy: &twoHours, Call: &other}},
	}
	for _, tc := range refused {
		_, err := b.s.Update(b.ctx, j.Ref, tc.change)
		var bse *persistence.BadStatusError
		if !errors.As(err, &bse) || !errors.Is(err, persistence.ErrBadStatus) {
			t.Fatalf("Update(%s) of a PENDING job: got %v, want a *BadStatusError matching ErrBadStatus", tc.name, err)
		}
		if bse.Status != persistence.StatusPending {
			t.Fatalf("Update(%s): BadStatusError.Status %s, want pending", tc.name, bse.Status)
		}
		g := b.get(j.Ref)
		if g.Call.String() != j.Call.String() || !g.BeginAfter.Equal(j.BeginAfter) || g.BeginBy != 0 {
			t.Fatalf("after refused Update(%s): call %s begin_after %s begin_by %s, want %s, %s, 0 (unchanged)",
				tc.name, g.Call.String(), g.BeginAfter, g.BeginBy, j.Call.String(), j.BeginAfter)
		}
		qtWantStatus(t, g, persistence.StatusPending, "after refused Update("+tc.name+")")
	}

	u, err := b.s.Update(b.ctx, j.Ref, persistence.Change{BeginBy: &twoHours})
	if err != nil {
		t.Fatalf("Update(begin_by) of a PENDING job: %v", err)
	}
	for name, g := range map[string]*persistence.Job{"Update": u, "Get": b.get(j.Ref)} {
		if g.BeginBy != twoHours {
			t.Fatalf("%s after Update(begin_by): BeginBy %s, want 2h", name, g.BeginBy)
		}
		qtWantStatus(t, g, persistence.StatusPending, name+" after Update(begin_by)")
	}
	names := []string{"qa"}
	u, err = b.s.Update(b.ctx, j.Ref, persistence.Change{QuotaNames: &names})
	if err != nil {
		t.Fatalf("Update(quota names) of a PENDING job: %v", err)
	}
	for name, g := range map[string]*persistence.Job{"Update": u, "Get": b.get(j.Ref)} {
		if !slices.Equal(g.QuotaNames, names) {
			t.Fatalf("%s after Update(quota names): %v, want %v", name, g.QuotaNames, names)
		}
	}
	b.qtWantPending(Queue, []string{j.ID}, "after the updates")

	// A NEW job takes every change.
	n, err := b.s.Create(b.ctx, Queue, persistence.JobSpec{Call: call("draft")})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	qtWantStatus(t, n, persistence.StatusNew, "Create")
	u, err = b.s.Update(b.ctx, n.Ref, persistence.Change{Call: &other, BeginAfter: &later, BeginBy: &twoHours})
	if err != nil {
		t.Fatalf("Update(call, begin_after, begin_by) of a NEW job: %v", err)
	}
	for name, g := range map[string]*persistence.Job{"Update": u, "Get": b.get(n.Ref)} {
		if g.Call.String() != other.String() || !g.BeginAfter.Equal(later) || g.BeginBy != twoHours {
			t.Fatalf("%s of a NEW job: call %s begin_after %s begin_by %s, want %s, %s, 2h",
				name, g.Call.String(), g.BeginAfter, g.BeginBy, other.String(), later)
		}
		qtWantStatus(t, g, persistence.StatusNew, name+" of a NEW job")
	}

	// Once claimed, nothing changes any more.
	o := b.qtDispatcher()
	if c := b.claimOne(o, nil); c == nil || c.ID != j.ID {
		t.Fatalf("Claim: got %v, want %s", c, j.ID)
	}
	hour := time.Hour
	_, err = b.s.Update(b.ctx, j.Ref, persistence.Change{BeginBy: &hour})
	qtWantErr(t, err, persistence.ErrBadStatus, "Update(begin_by) of an ASSIGNED job")
	if g := b.get(j.Ref); g.BeginBy != twoHours {
		t.Fatalf("after refused Update of an ASSIGNED job: BeginBy %s, want 2h (unchanged)", g.BeginBy)
	}
}

// Fail completes NEW, PENDING and ASSIGNED jobs with the failure (out of their queue or
// agent), returns a job in CALLBACKS unchanged, and refuses ACTIVE and COMPLETED jobs.
func testQueueFailRules(t *testing.T, h Harness) {
	cases := []struct {
		name    string
		prepare func(b *bundle, o persistence.Owner) *persistence.Job
		wantErr bool
		want    persistence.Status // status after Fail
	}{
		{"new", func(b *bundle, o persistence.Owner) *persistence.Job {
			j, err := b.s.Create(b.ctx, Queue, persistence.JobSpec{Call: call("draft")})
			if err != nil {
				b.t.Fatalf("Create: %v", err)
			}
			return j
		}, false, persistence.StatusCallbacks},
		{"pending", func(b *bundle, o persistence.Owner) *persistence.Job {
			return b.putCall("p")
		}, false, persistence.StatusCallbacks},
		{"assigned", func(b *bundle, o persistence.Owner) *persistence.Job {
			j := b.putCall("a")
			c := b.claimOne(o, nil)
			if c == nil || c.ID != j.ID {
				b.t.Fatalf("Claim: got %v, want %s", c, j.ID)
			}
			return c
		}, false, persistence.StatusCallbacks},
		{"active", func(b *bundle, o persistence.Owner) *persistence.Job {
			return b.qtStart(o, b.putCall("act").ID)
		}, true, persistence.StatusActive},
		{"callbacks", func(b *bundle, o persistence.Owner) *persistence.Job {
			a := b.qtStart(o, b.putCall("cb").ID)
			j, err := b.s.Commit(b.ctx, a.Fence(), persistence.Outcome{Result: json.RawMessage("42")})
			if err != nil {
				b.t.Fatalf("Commit: %v", err)
			}
			qtWantStatus(b.t, j, persistence.StatusCallbacks, "Commit")
			return j
		}, false, persistence.StatusCallbacks},
		{"completed", func(b *bundle, o persistence.Owner) *persistence.Job {
			a := b.qtStart(o, b.putCall("done").ID)
			j, err := b.s.Commit(b.ctx, a.Fence(), persistence.Outcome{Result: json.RawMessage("42"), Complete: true})
			if err != nil {
				b.t.Fatalf("Commit: %v", err)
			}
			qtWantStatus(b.t, j, persistence.StatusCompleted, "Commit")
			return j
		}, true, persistence.StatusCompleted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, h)
			o := b.qtDispatcher()
			j := tc.prepare(b, o)
			before := j.Status
			f := persistence.NewFailure(errors.New("cancelled by the operator"), "")
			got, err := b.s.Fail(b.ctx, j.Ref, nil, f)
			if tc.wantErr {
				qtWantErr(t, err, persistence.ErrBadStatus, "Fail of a "+before.String()+" job")
				g := b.get(j.Ref)
				qtWantStatus(t, g, tc.want, "after the refused Fail")
				if g.Failed() || string(g.Result) != string(j.Result) {
					t.Fatalf("after the refused Fail: failure %v result %s, want no failure and result %s", g.Failure, g.Result, j.Result)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fail of a %s job: %v", before, err)
			}
			for name, g := range map[string]*persistence.Job{"Fail": got, "Get": b.get(j.Ref)} {
				qtWantStatus(t, g, tc.want, name)
				if before == persistence.StatusCallbacks {
					if g.Failed() || string(g.Result) != "42" {
						t.Fatalf("%s of a job in CALLBACKS: failure %v result %s, want it unchanged (no failure, result 42)", name, g.Failure, g.Result)
					}
					continue
				}
				if !g.Failed() || !strings.Contains(g.Failure.Message, "cancelled by the operator") || g.Result != nil {
					t.Fatalf("%s of a %s job: failure %v result %s, want the given failure and no result", name, before, g.Failure, g.Result)
				}
			}
			b.qtWantPending(Queue, nil, "after Fail")
			held, err := b.s.AgentJobs(b.ctx, Queue, o)
			if err != nil {
				t.Fatalf("AgentJobs: %v", err)
			}
			if before <= persistence.StatusAssigned && slices.Contains(held, j.ID) {
				t.Fatalf("after Fail of a %s job: agent still holds it (%v), want it out", before, held)
			}
			if st := b.qtStats(Queue); st.Due != 0 || st.Scheduled != 0 || st.PutBack != 0 {
				t.Fatalf("after Fail: Stats %+v, want nothing pending", st)
			}

			// A second Fail (to resume callbacks) changes nothing.
			again, err := b.s.Fail(b.ctx, j.Ref, nil, persistence.NewFailure(errors.New("second"), ""))
			if err != nil {
				t.Fatalf("second Fail: %v", err)
			}
			qtWantStatus(t, again, persistence.StatusCallbacks, "second Fail")
			if (again.Failure == nil) != (got.Failure == nil) || (again.Failure != nil && again.Failure.Message != got.Failure.Message) {
				t.Fatalf("second Fail: failure %v, want unchanged %v", again.Failure, got.Failure)
			}
		})
	}
}

// GetMany reads several jobs of a queue; missing ones are nil, in their place.
func testQueueGetMany(t *testing.T, h Harness) {
	b := setup(t, h)
	a := b.putCall("a")
	c := b.putCall("c")
	got, err := b.s.GetMany(b.ctx, Queue, []string{a.ID, qtMissingID, c.ID, a.ID})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(got) != 4 {
		t.Fatalf("GetMany: %d jobs, want 4", len(got))
	}
	for i, want := range []string{a.ID, "", c.ID, a.ID} {
		switch {
		case want == "" && got[i] != nil:
			t.Fatalf("GetMany[%d]: got %s, want nil for a missing id", i, got[i].ID)
		case want != "" && (got[i] == nil || got[i].ID != want):
			t.Fatalf("GetMany[%d]: got %v, want %s", i, got[i], want)
		case want != "":
			qtWantStatus(t, got[i], persistence.StatusPending, "GetMany")
		}
	}
	got, err = b.s.GetMany(b.ctx, Queue, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("GetMany of no ids: got %v, %v, want nothing and no error", got, err)
	}
}

// PutMany puts every job, in order, after the jobs already queued.
func testQueuePutMany(t *testing.T, h Harness) {
	b := setup(t, h)
	first := b.putCall("first")
	specs := []persistence.JobSpec{
		{Call: call("m", 1)},
		{Call: call("m", 2)},
		{Call: call("m", 3), BeginAfter: qtAt(16, 0, 0)},
		{Call: call("m", 4)},
	}
	jobs, err := b.s.PutMany(b.ctx, Queue, specs)
	if err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	if len(jobs) != len(specs) {
		t.Fatalf("PutMany: %d jobs, want %d", len(jobs), len(specs))
	}
	for i, j := range jobs {
		qtWantStatus(t, j, persistence.StatusPending, "PutMany")
		if j.Call.String() != specs[i].Call.String() {
			t.Fatalf("PutMany[%d]: call %s, want %s", i, j.Call.String(), specs[i].Call.String())
		}
		if g := b.get(j.Ref); g.Call.String() != specs[i].Call.String() {
			t.Fatalf("Get(PutMany[%d]): call %s, want %s", i, g.Call.String(), specs[i].Call.String())
		}
	}
	b.qtWantPending(Queue, []string{first.ID, jobs[0].ID, jobs[1].ID, jobs[3].ID, jobs[2].ID}, "after PutMany")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 4, Scheduled: 1}, "after PutMany")
}

// PutEach puts each group as PutMany would, all or none, in one call: a group with a bad spec
// or an unknown quota fails alone and writes nothing, and the others are queued in the order
// of the groups.
func testQueuePutEach(t *testing.T, h Harness) {
	b := setup(t, h)
	if err := b.s.CreateQuota(b.ctx, Queue, "qa", 1); err != nil {
		t.Fatalf("CreateQuota: %v", err)
	}
	first := b.putCall("first")
	groups := [][]persistence.JobSpec{
		{{Call: call("a")}},
		{{Call: call("bad-group-1")}, {Call: persistence.Call{}}}, // no handler: the whole group fails
		{{Call: call("b")}, {Call: call("c"), BeginAfter: qtAt(16, 0, 0)}},
		{{Call: call("bad-group-3")}, {Call: call("d"), QuotaNames: []string{"nope"}}},
		nil,
		{{Call: call("e"), QuotaNames: []string{"qa"}}},
	}
	jobs, errs, err := b.s.PutEach(b.ctx, Queue, groups)
	if err != nil {
		t.Fatalf("PutEach: %v", err)
	}
	if len(jobs) != len(groups) || len(errs) != len(groups) {
		t.Fatalf("PutEach: %d job groups and %d errors, want %d each", len(jobs), len(errs), len(groups))
	}
	qtWantErr(t, errs[1], persistence.ErrInvalid, "PutEach of a group with a spec with no handler")
	qtWantErr(t, errs[3], persistence.ErrUnknownQuota, "PutEach of a group naming an unknown quota")
	for _, g := range []int{1, 3} {
		if jobs[g] != nil {
			t.Fatalf("PutEach: group %d failed and has jobs %v", g, jobs[g])
		}
	}
	for _, g := range []int{0, 2, 4, 5} {
		if errs[g] != nil {
			t.Fatalf("PutEach: group %d: %v", g, errs[g])
		}
		if len(jobs[g]) != len(groups[g]) {
			t.Fatalf("PutEach: group %d has %d jobs, want %d", g, len(jobs[g]), len(groups[g]))
		}
		for i, j := range jobs[g] {
			qtWantStatus(t, j, persistence.StatusPending, "PutEach")
			if got := b.get(j.Ref); got.Call.String() != groups[g][i].Call.String() || got.Status != persistence.StatusPending {
				t.Fatalf("Get(PutEach[%d][%d]) = %s %s, want %s PENDING", g, i, got.Call.String(), got.Status, groups[g][i].Call.String())
			}
		}
	}
	b.qtWantPending(Queue, []string{first.ID, jobs[0][0].ID, jobs[2][0].ID, jobs[5][0].ID, jobs[2][1].ID}, "after PutEach")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 4, Scheduled: 1}, "after PutEach")

	_, _, err = b.s.PutEach(b.ctx, "bad:queue", groups)
	qtWantErr(t, err, persistence.ErrInvalid, "PutEach into a bad queue name")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 4, Scheduled: 1}, "after PutEach into a bad queue name")
}

// PutEach whose every group is refused writes nothing at all, not even the queue's name.
func testQueuePutEachNoneValid(t *testing.T, h Harness) {
	b := setup(t, h)
	jobs, errs, err := b.s.PutEach(b.ctx, Queue, [][]persistence.JobSpec{
		{{Call: persistence.Call{}}},
		{{Call: call("h"), BeginBy: -time.Second}},
	})
	if err != nil {
		t.Fatalf("PutEach: %v", err)
	}
	for g := range 2 {
		qtWantErr(t, errs[g], persistence.ErrInvalid, "PutEach of a bad spec")
		if jobs[g] != nil {
			t.Fatalf("PutEach: group %d failed and has jobs %v", g, jobs[g])
		}
	}
	b.biWantUntouched(Queue, "after PutEach of bad specs")
	b.biWantNoQueues("after PutEach of bad specs")
}

// Stats counts due, scheduled, put-back and held jobs, at the store's time.
func testQueueStats(t *testing.T, h Harness) {
	b := setup(t, h)
	b.qtWantStats(Queue, persistence.QueueStats{}, "empty queue")
	j1 := b.putCall("j1")
	j2 := b.putCall("j2")
	j3 := b.putCall("j3")
	s1 := b.put(Queue, persistence.JobSpec{Call: call("s1"), BeginAfter: qtAt(16, 0, 0)})
	b.qtWantStats(Queue, persistence.QueueStats{Due: 3, Scheduled: 1}, "after Puts")

	o := b.qtDispatcher()
	c := b.claimOne(o, nil)
	if c == nil || c.ID != j1.ID {
		t.Fatalf("Claim: got %v, want %s", c, j1.ID)
	}
	b.qtWantStats(Queue, persistence.QueueStats{Due: 2, Scheduled: 1, Held: 1}, "after Claim")

	// Retried now, later than the others were put: it goes back to the front all the same.
	b.clock.Set(qtAt(15, 50, 0))
	r, err := b.s.Reschedule(b.ctx, c.Fence(), b.clock.Now(), nil)
	if err != nil {
		t.Fatalf("Reschedule(now): %v", err)
	}
	qtWantStatus(t, r, persistence.StatusPending, "Reschedule(now)")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 3, Scheduled: 1, PutBack: 1}, "after Reschedule(now)")
	j4 := b.putCall("j4")
	b.qtWantPending(Queue, []string{j1.ID, j2.ID, j3.ID, j4.ID, s1.ID}, "after Reschedule(now) and a Put")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 4, Scheduled: 1, PutBack: 1}, "after Reschedule(now) and a Put")

	b.clock.Set(qtAt(16, 0, 0))
	b.qtWantStats(Queue, persistence.QueueStats{Due: 5, PutBack: 1}, "at 16:00")
	got := b.claim(o, 10, nil)
	if want := []string{j1.ID, j2.ID, j3.ID, j4.ID, s1.ID}; !slices.Equal(ids(got), want) {
		t.Fatalf("Claim at 16:00: got %v, want %v", ids(got), want)
	}
	b.qtWantStats(Queue, persistence.QueueStats{Held: 5}, "after claiming everything")
}

// qtWaitWake waits for sub to deliver a wake-up; the first one must name want.
func qtWaitWake(t *testing.T, sub persistence.Subscription, want string) {
	t.Helper()
	select {
	case got, ok := <-sub.C():
		if !ok {
			t.Fatalf("subscription closed, want a wake-up for %q", want)
		}
		if got != want {
			t.Fatalf("wake-up for %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up for %q within 10s", want)
	}
}

// Put publishes a wake-up to the subscribers of its queue, and only to them; Close closes the
// channel.
func testQueueSubscribe(t *testing.T, h Harness) {
	b := setup(t, h)
	subQ, err := b.s.Subscribe(b.ctx, Queue)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", Queue, err)
	}
	closed := false
	defer func() {
		if !closed {
			subQ.Close()
		}
	}()
	subOther, err := b.s.Subscribe(b.ctx, "other")
	if err != nil {
		t.Fatalf("Subscribe(other): %v", err)
	}
	defer subOther.Close()

	b.putCall("wake")
	qtWaitWake(t, subQ, Queue)
	// The put in Queue was not delivered to the subscriber of "other": its first wake-up is
	// for its own queue.
	b.put("other", persistence.JobSpec{Call: call("wake")})
	qtWaitWake(t, subOther, "other")

	closed = true
	if err := subQ.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-subQ.C():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("channel still open 10s after Close, want it closed")
		}
	}
}

// Queues lists the queues used in the store.
func testQueueQueues(t *testing.T, h Harness) {
	b := setup(t, h)
	before, err := b.s.Queues(b.ctx)
	if err != nil {
		t.Fatalf("Queues: %v", err)
	}
	if slices.Contains(before, Queue) || slices.Contains(before, "listed") {
		t.Fatalf("Queues of a fresh store: %v, want neither %q nor %q", before, Queue, "listed")
	}
	b.putCall("x")
	b.put("listed", persistence.JobSpec{Call: call("y")})
	after, err := b.s.Queues(b.ctx)
	if err != nil {
		t.Fatalf("Queues: %v", err)
	}
	if !slices.Contains(after, Queue) || !slices.Contains(after, "listed") {
		t.Fatalf("Queues after Puts: %v, want both %q and %q", after, Queue, "listed")
	}
}

// Completions delivers the id of each job of the queue as it completes.
func testQueueCompletions(t *testing.T, h Harness) {
	b := setup(t, h)
	sub, err := b.s.Completions(b.ctx, Queue)
	if err != nil {
		t.Fatalf("Completions: %v", err)
	}
	defer sub.Close()
	j := b.putCall("work")
	o := b.dispatcher()
	c := b.claimOne(o, nil)
	r := b.start(c.Fence())
	if _, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	qtWaitWake(t, sub, j.ID)
}
