package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

func init() {
	register("Unique",
		testCase{"SecondPutReturnsFirst", testUniqueDuplicate},
		testCase{"ManyInOnePut", testUniqueMany},
		testCase{"ReleasedOnCompletion", testUniqueCompletion},
		testCase{"ReleasedOnCommitMany", testUniqueCommitMany},
		testCase{"ReleasedOnFailure", testUniqueFailure},
		testCase{"ReleasedOnCancel", testUniqueCancel},
		testCase{"ReleasedOnRevoke", testUniqueRevoke},
		testCase{"ReleasedOnDelete", testUniqueDelete},
		testCase{"ReleasedOnPull", testUniquePull},
		testCase{"ReleasedOnRecovery", testUniqueRecovery},
		testCase{"HeldWhileRetried", testUniqueRetried},
		testCase{"CompletedWithin", testUniqueKeep},
		testCase{"States", testUniqueStates},
		testCase{"Debounce", testUniqueDebounce},
		testCase{"CompareAndDelete", testUniqueCompareAndDelete},
		testCase{"Rerun", testUniqueRerun},
		testCase{"RacingPuts", testUniqueRace},
		testCase{"BadInput", testUniqueBadInput},
	)
}

// unSpec is a spec of handler h with unique key key and options u (its Key is set).
func unSpec(h, key string, u persistence.Unique) persistence.JobSpec {
	u.Key = key
	return persistence.JobSpec{Call: call(h), Unique: &u}
}

// unPut puts a job of handler h with unique key key in Queue.
func (b *bundle) unPut(h, key string) *persistence.Job {
	b.t.Helper()
	return b.put(Queue, unSpec(h, key, persistence.Unique{}))
}

// unWantNew fails unless j was made by its put, not found holding the key.
func (b *bundle) unWantNew(j *persistence.Job, when string) {
	b.t.Helper()
	if j.Duplicate || j.Debounced {
		b.t.Fatalf("%s: put returned %s as a duplicate (debounced %v), want a new job", when, j.ID, j.Debounced)
	}
}

// unWantDup fails unless j is first, returned as a duplicate.
func (b *bundle) unWantDup(j, first *persistence.Job, when string) {
	b.t.Helper()
	if j.ID != first.ID || !j.Duplicate {
		b.t.Fatalf("%s: put returned %s (duplicate %v), want %s as a duplicate", when, j.ID, j.Duplicate, first.ID)
	}
}

// uniqueHolder is what a store may offer to read who holds a unique key (the Redis store
// does): the tests then check that a key is released, not only that a new put takes it.
type uniqueHolder interface {
	UniqueHolder(ctx context.Context, queue, key string) (string, error)
}

// unWantHolder fails unless key is held by job id ("": by none), when the store tells.
func (b *bundle) unWantHolder(key, id, when string) {
	b.t.Helper()
	u, ok := b.s.(uniqueHolder)
	if !ok {
		return
	}
	got, err := u.UniqueHolder(b.ctx, Queue, key)
	if err != nil || got != id {
		b.t.Fatalf("%s: key %s held by %q (%v), want %q", when, key, got, err, id)
	}
}

// unRun claims, starts and returns j's run for o.
func (b *bundle) unRun(o persistence.Owner, j *persistence.Job) *persistence.Job {
	b.t.Helper()
	c := b.claimOne(o, func(c *persistence.Job) bool { return c.ID == j.ID })
	if c == nil {
		b.t.Fatalf("cannot claim %s", j.ID)
	}
	return b.start(c.Fence())
}

// A second put with the key returns the first job and creates nothing; the key is the
// queue's: the same key in another queue is another key. The job records its key.
func testUniqueDuplicate(t *testing.T, h Harness) {
	b := setup(t, h)
	first := b.unPut("a", "k")
	b.unWantNew(first, "first put")
	if got := b.get(first.Ref); got.Unique == nil || got.Unique.Key != "k" {
		t.Fatalf("stored job's unique key: %+v, want k", got.Unique)
	}
	second := b.unPut("b", "k")
	b.unWantDup(second, first, "second put")
	if second.Call.Handler != "a" || second.Status != persistence.StatusPending {
		t.Fatalf("duplicate returned as %s %s, want the first job as stored (a, PENDING)", second.Call.Handler, second.Status)
	}
	b.qtWantPending(Queue, []string{first.ID}, "after a duplicate put")
	other := b.put("other", unSpec("a", "k", persistence.Unique{}))
	b.unWantNew(other, "same key in another queue")
	// A job without a key is put as ever, and records none.
	if plain := b.putCall("c"); plain.Unique != nil || b.get(plain.Ref).Unique != nil {
		t.Fatalf("a job put without a key has one: %+v", plain.Unique)
	}
}

