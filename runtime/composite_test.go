package runtime

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// A composite is put with its options, over children created NEW (a composite part with
// children of its own), and its parts know their composite; nothing but the composite waits in
// the queue.
func TestPutCompositeShape(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	if err := q.CreateQuota(ctx, "db", 1); err != nil {
		t.Fatal(err)
	}
	job, err := q.Put(ctx, Serial(NewCall("a"), Parallel(NewCall("b"), NewCall("c")), Postprocess(NewCall("p", "x"))),
		BeginIn(time.Hour), BeginBy(time.Minute), Quotas("db"), Retry(NeverRetry))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	rec := mustInfo(t, job)
	if rec.Status != StatusPending || rec.Call.Handler != actors.HandlerSerial || rec.BeginBy != time.Minute ||
		!slices.Equal(rec.QuotaNames, []string{"db"}) || rec.RetryPolicy != "NeverRetry" {
		t.Fatalf("composite %+v, want PENDING with its options", rec)
	}
	if d := time.Until(rec.BeginAfter); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("composite begin_after %s is %s away, want about an hour", rec.BeginAfter, d)
	}
	st, err := rt.store.Stats(ctx, DefaultQueue)
	if err != nil || st != (persistence.QueueStats{Scheduled: 1}) {
		t.Fatalf("queue %+v (%v), want only the composite, scheduled", st, err)
	}
	kids := children(t, rt, job, 2)
	if kids[0].Call.Handler != "a" || kids[1].Call.Handler != actors.HandlerParallel {
		t.Fatalf("parts %s and %s, want a and the parallel", kids[0].Call.String(), kids[1].Call.String())
	}
	inner := children(t, rt, rt.job(kids[1].Ref), 2)
	if inner[0].Call.Handler != "b" || inner[1].Call.Handler != "c" {
		t.Fatalf("inner parts %s and %s, want b and c", inner[0].Call.String(), inner[1].Call.String())
	}
	comp, ok, err := rt.job(inner[0].Ref).Composite(ctx)
	if err != nil || !ok || comp.ID() != kids[1].ID {
		t.Fatalf("composite of b: %v %v %v, want the parallel %s", comp, ok, err, kids[1].ID)
	}
	if _, ok, err := job.Composite(ctx); err != nil || ok {
		t.Fatalf("composite of the outer composite: %v %v, want none", ok, err)
	}
}

// children reads the children of composite, which must be n NEW jobs, sub-jobs of it.
func children(t *testing.T, rt *Runtime, composite *Job, n int) []*persistence.Job {
	t.Helper()
	ctx := testCtx(t)
	rec := mustInfo(t, composite)
	kids, err := rt.store.GetMany(ctx, composite.Ref().Queue, rec.Children)
	if err != nil || len(kids) != n {
		t.Fatalf("children of %s: %d (%v), want %d", composite, len(kids), err, n)
	}
	for _, k := range kids {
		if k == nil || k.Status != persistence.StatusNew || k.Composite != composite.ID() || k.Parent != "" {
			t.Fatalf("child of %s: %+v, want a NEW sub-job of it", composite, k)
		}
	}
	return kids
}

// A bad composite is refused before anything is written: nothing waits in the queue.
func TestPutCompositeErrors(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	for _, tt := range []struct {
		name string
		call Call
		opts []PutOption
	}{
		{"no parts", Serial(Postprocess(NewCall("p"))), nil},
		{"two postprocesses", Serial(NewCall("a"), Postprocess(NewCall("p")), Postprocess(NewCall("q"))), nil},
		{"bad nested part", Serial(NewCall("a"), Parallel(NewCall(""))), nil},
		{"composite postprocess", Serial(NewCall("a"), Postprocess(Serial(NewCall("b")))), nil},
		{"bad option", Serial(NewCall("a")), []PutOption{BeginBy(-time.Second)}},
	} {
		if _, err := q.Put(ctx, tt.call, tt.opts...); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Put gave %v, want ErrInvalid", tt.name, err)
		}
	}
	if st, err := rt.store.Stats(ctx, DefaultQueue); err != nil || st != (persistence.QueueStats{}) {
		t.Fatalf("queue after the refused puts: %+v (%v), want empty", st, err)
	}
}

// AddSubJob on a composite that has not started: the sub-job is added after the others,
// NEW, to be run with them.
func TestAddSubJobBeforeStart(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	job, err := rt.Queue(DefaultQueue).Put(ctx, Parallel(NewCall("a")))
	if err != nil {
		t.Fatal(err)
	}
	added, err := AddSubJob(ctx, job, NewCall("b", 1))
	if err != nil {
		t.Fatalf("AddSubJob: %v", err)
	}
	kids := children(t, rt, job, 2)
	if kids[1].ID != added.ID() || kids[1].Call.String() != "b(1)" {
		t.Fatalf("children %s, %s; want a then the added b(1) %s", kids[0].Call.String(), kids[1].Call.String(), added.ID())
	}
	for _, c := range []Call{NewCall(""), Postprocess(NewCall("p")), NewCall("f", make(chan int))} {
		if _, err := AddSubJob(ctx, job, c); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddSubJob(%s): %v, want ErrInvalid", c.Handler, err)
		}
	}
	if _, err := AddSubJob(ctx, nil, NewCall("b")); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddSubJob to a nil composite: %v, want ErrInvalid", err)
	}
	children(t, rt, job, 2)
}
