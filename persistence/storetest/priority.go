package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Group "Priority": a claim takes put-back jobs first, then the due job of the highest
// priority, first come first served within a priority, and never a scheduled job early;
// a priority stays with its job; stats and listings count every priority.
func init() {
	register("Priority",
		testCase{"Order", prOrder},
		testCase{"OrderThroughTransaction", prOrderFiltered},
		testCase{"PutBackFirst", prPutBackFirst},
		testCase{"ScheduledNotEarly", prScheduledNotEarly},
		testCase{"RescheduleKeepsPriority", prRescheduleKeeps},
		testCase{"StatsAndListings", prStatsAndListings},
		testCase{"RemoveAndCancel", prRemoveAndCancel},
		testCase{"BadPriority", prBadPriority},
		testCase{"ChildTakesParents", prChildTakesParents},
		testCase{"Delete", prDelete},
		testCase{"ConcurrentClaims", prConcurrentClaims},
		testCase{"UniquePuts", prUniquePuts},
	)
}

// prPut puts a job calling handler at priority p (0: none given) into Queue.
func (b *bundle) prPut(handler string, p int) *persistence.Job {
	b.t.Helper()
	return b.put(Queue, persistence.JobSpec{Call: call(handler), Priority: p})
}

// prMixed puts jobs at mixed priorities and returns their handlers in the order claims
// must take them.
func (b *bundle) prMixed() []string {
	b.t.Helper()
	for _, s := range []struct {
		name string
		p    int
	}{{"low1", 1}, {"plain1", 0}, {"top1", 9}, {"mid1", 5}, {"top2", 9}, {"low2", 1}, {"six", 6}, {"plain2", 0}, {"four", 4}} {
		b.prPut(s.name, s.p)
	}
	return []string{"top1", "top2", "six", "plain1", "mid1", "plain2", "four", "low1", "low2"}
}

// prDrain claims one job at a time (through the transaction when filtered) until none is
// left, and returns their handlers in claim order.
func (b *bundle) prDrain(o persistence.Owner, filtered bool) []string {
	b.t.Helper()
	var filter func(*persistence.Job) bool
	if filtered {
		filter = func(*persistence.Job) bool { return true }
	}
	var got []string
	for {
		j := b.claimOne(o, filter)
		if j == nil {
			return got
		}
		got = append(got, j.Call.Handler)
	}
}

// Higher priorities first; jobs without a priority are at the default's, with those put at
// it explicitly, first come first served.
func prOrder(t *testing.T, h Harness) {
	b := setup(t, h)
	want := b.prMixed()
	o := b.qtDispatcher()
	if got := b.prDrain(o, false); !slices.Equal(got, want) {
		t.Fatalf("claim order %v, want %v", got, want)
	}
}

// The transaction (a claim with a filter) takes the same order as the script.
func prOrderFiltered(t *testing.T, h Harness) {
	b := setup(t, h)
	want := b.prMixed()
	o := b.qtDispatcher()
	if got := b.prDrain(o, true); !slices.Equal(got, want) {
		t.Fatalf("claim order %v, want %v", got, want)
	}
	// A claim of many at once hands them out in the same order.
	b2 := setup(t, h)
	want = b2.prMixed()
	o = b2.qtDispatcher()
	var got []string
	for _, j := range b2.claim(o, 20, nil) {
		got = append(got, j.Call.Handler)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("one claim of all: %v, want %v", got, want)
	}
}

// An interrupted job put back goes before every priority, its own a low one.
func prPutBackFirst(t *testing.T, h Harness) {
	b := setup(t, h)
	low := b.prPut("low", 1)
	o := b.qtDispatcher()
	j := b.claimOne(o, nil)
	if j == nil || j.ID != low.ID {
		t.Fatalf("claimed %v, want the low job", j)
	}
	top := b.prPut("top", 9)
	if _, err := b.s.Reschedule(b.ctx, j.Fence(), b.clock.Now(), nil); err != nil {
		t.Fatalf("Reschedule now: %v", err)
	}
	b.qtWantPending(Queue, []string{low.ID, top.ID}, "after the put-back")
	if got := b.prDrain(o, false); !slices.Equal(got, []string{"low", "top"}) {
		t.Fatalf("claim order %v, want the put-back job first", got)
	}
}

