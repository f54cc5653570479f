package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Group "Monitor": what monitoring queries read without scanning whole collections: the
// agents of a queue, and an agent's completed history paged by time with ties kept and
// counted in O(log n) (what zc.async's asyncdb tools need).
func init() {
	register("Monitor",
		testCase{"Agents", monAgents},
		testCase{"CompletedPage", monCompletedPage},
		testCase{"CountCompleted", monCountCompleted},
		testCase{"BadInput", monBadInput},
		testCase{"Throughput", monThroughput},
		testCase{"FailedIndex", monFailedIndex},
	)
}

// An agent is listed once it has claimed in the queue, also after it completed everything it
// held and after its dispatcher's record is gone; agents of other queues are not.
func monAgents(t *testing.T, h Harness) {
	b := setup(t, h)
	if got, err := b.s.Agents(b.ctx, Queue); err != nil || len(got) != 0 {
		t.Fatalf("Agents of an unused queue: %v, %v; want none", got, err)
	}
	o1, o2 := b.dispatcher(), b.dispatcher()
	other := persistence.Owner{Dispatcher: o1.Dispatcher, Agent: "alpha"}
	for i := range 3 {
		b.putCall("job", i)
	}
	j1 := dspClaim(b, Queue, o1, 3, 1)
	j2 := dspClaim(b, Queue, o2, 3, 1)
	j3 := dspClaim(b, Queue, other, 3, 1)
	if len(j1) != 1 || len(j2) != 1 || len(j3) != 1 {
		t.Fatalf("claims: %v %v %v, want one job each", ids(j1), ids(j2), ids(j3))
	}
	dspFinish(b, j1[0]) // o1 holds nothing any more
	b.activate("elsewhere", newUUID(), DefaultConfig())

	got, err := b.s.Agents(b.ctx, Queue)
	if err != nil {
		t.Fatalf("Agents: %v", err)
	}
	want := []persistence.Owner{other, o1, o2} // by dispatcher, then name: "alpha" < "main"
	if !slices.Equal(got, want) {
		t.Fatalf("Agents: %v, want %v", got, want)
	}
	if got, err := b.s.Agents(b.ctx, "elsewhere"); err != nil || len(got) != 0 {
		t.Fatalf("Agents of a queue where nothing was claimed: %v, %v; want none", got, err)
	}
}

// monHistory completes, for a fresh agent, five jobs at t1, t2, t2, t2 and t3 (three
// sharing a time, as a batch commit does), and returns the agent and the ids newest first:
// ties in the order the history keeps them (by id, descending).
func monHistory(b *bundle) (persistence.Owner, []string, [3]time.Time) {
	b.t.Helper()
	u := newUUID()
	b.activate(Queue, u, dspConfig(10))
	o := persistence.Owner{Dispatcher: u, Agent: "main"}
	for i := range 5 {
		b.putCall("job", i)
	}
	got := dspClaim(b, Queue, o, 10, 0)
	if len(got) != 5 {
		b.t.Fatalf("claim: %v, want 5 jobs", ids(got))
	}
	ts := [3]time.Time{Epoch.Add(time.Second), Epoch.Add(2 * time.Second), Epoch.Add(3 * time.Second)}
	hstCompleteAt(b, got[0], ts[0])
	for _, j := range got[1:4] {
		hstCompleteAt(b, j, ts[1])
	}
	hstCompleteAt(b, got[4], ts[2])
	tied := ids(got[1:4])
	slices.Sort(tied)
	slices.Reverse(tied)
	return o, append(append([]string{got[4].ID}, tied...), got[0].ID), ts
}

