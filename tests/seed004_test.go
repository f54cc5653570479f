package tests

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/runtime"
)

// Seed 004_a72669f05d9d84ef.txt: serial and parallel composites interrupted by a clean
// dispatcher shutdown, once during a sub-job and once during the postprocess. After each stop
// exactly two handleInterrupt jobs wait in the queue, one for the composite and one for the
// interrupted inner job, and both are ACTIVE; after the last restart the composite completes
// with 42 (25 + 17).
func TestSeed004SerialAndParallelInterrupted(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		for _, kind := range []string{"serial", "parallel"} {
			t.Run(kind, func(t *testing.T) { seed004(t, w, kind) })
		}
	})
}

func seed004(t *testing.T, w *world, kind string) {
	componentStarted, postStarted := make(chan struct{}, 1), make(chan struct{}, 1)
	var componentFirst, postFirst atomic.Bool
	componentFirst.Store(true)
	postFirst.Store(true)
	handlers := map[string]runtime.HandlerFunc{
		"normal_component": func(context.Context, *runtime.Call) (any, error) { return 25, nil },
		"pause_component": func(ctx context.Context, _ *runtime.Call) (any, error) {
			if componentFirst.Swap(false) {
				componentStarted <- struct{}{}
				<-ctx.Done() // the clean shutdown interrupts it
				return nil, ctx.Err()
			}
			return 17, nil
		},
		"pause_postprocess": runtime.Func2(func(ctx context.Context, a, b runtime.SubJob) (int, error) {
			if postFirst.Swap(false) {
				postStarted <- struct{}{}
				<-ctx.Done()
				return 0, ctx.Err()
			}
			var x, y int
			if err := (&runtime.Outcome{Result: a.Result}).Decode(&x); err != nil {
				return 0, err
			}
			if err := (&runtime.Outcome{Result: b.Result}).Decode(&y); err != nil {
				return 0, err
			}
			return x + y, nil
		}),
	}
	normal, pause := runtime.NewCall("normal_component"), runtime.NewCall("pause_component")
	post := runtime.Postprocess(runtime.NewCall("pause_postprocess"))
	composite := runtime.Serial(normal, pause, post)
	if kind == "parallel" {
		composite = runtime.Parallel(pause, normal, post)
	}
	uuid := "seed004-" + kind

	rt := w.runtime(uuid, 3, handlers)
	job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, composite)
	if err != nil {
		t.Fatal(err)
	}
	subs, postID := w.parts(job.ID())
	normalID, pauseID := subs[0], subs[1]
	if kind == "parallel" {
		normalID, pauseID = subs[1], subs[0]
	}
	// What the seed's assertions presume when it stops: the composite waits for its
	// postprocess in this run (parked), and the sub-job that moved it on has completed.
	settled := func(done string) func() bool {
		return func() bool {
			c, d := w.record(job.ID()), w.record(done)
			return c.Status == persistence.StatusActive && c.WaitingOn == postID && c.Parked && d.Status == persistence.StatusCompleted
		}
	}

	// INTERRUPT 1: during pause_component.
	w.start(rt)
	<-componentStarted
	w.eventually("the composite waits and normal_component has completed", settled(normalID))
	w.stop(rt)
	wantTwoInterrupts(t, w, job.ID(), pauseID)

	// A new dispatcher with the same UUID; INTERRUPT 2: during the postprocess.
	rt = w.runtime(uuid, 3, handlers)
	w.start(rt)
	<-postStarted
	w.eventually("the composite waits again and pause_component has completed", settled(pauseID))
	w.stop(rt)
	wantTwoInterrupts(t, w, job.ID(), postID)

	// Finally, a restart without interruptions: the composite completes with 42.
	rt = w.runtime(uuid, 3, handlers)
	w.start(rt)
	defer w.stop(rt)
	out, err := rt.Job(job.Ref()).Wait(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := out.Decode(&n); err != nil || n != 42 {
		t.Fatalf("composite result %d (%v), want 42", n, err)
	}
}

// wantTwoInterrupts checks that exactly two handleInterrupt jobs wait, one for the composite
// and one for inner, and that both jobs are ACTIVE. (Their order in the queue is the order in
// which the agent claimed the two jobs, which concurrent claims make either way.)
func wantTwoInterrupts(t *testing.T, w *world, composite, inner string) {
	t.Helper()
	var targets []string
	for _, j := range w.queued() {
		if j.Call.Handler != persistence.HandlerHandleInterrupt {
			t.Fatalf("the queue holds %s, want only handleInterrupt jobs", j.Call.String())
		}
		targets = append(targets, j.Target)
	}
	want := []string{composite, inner}
	slices.Sort(targets)
	slices.Sort(want)
	if !slices.Equal(targets, want) {
		t.Fatalf("handleInterrupt jobs for %v, want exactly one for the composite %s and one for %s", targets, composite, inner)
	}
	for _, id := range targets {
		if s := w.record(id).Status; s != persistence.StatusActive {
			t.Fatalf("job %s is %s, want ACTIVE", id, s)
		}
	}
}