// A scheduled job is never claimed before its begin_after, whatever its priority, and
// takes its priority's place once due.
func prScheduledNotEarly(t *testing.T, h Harness) {
	b := setup(t, h)
	later := b.put(Queue, persistence.JobSpec{Call: call("later"), Priority: 9, BeginAfter: Epoch.Add(time.Hour)})
	b.prPut("low", 1)
	o := b.qtDispatcher()
	for _, filtered := range []bool{false, true} {
		bb := setup(t, h)
		bb.put(Queue, persistence.JobSpec{Call: call("later"), Priority: 9, BeginAfter: Epoch.Add(time.Hour)})
		bb.prPut("low", 1)
		if got := bb.prDrain(bb.qtDispatcher(), filtered); !slices.Equal(got, []string{"low"}) {
			t.Fatalf("filtered %v: claimed %v before the scheduled job's time, want only the due one", filtered, got)
		}
	}
	if j := b.claimOne(o, nil); j == nil || j.Call.Handler != "low" {
		t.Fatalf("claimed %v, want the due low job", j)
	}
	b.prPut("mid", 0)
	b.clock.Advance(time.Hour + time.Second)
	b.prPut("mid2", 0)
	if got := b.prDrain(o, false); !slices.Equal(got, []string{"later", "mid", "mid2"}) {
		t.Fatalf("once due: %v, want the priority-9 job first", got)
	}
	if g := b.get(later.Ref); g.Priority != 9 {
		t.Fatalf("priority %d, want 9", g.Priority)
	}
}

// A run rescheduled for later keeps its job's priority, in its record and in the order.
func prRescheduleKeeps(t *testing.T, h Harness) {
	b := setup(t, h)
	top := b.prPut("top", 9)
	o := b.qtDispatcher()
	j := b.claimOne(o, nil)
	if j == nil || j.ID != top.ID {
		t.Fatalf("claimed %v, want the top job", j)
	}
	r, err := b.s.Reschedule(b.ctx, j.Fence(), b.clock.Now().Add(time.Minute), nil)
	if err != nil {
		t.Fatalf("Reschedule: %v", err)
	}
	if r.Priority != 9 || b.get(top.Ref).Priority != 9 {
		t.Fatalf("rescheduled: priority %d (stored %d), want 9", r.Priority, b.get(top.Ref).Priority)
	}
	b.prPut("plain", 0)
	if got := b.prDrain(o, false); !slices.Equal(got, []string{"plain"}) {
		t.Fatalf("before its time: %v, want the plain job only", got)
	}
	b.prPut("plain2", 0)
	b.clock.Advance(2 * time.Minute)
	if got := b.prDrain(o, false); !slices.Equal(got, []string{"top", "plain2"}) {
		t.Fatalf("once due: %v, want the rescheduled priority-9 job first", got)
	}
}

// Stats count the jobs of every priority, due and scheduled; Pending lists the due jobs in
// claim order, then the scheduled ones by priority and begin_after; Pull takes by that
// index.
func prStatsAndListings(t *testing.T, h Harness) {
	b := setup(t, h)
	soon := b.put(Queue, persistence.JobSpec{Call: call("soon"), Priority: 2, BeginAfter: Epoch.Add(time.Minute)})
	late := b.put(Queue, persistence.JobSpec{Call: call("late"), Priority: 9, BeginAfter: Epoch.Add(time.Hour)})
	low := b.prPut("low", 1)
	plain := b.prPut("plain", 0)
	top := b.prPut("top", 8)
	b.qtWantStats(Queue, persistence.QueueStats{Due: 3, Scheduled: 2}, "after the puts")
	want := []string{top.ID, plain.ID, low.ID, late.ID, soon.ID}
	b.qtWantPending(Queue, want, "after the puts")
	for off := range want {
		ids, err := b.s.Pending(b.ctx, Queue, off, 2)
		if err != nil {
			t.Fatalf("Pending(%d, 2): %v", off, err)
		}
		if w := want[off:min(len(want), off+2)]; !slices.Equal(ids, w) {
			t.Fatalf("Pending(%d, 2) = %v, want %v", off, ids, w)
		}
	}
	if j, err := b.s.Pull(b.ctx, Queue, 1); err != nil || j.ID != plain.ID {
		t.Fatalf("Pull(1) = %v, %v; want the plain job", j, err)
	}
	if j, err := b.s.Pull(b.ctx, Queue, -1); err != nil || j.ID != soon.ID {
		t.Fatalf("Pull(-1) = %v, %v; want the last scheduled job", j, err)
	}
	b.qtWantPending(Queue, []string{top.ID, low.ID, late.ID}, "after the pulls")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 2, Scheduled: 1}, "after the pulls")
	b.clock.Advance(2 * time.Hour)
	b.qtWantPending(Queue, []string{late.ID, top.ID, low.ID}, "once all are due")
	b.qtWantStats(Queue, persistence.QueueStats{Due: 3}, "once all are due")
}