// One put of many: each job reports on its own, a key given twice in the call makes one job.
func testUniqueMany(t *testing.T, h Harness) {
	b := setup(t, h)
	held := b.unPut("a", "held")
	jobs, err := b.s.PutMany(b.ctx, Queue, []persistence.JobSpec{
		unSpec("x", "held", persistence.Unique{}),
		unSpec("y", "fresh", persistence.Unique{}),
		{Call: call("z")},
		unSpec("w", "fresh", persistence.Unique{}),
	})
	if err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	b.unWantDup(jobs[0], held, "a held key")
	b.unWantNew(jobs[1], "a fresh key")
	b.unWantNew(jobs[2], "no key")
	b.unWantDup(jobs[3], jobs[1], "the fresh key again in the same put")
	b.qtWantPending(Queue, []string{held.ID, jobs[1].ID, jobs[2].ID}, "after PutMany")
	// PutEach: groups on their own; a bad group is refused alone.
	got, errs, err := b.s.PutEach(b.ctx, Queue, [][]persistence.JobSpec{
		{unSpec("x", "fresh", persistence.Unique{})},
		{unSpec("x", "", persistence.Unique{})},
		{unSpec("x", "third", persistence.Unique{})},
	})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], persistence.ErrInvalid) || errs[2] != nil {
		t.Fatalf("PutEach: %v %v, want only the second group refused", errs, err)
	}
	b.unWantDup(got[0][0], jobs[1], "PutEach group 1")
	b.unWantNew(got[2][0], "PutEach group 3")
}

// A run that completes releases the key; a job in CALLBACKS still holds it.
func testUniqueCompletion(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.unPut("a", "k")
	r := b.unRun(o, j)
	b.unWantDup(b.unPut("a", "k"), j, "while ACTIVE")
	done := b.commit(r.Fence(), "1") // CALLBACKS
	b.unWantDup(b.unPut("a", "k"), j, "while in CALLBACKS")
	b.complete(done.Fence(), 0)
	b.unWantHolder("k", "", "after completion")
	b.unWantNew(b.unPut("a", "k"), "after completion")
}

// Commits of several runs, straight to COMPLETED, release every key.
func testUniqueCommitMany(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	var commits []persistence.Commit
	for i := range 3 {
		r := b.unRun(o, b.unPut("a", fmt.Sprint("k", i)))
		commits = append(commits, persistence.Commit{Fence: r.Fence(), Known: r,
			Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}})
	}
	// One without a Known job: read by the store.
	commits[2].Known = nil
	_, errs, err := b.s.CommitMany(b.ctx, commits)
	if err != nil {
		t.Fatalf("CommitMany: %v", err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("CommitMany run %d: %v", i, e)
		}
		b.unWantHolder(fmt.Sprint("k", i), "", "after CommitMany")
		b.unWantNew(b.unPut("a", fmt.Sprint("k", i)), fmt.Sprintf("after commit %d", i))
	}
}

// A run that fails for good releases the key.
func testUniqueFailure(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.unPut("a", "k")
	if done := b.failRun(o, j, "boom"); done.Status != persistence.StatusCompleted {
		t.Fatalf("failed run: %s, want COMPLETED", done.Status)
	}
	b.unWantHolder("k", "", "after the failure")
	b.unWantNew(b.unPut("a", "k"), "after the failure")
	// Failed before it started (Fail, as for a missed begin_by): released at once.
	k := b.unPut("a", "k2")
	if _, err := b.s.Fail(b.ctx, k.Ref, nil, persistence.NewFailure(&persistence.TimeoutError{}, "")); err != nil {
		t.Fatalf("Fail: %v", err)
	}
	b.unWantHolder("k2", "", "after Fail")
	b.unWantNew(b.unPut("a", "k2"), "after Fail")
}

