package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Group "Children": a composite's sub-jobs as the store keeps them. AddChild
// creates a NEW job appended to its parent's children in one transaction, so that children
// added from many places at once are all kept, in order; SealChildren makes them final once
// the composite hands their outcomes over, after which none can be added.
func init() {
	register("Children",
		testCase{"Order", chdOrder},
		testCase{"ParentStatuses", chdParentStatuses},
		testCase{"Concurrent", chdConcurrent},
		testCase{"UnknownParent", chdUnknownParent},
		testCase{"BadSpec", chdBadSpec},
		testCase{"Seal", chdSeal},
	)
}

// chdAdd adds a child calling handler to parent and returns it with the parent's status.
func chdAdd(b *bundle, parent persistence.Ref, handler string) (*persistence.Job, persistence.Status) {
	b.t.Helper()
	c, st, err := b.s.AddChild(b.ctx, parent, persistence.JobSpec{Call: call(handler)})
	if err != nil {
		b.t.Fatalf("AddChild(%s, %s): %v", parent, handler, err)
	}
	return c, st
}

// chdCreate creates a NEW job calling handler in Queue, to be a parent.
func chdCreate(b *bundle, handler string) *persistence.Job {
	b.t.Helper()
	j, err := b.s.Create(b.ctx, Queue, persistence.JobSpec{Call: call(handler)})
	if err != nil {
		b.t.Fatalf("Create(%s): %v", handler, err)
	}
	return j
}

// Children are NEW jobs of the parent's queue, kept in the order they were added; they are
// neither queued nor callbacks, and know their composite.
func chdOrder(t *testing.T, h Harness) {
	b := setup(t, h)
	parent := chdCreate(b, "composite")
	var want []string
	for i, handler := range []string{"first", "second", "third"} {
		c, st := chdAdd(b, parent.Ref, handler)
		if st != persistence.StatusNew {
			t.Fatalf("AddChild #%d: parent status %s, want new", i, st)
		}
		if c.Status != persistence.StatusNew || c.Queue != Queue || c.Call.Handler != handler || c.ID == parent.ID ||
			c.Composite != parent.ID || c.Parent != "" {
			t.Fatalf("child #%d: %s status %s queue %q handler %q composite %q parent %q, want a new NEW job of %s calling %s, composite %s, no parent",
				i, c.ID, c.Status, c.Queue, c.Call.Handler, c.Composite, c.Parent, Queue, handler, parent.ID)
		}
		// A sub-job is a job like a queued one, not a callback: it keeps the defaults of jobs.
		if c.RetryPolicy != persistence.RetryCommonFourTimesName {
			t.Fatalf("child #%d: policy %q, want %s", i, c.RetryPolicy, persistence.RetryCommonFourTimesName)
		}
		if s := b.get(c.Ref); s.Status != persistence.StatusNew || s.Composite != parent.ID || s.Call.Handler != handler {
			t.Fatalf("stored child #%d: status %s composite %q handler %q, want NEW, %s, %s", i, s.Status, s.Composite, s.Call.Handler, parent.ID, handler)
		}
		want = append(want, c.ID)
		if p := b.get(parent.Ref); !slices.Equal(p.Children, want) || p.Status != persistence.StatusNew || p.Sealed {
			t.Fatalf("parent after child #%d: children %v status %s sealed %v, want %v, still NEW and not sealed", i, p.Children, p.Status, p.Sealed, want)
		}
	}
	b.qtWantPending(Queue, nil, "after adding children")
	b.qtWantStats(Queue, persistence.QueueStats{}, "after adding children")
}

// A parent takes children while it waits in its queue, is claimed, or runs (a composite grown
// by its sub-jobs); not once its outcome is stored.
func chdParentStatuses(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	parent := b.putCall("composite")
	var kids []string
	add := func(want persistence.Status) {
		t.Helper()
		c, st := chdAdd(b, parent.Ref, "part")
		if st != want {
			t.Fatalf("AddChild: parent status %s, want %s", st, want)
		}
		kids = append(kids, c.ID)
	}
	add(persistence.StatusPending)
	got := dspClaim(b, Queue, o, 3, 0)
	if !slices.Equal(ids(got), []string{parent.ID}) {
		t.Fatalf("claim: %v, want only the parent [%s] (children are not queued)", ids(got), parent.ID)
	}
	add(persistence.StatusAssigned)
	f := got[0].Fence()
	b.start(f)
	add(persistence.StatusActive)
	// Adding children is no transition of the run: the run's fence still holds.
	b.commit(f, `1`)
	for _, st := range []persistence.Status{persistence.StatusCallbacks, persistence.StatusCompleted} {
		if st == persistence.StatusCompleted {
			b.complete(f, 0)
		}
		_, _, err := b.s.AddChild(b.ctx, parent.Ref, persistence.JobSpec{Call: call("late")})
		qtWantErr(t, err, persistence.ErrBadStatus, fmt.Sprintf("AddChild to a parent in %s", st))
		if p := b.get(parent.Ref); !slices.Equal(p.Children, kids) || p.Status != st {
			t.Fatalf("parent after a refused AddChild: children %v status %s, want %v and %s", p.Children, p.Status, kids, st)
		}
	}
}