// Remove and Cancel take a job out of its priority's queue.
func prRemoveAndCancel(t *testing.T, h Harness) {
	b := setup(t, h)
	a := b.prPut("a", 9)
	c := b.prPut("c", 3)
	if _, err := b.s.Remove(b.ctx, a.Ref); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := b.s.Cancel(b.ctx, c.Ref, &persistence.Failure{Type: "CancelledError", Message: "no"}); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	ids := b.pending(Queue)
	if slices.Contains(ids, a.ID) || slices.Contains(ids, c.ID) {
		t.Fatalf("Pending = %v after Remove and Cancel", ids)
	}
	o := b.qtDispatcher()
	for _, j := range b.claim(o, 10, nil) {
		if j.ID == a.ID || j.ID == c.ID {
			t.Fatalf("claimed %s after it was taken out of the queue", j.Call.Handler)
		}
	}
	// Put back in its queue, a removed job keeps its priority.
	if _, err := b.s.Enqueue(b.ctx, a.Ref); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	b.prPut("plain", 0)
	if got := b.prDrain(o, false); !slices.Equal(got, []string{"a", "plain"}) {
		t.Fatalf("after Enqueue: %v, want the priority-9 job first", got)
	}
}

// A priority out of range is refused, with nothing written; one in range is stored.
func prBadPriority(t *testing.T, h Harness) {
	b := setup(t, h)
	for _, p := range []int{-1, 10, 100} {
		_, err := b.s.Put(b.ctx, Queue, persistence.JobSpec{Call: call("h"), Priority: p})
		qtWantErr(t, err, persistence.ErrInvalid, "Put with a bad priority")
		_, err = b.s.PutMany(b.ctx, Queue, []persistence.JobSpec{{Call: call("ok")}, {Call: call("h"), Priority: p}})
		qtWantErr(t, err, persistence.ErrInvalid, "PutMany with a bad priority")
	}
	b.biWantUntouched(Queue, "after bad puts")
	for _, p := range []int{persistence.MinPriority, persistence.MaxPriority} {
		if j := b.prPut("h", p); j.Priority != p || b.get(j.Ref).Priority != p {
			t.Fatalf("priority %d stored as %d", p, b.get(j.Ref).Priority)
		}
	}
	if j := b.prPut("h", 0); j.Priority != persistence.DefaultPriority || b.get(j.Ref).Priority != persistence.DefaultPriority {
		t.Fatalf("no priority read back as %d, want the default", b.get(j.Ref).Priority)
	}
}

