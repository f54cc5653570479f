package tests

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/runtime"
)

// Seed 004_a72669f05d9d84ef.txt, taken literally: serial and parallel composites
// interrupted by a clean dispatcher shutdown as soon as a sub-job has started, then, after a
// restart, as soon as the postprocess has started. After each stop the queue holds exactly
// the seed's two jobs: a handleInterrupt job for the composite, then one for the interrupted
// inner job, both targets ACTIVE; after the last restart the composite completes with 42
// (25 + 17). Each kind gets a Redis of its own, so that one failing leaves the other's queue
// clean.
func TestSeed004SerialAndParallelInterrupted(t *testing.T) {
	for _, kind := range []string{"serial", "parallel"} {
		t.Run(kind, func(t *testing.T) {
			backends(t, func(t *testing.T, w *world) { seed004(t, w, kind) })
		})
	}
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

	// INTERRUPT 1: during pause_component. As the seed does, the dispatcher is stopped as soon
	// as that job has started (in parallel, once normal_component's result is in), whatever
	// zasync's own bookkeeping is doing at that moment.
	w.start(rt)
	if kind == "parallel" {
		out, err := rt.Job(job.Ref().In(normalID)).Wait(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := 0; out.Decode(&n) != nil || n != 25 {
			t.Fatalf("normal_component's result %s, want 25", out.Result)
		}
	}
	<-componentStarted
	w.stop(rt)
	wantTwoInterrupts(t, w, job.ID(), pauseID)

	// A new dispatcher with the same UUID; INTERRUPT 2: during the postprocess, stopped as
	// soon as it has started.
	rt = w.runtime(uuid, 3, handlers)
	w.start(rt)
	<-postStarted
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

// wantTwoInterrupts checks the queue as the seed shows it after a clean stop: exactly two
// jobs wait, both handleInterrupt, the first for the composite and the second for inner (the
// order in which the stopped agent claimed them), and both targets are still ACTIVE. Any
// other job waiting (a resumeCallbacks job for a part whose bookkeeping the stop cut short,
// a part put back in the queue) fails the test.
func wantTwoInterrupts(t *testing.T, w *world, composite, inner string) {
	t.Helper()
	queued := w.queued()
	got := make([]string, len(queued))
	for i, j := range queued {
		got[i] = j.Call.Handler + "(" + j.Target + ")"
	}
	want := []string{persistence.HandlerHandleInterrupt + "(" + composite + ")", persistence.HandlerHandleInterrupt + "(" + inner + ")"}
	if !slices.Equal(got, want) {
		t.Fatalf("the queue holds %v, want exactly %v", got, want)
	}
	for _, id := range []string{composite, inner} {
		if s := w.record(id).Status; s != persistence.StatusActive {
			t.Fatalf("job %s is %s, want ACTIVE", id, s)
		}
	}
}