// Children added from 8 goroutines at once are all kept, once each, each goroutine's in the
// order it added them.
func chdConcurrent(t *testing.T, h Harness) {
	b := setup(t, h)
	parent := chdCreate(b, "composite")
	const writers, each = 8, 5
	start := make(chan struct{})
	added := make([][]string, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				c, err := dspRetry(func() (*persistence.Job, error) {
					c, _, err := b.s.AddChild(b.ctx, parent.Ref, persistence.JobSpec{Call: call("part", w, i)})
					return c, err
				})
				if err != nil {
					errs[w] = err
					return
				}
				added[w] = append(added[w], c.ID)
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent AddChild: %v", err)
	}
	p := b.get(parent.Ref)
	if len(p.Children) != writers*each {
		t.Fatalf("parent has %d children, want %d: %v", len(p.Children), writers*each, p.Children)
	}
	pos := make(map[string]int, len(p.Children))
	for i, id := range p.Children {
		if _, dup := pos[id]; dup {
			t.Fatalf("child %s listed twice: %v", id, p.Children)
		}
		pos[id] = i
	}
	for w, mine := range added {
		last := -1
		for _, id := range mine {
			i, ok := pos[id]
			if !ok {
				t.Fatalf("child %s of writer %d was lost: %v", id, w, p.Children)
			}
			if i < last {
				t.Fatalf("writer %d's children %v are out of order in %v", w, mine, p.Children)
			}
			last = i
		}
	}
	kids, err := b.s.GetMany(b.ctx, Queue, p.Children)
	if err != nil {
		t.Fatalf("GetMany(children): %v", err)
	}
	for i, k := range kids {
		if k == nil || k.Composite != parent.ID || k.Status != persistence.StatusNew {
			t.Fatalf("child %s: %+v, want a NEW job of composite %s", p.Children[i], k, parent.ID)
		}
	}
}

func chdUnknownParent(t *testing.T, h Harness) {
	b := setup(t, h)
	_, _, err := b.s.AddChild(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID}, persistence.JobSpec{Call: call("part")})
	qtWantErr(t, err, persistence.ErrNotFound, "AddChild to a missing parent")
	_, err = b.s.SealChildren(b.ctx, persistence.Ref{Queue: Queue, ID: qtMissingID}, 0)
	qtWantErr(t, err, persistence.ErrNotFound, "SealChildren of a missing parent")
	_, _, err = b.s.AddChild(b.ctx, persistence.Ref{Queue: Queue, ID: "bad id"}, persistence.JobSpec{Call: call("part")})
	qtWantErr(t, err, persistence.ErrInvalid, "AddChild to a malformed ref")
	b.qtWantStats(Queue, persistence.QueueStats{}, "after the refused AddChild")
}

// A bad spec is refused with ErrInvalid before anything is written: the parent is unchanged.
func chdBadSpec(t *testing.T, h Harness) {
	b := setup(t, h)
	parent := chdCreate(b, "composite")
	first, _ := chdAdd(b, parent.Ref, "first")
	before := b.get(parent.Ref)
	for _, c := range []struct {
		name string
		spec persistence.JobSpec
	}{
		{"empty handler", persistence.JobSpec{}},
		{"negative begin_by", persistence.JobSpec{Call: call("part"), BeginBy: -time.Second}},
		{"bad quota name", persistence.JobSpec{Call: call("part"), QuotaNames: []string{"a b"}}},
	} {
		_, _, err := b.s.AddChild(b.ctx, parent.Ref, c.spec)
		qtWantErr(t, err, persistence.ErrInvalid, "AddChild with "+c.name)
		if after := b.get(parent.Ref); !reflect.DeepEqual(after, before) {
			t.Fatalf("AddChild with %s changed the parent: %+v, was %+v", c.name, after, before)
		}
	}
	if p := b.get(parent.Ref); !slices.Equal(p.Children, []string{first.ID}) {
		t.Fatalf("children after the refused AddChild: %v, want [%s]", p.Children, first.ID)
	}
	b.qtWantStats(Queue, persistence.QueueStats{}, "after the refused AddChild")
}

// Sealing succeeds only for the number of children the parent has; once sealed, AddChild
// refuses the parent and writes nothing, and sealing again is a no-op.
func chdSeal(t *testing.T, h Harness) {
	b := setup(t, h)
	parent := chdCreate(b, "composite")
	a, _ := chdAdd(b, parent.Ref, "a")
	c, _ := chdAdd(b, parent.Ref, "c")
	seal := func(n int, want bool, what string) {
		t.Helper()
		ok, err := b.s.SealChildren(b.ctx, parent.Ref, n)
		if err != nil || ok != want {
			t.Fatalf("SealChildren(%d) %s: %v, %v; want %v", n, what, ok, err, want)
		}
	}
	seal(1, false, "having seen one of two children")
	if p := b.get(parent.Ref); p.Sealed {
		t.Fatalf("parent sealed by a refused SealChildren")
	}
	seal(3, false, "claiming more children than there are")
	seal(2, true, "having seen both")
	before := b.get(parent.Ref)
	if !before.Sealed || !slices.Equal(before.Children, []string{a.ID, c.ID}) {
		t.Fatalf("sealed parent: sealed %v children %v, want sealed [%s %s]", before.Sealed, before.Children, a.ID, c.ID)
	}
	_, _, err := b.s.AddChild(b.ctx, parent.Ref, persistence.JobSpec{Call: call("late")})
	qtWantErr(t, err, persistence.ErrBadStatus, "AddChild to a sealed parent")
	if after := b.get(parent.Ref); !reflect.DeepEqual(after, before) {
		t.Fatalf("a refused AddChild changed the sealed parent: %+v, was %+v", after, before)
	}
	seal(2, true, "again (a step re-run after a crash)")
	seal(1, false, "again with a stale count")
}