// A cancel releases the key at once, before the job's callbacks run.
func testUniqueCancel(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.unPut("a", "k")
	if _, err := b.s.Cancel(b.ctx, j.Ref, persistence.NewFailure(persistence.ErrCancelled, "")); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	b.unWantHolder("k", "", "after Cancel")
	b.unWantNew(b.unPut("a", "k"), "after Cancel")
}

// A revoke of a running job releases the key; the run's late commit cannot take it back.
func testUniqueRevoke(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.unPut("a", "k")
	r := b.unRun(o, j)
	if _, err := b.s.Revoke(b.ctx, j.Ref, persistence.NewFailure(persistence.ErrCancelled, "")); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	b.unWantHolder("k", "", "after Revoke")
	next := b.unPut("a", "k")
	b.unWantNew(next, "after Revoke")
	if _, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("late commit: %v, want ErrReassigned", err)
	}
	b.unWantDup(b.unPut("a", "k"), next, "after the late commit")
}

// A delete releases the key, of a pending job and of a completed one kept by its period.
func testUniqueDelete(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.unPut("a", "k")
	if _, err := b.s.Delete(b.ctx, Queue, []string{j.ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	b.unWantHolder("k", "", "after Delete")
	b.unWantNew(b.unPut("a", "k"), "after Delete")
	o := b.dispatcher()
	kept := b.put(Queue, unSpec("a", "kept", persistence.Unique{Keep: time.Hour}))
	r := b.unRun(o, kept)
	b.complete(b.commit(r.Fence(), "1").Fence(), 0)
	b.unWantDup(b.put(Queue, unSpec("a", "kept", persistence.Unique{Keep: time.Hour})), kept, "completed, within its period")
	if _, err := b.s.Delete(b.ctx, Queue, []string{kept.ID}); err != nil {
		t.Fatalf("Delete of the completed job: %v", err)
	}
	b.unWantHolder("kept", "", "after Delete of the completed job")
	b.unWantNew(b.unPut("a", "kept"), "after Delete of the completed job")
}

// A job taken back out of its queue (NEW) holds no key.
func testUniquePull(t *testing.T, h Harness) {
	b := setup(t, h)
	j := b.unPut("a", "k")
	if _, err := b.s.Remove(b.ctx, j.Ref); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	b.unWantHolder("k", "", "after Remove")
	b.unWantNew(b.unPut("a", "k"), "after Remove")
}

// A dead dispatcher's running job keeps its key through its recovery (still ACTIVE), and
// releases it when the recovery ends it (aborted).
func testUniqueRecovery(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.unPut("a", "k")
	b.unRun(o, j)
	b.clock.Advance(61 * time.Second)
	rep, ok, err := b.s.Bury(b.ctx, Queue, o.Dispatcher)
	if err != nil || !ok || len(rep.SystemJobs) != 1 {
		t.Fatalf("Bury: %+v %v %v", rep, ok, err)
	}
	b.unWantDup(b.unPut("a", "k"), j, "while its recovery waits")
	rec := b.qrHandleInterrupt(rep.SystemJobs[0], persistence.NeverRetry)
	if rec.job.Status != persistence.StatusCompleted {
		t.Fatalf("recovered job: %s, want COMPLETED (aborted)", rec.job.Status)
	}
	b.unWantHolder("k", "", "after its recovery ended it")
	b.unWantNew(b.unPut("a", "k"), "after its recovery ended it")
}

// A run put back to be retried, now or later, keeps the key.
func testUniqueRetried(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.unPut("a", "k")
	r := b.unRun(o, j)
	if _, err := b.s.Reschedule(b.ctx, r.Fence(), b.clock.Now().Add(time.Hour), nil); err != nil {
		t.Fatalf("Reschedule later: %v", err)
	}
	b.unWantDup(b.unPut("a", "k"), j, "rescheduled")
	b.clock.Advance(2 * time.Hour)
	o = b.dispatcher() // the first is dead by now
	r = b.unRun(o, j)
	if _, err := b.s.Reschedule(b.ctx, r.Fence(), b.clock.Now(), nil); err != nil {
		t.Fatalf("Reschedule now: %v", err)
	}
	b.unWantDup(b.unPut("a", "k"), j, "put back")
}

// With a keep period, a completed job holds its key for that long after its completion, then
// the key expires.
func testUniqueKeep(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	const keep = 200 * time.Millisecond
	spec := unSpec("a", "k", persistence.Unique{Keep: keep})
	j := b.put(Queue, spec)
	r := b.unRun(o, j)
	if _, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	dup := b.put(Queue, spec)
	b.unWantDup(dup, j, "completed, within its period")
	if dup.Status != persistence.StatusCompleted {
		t.Fatalf("duplicate %s, want the COMPLETED job", dup.Status)
	}
	if h.Elapse == nil {
		t.Skip("the harness cannot let keys expire")
	}
	h.Elapse(t, keep)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := b.put(Queue, spec)
		if !got.Duplicate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key still held 10 s after its period of %s", keep)
		}
		time.Sleep(20 * time.Millisecond) // polling the server's clock
	}
}