// Paging with before = last time + 1µs and offset = entries seen at that time reads every
// entry once, newest first, with its time, whatever the page size; a window bounds it.
func monCompletedPage(t *testing.T, h Harness) {
	b := setup(t, h)
	o, want, ts := monHistory(b)
	at := map[string]time.Time{want[0]: ts[2], want[1]: ts[1], want[2]: ts[1], want[3]: ts[1], want[4]: ts[0]}

	page := func(since, before time.Time, offset, limit int) []persistence.Completion {
		t.Helper()
		got, err := b.s.CompletedPage(b.ctx, Queue, o, since, before, offset, limit)
		if err != nil {
			t.Fatalf("CompletedPage(%s, %s, %d, %d): %v", since, before, offset, limit, err)
		}
		return got
	}
	for _, size := range []int{1, 2, 3, 5, persistence.MaxPage} {
		var seen []string
		before, offset := time.Time{}, 0
		for range 10 {
			got := page(time.Time{}, before, offset, size)
			for _, c := range got {
				if !c.At.Equal(at[c.ID]) {
					t.Fatalf("page size %d: %s completed at %s, want %s", size, c.ID, c.At, at[c.ID])
				}
				seen = append(seen, c.ID)
			}
			if len(got) < size {
				break
			}
			last := got[len(got)-1].At
			if next := last.Add(time.Microsecond); next.Equal(before) {
				offset += len(got)
			} else {
				before, offset = next, 0
				for _, c := range got {
					if c.At.Equal(last) {
						offset++
					}
				}
			}
		}
		if !slices.Equal(seen, want) {
			t.Fatalf("paged by %d: %v, want %v", size, seen, want)
		}
	}
	if got := page(ts[1], ts[2], 0, 10); len(got) != 3 || !slices.Equal([]string{got[0].ID, got[1].ID, got[2].ID}, want[1:4]) {
		t.Fatalf("[t2, t3): %v, want %v", got, want[1:4])
	}
	if got := page(ts[1], ts[2], 2, 10); len(got) != 1 || got[0].ID != want[3] {
		t.Fatalf("[t2, t3) from offset 2: %v, want [%s]", got, want[3])
	}
	if got := page(ts[2].Add(time.Second), time.Time{}, 0, 10); len(got) != 0 {
		t.Fatalf("since after the last completion: %v, want none", got)
	}
	other := persistence.Owner{Dispatcher: o.Dispatcher, Agent: "idle"}
	if got, err := b.s.CompletedPage(b.ctx, Queue, other, time.Time{}, time.Time{}, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("history of an agent that ran nothing: %v, %v; want none", got, err)
	}
}

func monCountCompleted(t *testing.T, h Harness) {
	b := setup(t, h)
	o, _, ts := monHistory(b)
	for _, c := range []struct {
		name          string
		since, before time.Time
		want          int64
	}{
		{"unbounded", time.Time{}, time.Time{}, 5},
		{"since t2", ts[1], time.Time{}, 4},
		{"before t2", time.Time{}, ts[1], 1},
		{"[t2, t3)", ts[1], ts[2], 3},
		{"before t3 + 1µs", time.Time{}, ts[2].Add(time.Microsecond), 5},
		{"since after the last", ts[2].Add(time.Second), time.Time{}, 0},
	} {
		n, err := b.s.CountCompleted(b.ctx, Queue, o, c.since, c.before)
		if err != nil || n != c.want {
			t.Fatalf("CountCompleted(%s): %d, %v; want %d", c.name, n, err, c.want)
		}
	}
}

func monBadInput(t *testing.T, h Harness) {
	b := setup(t, h)
	o := persistence.Owner{Dispatcher: newUUID(), Agent: "main"}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"Agents with a bad queue", func() error { _, err := b.s.Agents(b.ctx, "bad queue"); return err }()},
		{"CompletedPage with limit 0", func() error {
			_, err := b.s.CompletedPage(b.ctx, Queue, o, time.Time{}, time.Time{}, 0, 0)
			return err
		}()},
		{"CompletedPage over MaxPage", func() error {
			_, err := b.s.CompletedPage(b.ctx, Queue, o, time.Time{}, time.Time{}, 0, persistence.MaxPage+1)
			return err
		}()},
		{"CompletedPage with a negative offset", func() error {
			_, err := b.s.CompletedPage(b.ctx, Queue, o, time.Time{}, time.Time{}, -1, 10)
			return err
		}()},
		{"CompletedPage with no agent", func() error {
			_, err := b.s.CompletedPage(b.ctx, Queue, persistence.Owner{}, time.Time{}, time.Time{}, 0, 10)
			return err
		}()},
		{"CountCompleted with a bad agent", func() error {
			_, err := b.s.CountCompleted(b.ctx, Queue, persistence.Owner{Dispatcher: "d:1", Agent: "main"}, time.Time{}, time.Time{})
			return err
		}()},
	} {
		if !errors.Is(c.err, persistence.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, c.err)
		}
	}
}