// Claims racing from many agents take exactly the jobs of the highest priorities, first
// come first served within a priority, and each claimer takes them in that order: every
// claim takes the head of the queue as it is when it runs.
func prConcurrentClaims(t *testing.T, h Harness) {
	b := setup(t, h)
	const n, claimers, size = 90, 6, 5
	type put struct {
		id   string
		p    int
		rank int // in put order
	}
	puts := make(map[string]put, n)
	var order []put
	var specs []persistence.JobSpec
	for i := range n {
		specs = append(specs, persistence.JobSpec{Call: call("h", i), Priority: 1 + (i*7)%9})
	}
	jobs, err := b.s.PutMany(b.ctx, Queue, specs)
	if err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	for i, j := range jobs {
		p := put{j.ID, j.Priority, i}
		puts[j.ID] = p
		order = append(order, p)
	}
	// Claim order: priority, the highest first, then put order.
	slices.SortFunc(order, func(a, c put) int { return cmp.Or(cmp.Compare(c.p, a.p), cmp.Compare(a.rank, c.rank)) })
	owners := cncOwners(b, Queue, claimers, size)
	var all []string
	for _, r := range cncRace(b, Queue, owners, size, size) {
		if r.err != nil {
			t.Fatalf("%s: %v", r.owner, r.err)
		}
		for k := 1; k < len(r.claimed); k++ {
			prev, cur := puts[r.claimed[k-1].ID], puts[r.claimed[k].ID]
			if cur.p > prev.p || cur.p == prev.p && cur.rank < prev.rank {
				t.Fatalf("%s claimed %+v after %+v", r.owner, cur, prev)
			}
		}
		for _, j := range r.claimed {
			all = append(all, j.ID)
		}
	}
	if len(all) != claimers*size {
		t.Fatalf("%d jobs claimed, want %d", len(all), claimers*size)
	}
	var want []string
	for _, p := range order[:claimers*size] {
		want = append(want, p.id)
	}
	slices.Sort(all)
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("claimed %v, want the %d first in claim order %v", all, len(want), want)
	}
}

// Jobs put with unique keys take their priorities' places as any job does, and a debounced
// job keeps its own priority, not the debouncing put's.
func prUniquePuts(t *testing.T, h Harness) {
	b := setup(t, h)
	put := func(handler, key string, p int, debounce bool) *persistence.Job {
		t.Helper()
		return b.put(Queue, persistence.JobSpec{Call: call(handler), Priority: p,
			Unique: &persistence.Unique{Key: key, Debounce: debounce}})
	}
	put("plain", "k-plain", 0, false)
	low := put("low", "k-low", 2, false)
	put("top", "k-top", 9, false)
	// Debounced by a put at priority 9: the job stays at 2, with the newer call.
	if j := put("low-again", "k-low", 9, true); j.ID != low.ID || !j.Duplicate {
		t.Fatalf("the debouncing put answered %+v, want job %s", j, low.ID)
	}
	o := b.qtDispatcher()
	if got, want := b.prDrain(o, false), []string{"top", "plain", "low-again"}; !slices.Equal(got, want) {
		t.Fatalf("claim order %v, want %v", got, want)
	}
}

// A composite's sub-job given no priority takes the composite's; one given its own keeps it.
func prChildTakesParents(t *testing.T, h Harness) {
	b := setup(t, h)
	parent, err := b.s.Create(b.ctx, Queue, persistence.JobSpec{Call: call("composite"), Priority: 8})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	child, _, err := b.s.AddChild(b.ctx, parent.Ref, persistence.JobSpec{Call: call("part")})
	if err != nil {
		t.Fatalf("AddChild: %v", err)
	}
	own, _, err := b.s.AddChild(b.ctx, parent.Ref, persistence.JobSpec{Call: call("part"), Priority: 2})
	if err != nil {
		t.Fatalf("AddChild: %v", err)
	}
	if p := b.get(child.Ref).Priority; p != 8 {
		t.Fatalf("child's priority %d, want its parent's 8", p)
	}
	if p := b.get(own.Ref).Priority; p != 2 {
		t.Fatalf("child's own priority %d, want 2", p)
	}
}

// Delete takes a pending job out of its priority's queue.
func prDelete(t *testing.T, h Harness) {
	b := setup(t, h)
	a := b.prPut("a", 9)
	b.prPut("plain", 0)
	if _, err := b.s.Delete(b.ctx, Queue, []string{a.ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	b.qtWantStats(Queue, persistence.QueueStats{Due: 1}, "after Delete")
	if got := b.prDrain(b.qtDispatcher(), false); !slices.Equal(got, []string{"plain"}) {
		t.Fatalf("after Delete: claimed %v, want the plain job only", got)
	}
}