// States: a key held only while PENDING is taken by a new put once its job runs; the job
// that ran cannot release the new holder's key.
func testUniqueStates(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	spec := unSpec("a", "k", persistence.Unique{States: persistence.UniquePending})
	first := b.put(Queue, spec)
	b.unWantDup(b.put(Queue, spec), first, "pending")
	r := b.unRun(o, first)
	second := b.put(Queue, spec)
	b.unWantNew(second, "first job running, out of the key's states")
	b.complete(b.commit(r.Fence(), "1").Fence(), 0)
	b.unWantDup(b.put(Queue, spec), second, "after the first job completed")
	// Scheduled only: a due job does not hold it.
	sched := unSpec("s", "s", persistence.Unique{States: persistence.UniqueScheduled})
	sched.BeginIn = time.Minute
	later := b.put(Queue, sched)
	b.unWantDup(b.put(Queue, sched), later, "scheduled")
	b.clock.Advance(2 * time.Minute)
	b.unWantNew(b.put(Queue, sched), "due")
}

// Debounce: a put while the key's job is pending and unclaimed replaces its call and
// begin_after (the newest wins) and says so; once claimed, a put leaves it alone.
func testUniqueDebounce(t *testing.T, h Harness) {
	b := setup(t, h)
	deb := func(arg int, in time.Duration) persistence.JobSpec {
		s := unSpec("a", "k", persistence.Unique{Debounce: true})
		s.Call = call("a", arg)
		s.BeginIn = in
		return s
	}
	first := b.put(Queue, deb(1, 10*time.Second))
	b.unWantNew(first, "first put")
	other := b.put(Queue, persistence.JobSpec{Call: call("other"), BeginIn: 15 * time.Second})
	b.clock.Advance(time.Second)
	got := b.put(Queue, deb(2, 20*time.Second))
	b.unWantDup(got, first, "debounced put")
	if !got.Debounced {
		t.Fatalf("debounced put: Debounced false")
	}
	want := b.clock.Now().Add(20 * time.Second).Truncate(time.Microsecond)
	stored := b.get(first.Ref)
	if string(stored.Call.Args[0]) != "2" || !stored.BeginAfter.Equal(want) || string(got.Call.Args[0]) != "2" {
		t.Fatalf("debounced job: args %s begin_after %s (returned %s), want 2 and %s", stored.Call.Args[0], stored.BeginAfter, got.Call.Args[0], want)
	}
	// Its place in the queue moved with it: after the job due at 15 s.
	b.qtWantPending(Queue, []string{other.ID, first.ID}, "after the debounce")
	// A put without debounce leaves it as it is.
	plain := unSpec("a", "k", persistence.Unique{})
	plain.Call = call("a", 3)
	if g := b.put(Queue, plain); g.Debounced || string(b.get(first.Ref).Call.Args[0]) != "2" {
		t.Fatalf("put without debounce changed the job")
	}
	// Claimed: no more debouncing.
	b.clock.Advance(time.Minute)
	o := b.dispatcher()
	b.claim(o, 10, nil)
	g := b.put(Queue, deb(4, 0))
	b.unWantDup(g, first, "claimed")
	if g.Debounced || string(b.get(first.Ref).Call.Args[0]) != "2" {
		t.Fatalf("a claimed job was debounced: %+v", g)
	}
}

