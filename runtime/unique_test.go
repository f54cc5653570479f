package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// A second put with the key returns the first job, marked; PutMany reports each job; the
// record keeps the key; the key is free again once the job completes.
func TestUniquePut(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	first := mustPut(t, rt, NewCall("work", 1), Unique("k", UniqueOpts{}))
	if first.Duplicate() || first.Debounced() {
		t.Fatalf("first put: duplicate %v debounced %v", first.Duplicate(), first.Debounced())
	}
	if key, ok, err := first.UniqueKey(ctx); err != nil || !ok || key != "k" {
		t.Fatalf("UniqueKey: %q %v %v, want k", key, ok, err)
	}
	second := mustPut(t, rt, NewCall("work", 2), Unique("k", UniqueOpts{}))
	if second.ID() != first.ID() || !second.Duplicate() {
		t.Fatalf("second put: %s (duplicate %v), want %s as a duplicate", second, second.Duplicate(), first)
	}
	jobs, err := q.PutMany(ctx, []Call{NewCall("work", 3), NewCall("work", 4)}, Unique("m", UniqueOpts{}))
	if err != nil || jobs[0].Duplicate() || !jobs[1].Duplicate() || jobs[1].ID() != jobs[0].ID() {
		t.Fatalf("PutMany: %v %v, want one job and its duplicate", jobs, err)
	}
	// The typed API's jobs say so too.
	typ, err := Register(rt, "typed", func(_ context.Context, n int) (int, error) { return n, nil })
	if err != nil {
		t.Fatal(err)
	}
	t1, err := typ.Put(ctx, DefaultQueue, 1, Unique("t", UniqueOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	t2, err := typ.Put(ctx, DefaultQueue, 2, Unique("t", UniqueOpts{}))
	if err != nil || t1.Duplicate() || !t2.Duplicate() || t2.ID() != t1.ID() {
		t.Fatalf("typed puts: %v %v (%v), want the second a duplicate of the first", t1, t2, err)
	}
	// A plain handle, and a put without the option, are no duplicates.
	if rt.Job(first.Ref()).Duplicate() || mustPut(t, rt, NewCall("work")).Duplicate() {
		t.Fatalf("a handle not from a unique put reports a duplicate")
	}
	if err := runAsDispatcher(ctx, rt, first, persistence.Outcome{Result: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	if again := mustPut(t, rt, NewCall("work", 5), Unique("k", UniqueOpts{})); again.Duplicate() || again.ID() == first.ID() {
		t.Fatalf("put after completion: %s (duplicate %v), want a new job", again, again.Duplicate())
	}
}

// CompletedWithin holds the key past completion; Debounce replaces a pending job's call.
func TestUniqueOptions(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	kept := mustPut(t, rt, NewCall("work"), Unique("kept", UniqueOpts{CompletedWithin: time.Hour}))
	if err := runAsDispatcher(ctx, rt, kept, persistence.Outcome{Result: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	if again := mustPut(t, rt, NewCall("work"), Unique("kept", UniqueOpts{CompletedWithin: time.Hour})); !again.Duplicate() || again.ID() != kept.ID() {
		t.Fatalf("put within the period: %s (duplicate %v), want %s", again, again.Duplicate(), kept)
	}
	deb := func(n int) *Job {
		return mustPut(t, rt, NewCall("work", n), BeginIn(time.Hour), Unique("deb", UniqueOpts{Debounce: true}))
	}
	d1 := deb(1)
	d2 := deb(2)
	if d2.ID() != d1.ID() || !d2.Duplicate() || !d2.Debounced() {
		t.Fatalf("debounced put: %s duplicate %v debounced %v, want %s debounced", d2, d2.Duplicate(), d2.Debounced(), d1)
	}
	var n int
	if rec := mustInfo(t, d1); len(rec.Call.Args) != 1 || rec.Call.Arg(0, &n) != nil || n != 2 {
		t.Fatalf("debounced job's call: %s, want work(2)", rec.Call.Args)
	}
}

// Bad unique options: a one-line ErrInvalid, and nothing put.
func TestUniqueBadInput(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	for _, tc := range []struct {
		name string
		opt  PutOption
	}{
		{"empty key", Unique("", UniqueOpts{})},
		{"key too long", Unique(strings.Repeat("k", MaxUniqueKey+1), UniqueOpts{})},
		{"negative period", Unique("k", UniqueOpts{CompletedWithin: -time.Second})},
		{"unknown states", Unique("k", UniqueOpts{States: 1 << 6})},
	} {
		_, err := q.Put(ctx, NewCall("work"), tc.opt)
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line ErrInvalid", tc.name, err)
		}
	}
	if _, err := q.Put(ctx, Serial(NewCall("a"), NewCall("b")), Unique("k", UniqueOpts{})); !errors.Is(err, ErrInvalid) {
		t.Errorf("composite with Unique: %v, want ErrInvalid", err)
	}
	if ids, err := rt.store.Pending(ctx, DefaultQueue, 0, 10); err != nil || len(ids) != 0 {
		t.Fatalf("pending after bad puts: %v %v, want none", ids, err)
	}
}

// End to end: while the job runs its key is held; once it has completed, a put makes a new
// job.
func TestUniqueRun(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}, 1), make(chan struct{})
	rt := startedRuntime(t, 2, func(rt *Runtime) {
		rt.Handle("slow", Func0(func(ctx context.Context) (int, error) {
			started <- struct{}{}
			select {
			case <-release:
				return 1, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}))
	})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	first, err := q.Put(ctx, NewCall("slow"), Unique("run", UniqueOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	await(t, ctx, started, "the job's start")
	dup, err := q.Put(ctx, NewCall("slow"), Unique("run", UniqueOpts{}))
	if err != nil || !dup.Duplicate() || dup.ID() != first.ID() {
		t.Fatalf("put while running: %v %v, want %s as a duplicate", dup, err, first)
	}
	close(release)
	if n := waitInt(t, first); n != 1 {
		t.Fatalf("result %d", n)
	}
	next, err := q.Put(ctx, NewCall("slow"), Unique("run", UniqueOpts{}))
	if err != nil || next.Duplicate() || next.ID() == first.ID() {
		t.Fatalf("put after completion: %v %v, want a new job", next, err)
	}
	await(t, ctx, started, "the second job's start")
	if n := waitInt(t, next); n != 1 {
		t.Fatalf("result %d", n)
	}
}