// Throughput counts the completions of every agent of a queue, and its failures, in windows
// of time, each in the window of its time.
func monThroughput(t *testing.T, h Harness) {
	b := setup(t, h)
	o1, o2 := b.dispatcher(), b.dispatcher()
	run := func(o persistence.Owner) {
		b.putCall("job")
		j := b.start(b.claimOne(o, nil).Fence())
		b.complete(b.commit(j.Fence(), "1").Fence(), 0)
	}
	// Window 0: two jobs (one each); window 1: none; window 2: three. (Windows of 10 s: the
	// dispatchers, which do not ping here, stay alive.)
	run(o1)
	run(o2)
	b.clock.Advance(20 * time.Second)
	run(o1)
	run(o1)
	run(o2)
	// And one failure in window 3.
	b.clock.Advance(10 * time.Second)
	b.putCall("job")
	j := b.start(b.claimOne(o1, nil).Fence())
	if _, err := b.s.Commit(b.ctx, j.Fence(), persistence.Outcome{Failure: persistence.NewFailure(errors.New("no"), ""), Complete: true}); err != nil {
		t.Fatal(err)
	}
	counts, failed, err := b.s.Throughput(b.ctx, Queue, Epoch, 10*time.Second, 4)
	if err != nil || !slices.Equal(counts, []int64{2, 0, 3, 1}) || !slices.Equal(failed, []int64{0, 0, 0, 1}) {
		t.Fatalf("Throughput: %v, failed %v, %v; want [2 0 3 1], failed [0 0 0 1]", counts, failed, err)
	}
	counts, failed, err = b.s.Throughput(b.ctx, "unused", Epoch, time.Minute, 2)
	if err != nil || !slices.Equal(counts, []int64{0, 0}) || !slices.Equal(failed, []int64{0, 0}) {
		t.Fatalf("Throughput of an unused queue: %v %v %v", counts, failed, err)
	}
	throughput := func(q string, step time.Duration, n int) error {
		_, _, err := b.s.Throughput(b.ctx, q, Epoch, step, n)
		return err
	}
	for _, bad := range []func() error{
		func() error { return throughput(Queue, time.Minute, 0) },
		func() error { return throughput(Queue, time.Minute, persistence.MaxThroughputWindows+1) },
		func() error { return throughput(Queue, 0, 3) },
		func() error { return throughput("a b", time.Minute, 3) },
	} {
		if err := bad(); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("bad Throughput: %v, want ErrInvalid", err)
		}
	}
}

// The index of failures lists the jobs completed with a failure, whichever way they completed
// (a commit alone or in a batch, the completion after callbacks), newest first, and counts
// them; a job retried or deleted leaves it; successes never join it.
func monFailedIndex(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	fail := persistence.Outcome{Failure: persistence.NewFailure(errors.New("no"), ""), Complete: true}
	runOne := func(j *persistence.Job) *persistence.Job {
		return b.start(b.claimOne(o, func(c *persistence.Job) bool { return c.ID == j.ID }).Fence())
	}
	alone, batched, withCallback, ok := b.putCall("alone"), b.putCall("batched"), b.putCall("cb"), b.putCall("ok")
	cbkAdd(b, withCallback.Ref, "report")
	if _, err := b.s.Commit(b.ctx, runOne(alone).Fence(), fail); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(time.Second)
	r := runOne(batched)
	if _, errs, err := b.s.CommitMany(b.ctx, []persistence.Commit{{Fence: r.Fence(), Outcome: fail, Known: r}}); err != nil || errs[0] != nil {
		t.Fatalf("CommitMany: %v %v", errs, err)
	}
	b.clock.Advance(time.Second)
	r = runOne(ok)
	if _, err := b.s.Commit(b.ctx, r.Fence(), persistence.Outcome{Result: []byte("1"), Complete: true}); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(time.Second)
	cbRun, err := b.s.Commit(b.ctx, runOne(withCallback).Fence(), fail)
	if err != nil || cbRun.Status != persistence.StatusCallbacks {
		t.Fatalf("commit of a job with a callback: %v %v", cbRun, err)
	}
	if n, err := b.s.CountFailed(b.ctx, Queue, time.Time{}, time.Time{}); err != nil || n != 2 {
		t.Fatalf("CountFailed before the callback completes: %d %v, want 2", n, err)
	}
	b.complete(cbRun.Fence(), 1)
	page, err := b.s.FailedPage(b.ctx, Queue, time.Time{}, time.Time{}, 0, 10)
	var got []string
	for _, c := range page {
		got = append(got, c.ID)
	}
	if err != nil || !slices.Equal(got, []string{withCallback.ID, batched.ID, alone.ID}) {
		t.Fatalf("FailedPage: %v %v, want the three failures newest first", got, err)
	}
	if n, err := b.s.CountFailed(b.ctx, Queue, Epoch.Add(time.Second), time.Time{}); err != nil || n != 2 {
		t.Fatalf("CountFailed since a second in: %d %v, want 2", n, err)
	}
	if _, err := b.s.Rerun(b.ctx, alone.Ref, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.Delete(b.ctx, Queue, []string{batched.ID}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.s.CountFailed(b.ctx, Queue, time.Time{}, time.Time{}); err != nil || n != 1 {
		t.Fatalf("CountFailed after a retry and a delete: %d %v, want 1", n, err)
	}
	if _, err := b.s.FailedPage(b.ctx, Queue, time.Time{}, time.Time{}, 0, 0); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("FailedPage of no entry: %v, want ErrInvalid", err)
	}
	if _, err := b.s.CountFailed(b.ctx, "a b", time.Time{}, time.Time{}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("CountFailed of a bad queue name: %v, want ErrInvalid", err)
	}
}