// Compare and delete: a transition of a job that no longer holds its key leaves the key to
// the job that holds it.
func testUniqueCompareAndDelete(t *testing.T, h Harness) {
	b := setup(t, h)
	spec := unSpec("a", "k", persistence.Unique{States: persistence.UniquePending})
	first := b.put(Queue, spec)
	o := b.dispatcher()
	r := b.unRun(o, first)
	second := b.put(Queue, spec) // takes the key: the first job runs
	b.unWantNew(second, "first running")
	if _, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Failure: persistence.NewFailure(errors.New("x"), ""), Complete: true}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if _, err := b.s.Delete(b.ctx, Queue, []string{first.ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	b.unWantHolder("k", second.ID, "after the first job completed and was deleted")
	b.unWantDup(b.put(Queue, spec), second, "after the first job completed and was deleted")
}

// A failed job put back to run again takes its key back when it is free.
func testUniqueRerun(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j := b.unPut("a", "k")
	b.failRun(o, j, "boom")
	if _, err := b.s.Rerun(b.ctx, j.Ref, nil); err != nil {
		t.Fatalf("Rerun: %v", err)
	}
	b.unWantHolder("k", j.ID, "rerun")
	b.unWantDup(b.unPut("a", "k"), j, "rerun")
}

// Puts of one key racing from several goroutines through several stores (connections of
// their own, as processes have): exactly one job is made, and every put returns it.
func testUniqueRace(t *testing.T, h Harness) {
	b := setup(t, h)
	stores := []persistence.Store{b.s}
	if h.Share != nil {
		for range 3 {
			stores = append(stores, h.Share(t, b.s))
		}
	}
	const perStore = 8
	for round := range 3 {
		key := fmt.Sprint("race", round)
		var wg sync.WaitGroup
		start := make(chan struct{})
		got := make([]*persistence.Job, len(stores)*perStore)
		errs := make([]error, len(got))
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i], errs[i] = stores[i%len(stores)].Put(b.ctx, Queue, unSpec("a", key, persistence.Unique{}))
			}()
		}
		close(start)
		wg.Wait()
		made := 0
		for i, j := range got {
			if errs[i] != nil {
				t.Fatalf("racing put %d: %v", i, errs[i])
			}
			if !j.Duplicate {
				made++
			}
			if j.ID != got[0].ID {
				t.Fatalf("racing puts returned %s and %s", got[0].ID, j.ID)
			}
		}
		if made != 1 {
			t.Fatalf("racing puts made %d jobs, want 1", made)
		}
	}
	if p := b.pending(Queue); len(p) != 3 {
		t.Fatalf("pending %v, want one job per key", p)
	}
}

// Bad unique options: a clear error wrapping ErrInvalid, and nothing written.
func testUniqueBadInput(t *testing.T, h Harness) {
	b := setup(t, h)
	for _, tc := range []struct {
		name string
		u    persistence.Unique
		key  string
	}{
		{"empty key", persistence.Unique{}, ""},
		{"key too long", persistence.Unique{}, strings.Repeat("k", persistence.MaxUniqueKey+1)},
		{"key not UTF-8", persistence.Unique{}, "k\xff"},
		{"negative keep", persistence.Unique{Keep: -time.Second}, "k"},
		{"unknown states", persistence.Unique{States: 1 << 7}, "k"},
	} {
		_, err := b.s.Put(b.ctx, Queue, unSpec("a", tc.key, tc.u))
		if !errors.Is(err, persistence.ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line ErrInvalid", tc.name, err)
		}
	}
	b.biWantUntouched(Queue, "after bad unique puts")
	b.biWantNoQueues("after bad unique puts")
	if j := b.put(Queue, unSpec("a", strings.Repeat("k", persistence.MaxUniqueKey), persistence.Unique{})); j.Duplicate {
		t.Fatalf("longest key: duplicate")
	}
}
