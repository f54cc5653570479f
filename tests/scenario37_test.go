package tests

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/runtime"
)

// subJobResults decodes the string results of the sub-jobs a postprocess receives.
func subJobResults(c *runtime.Call) ([]string, error) {
	out := make([]string, len(c.Args))
	for i := range c.Args {
		var s runtime.SubJob
		if err := c.Arg(i, &s); err != nil {
			return nil, err
		}
		if err := (&runtime.Outcome{Result: s.Result, Failure: s.Failure}).Decode(&out[i]); err != nil {
			return nil, fmt.Errorf("sub-job %s: %w", s.ID, err)
		}
	}
	return out, nil
}

// Scenario 37: the jobs of a serial composite are appended dynamically. The first sub-job
// appends the second from its handler, and gives it a callback that appends the third
// before the third begins; the postprocess receives the three in order →
// ['first','second','third']. One agent slot is enough: the waiting composite is parked.
func TestScenario37JobsAppendedDynamically(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		var mu sync.Mutex
		var ran []string
		step := func(name string) runtime.HandlerFunc {
			return func(context.Context, *runtime.Call) (any, error) {
				mu.Lock()
				ran = append(ran, name)
				mu.Unlock()
				return name, nil
			}
		}
		rt := w.runtime("s37", 1, map[string]runtime.HandlerFunc{
			"first": func(ctx context.Context, c *runtime.Call) (any, error) {
				me, _ := runtime.JobFrom(ctx)
				comp, ok, err := me.Composite(ctx)
				if err != nil || !ok {
					return nil, fmt.Errorf("the first sub-job finds no composite: %v", err)
				}
				second, err := runtime.AddSubJob(ctx, comp, runtime.NewCall("second"))
				if err != nil {
					return nil, err
				}
				if _, err := second.AddCallback(ctx, runtime.NewCall("scheduleThird")); err != nil {
					return nil, err
				}
				return step("first")(ctx, c)
			},
			"second": step("second"),
			"third":  step("third"),
			// A callback of the second sub-job: its parent is that sub-job, whose composite
			// takes the third.
			"scheduleThird": func(ctx context.Context, _ *runtime.Call) (any, error) {
				me, _ := runtime.JobFrom(ctx)
				second, ok, err := me.Parent(ctx)
				if err != nil || !ok {
					return nil, fmt.Errorf("the callback finds no parent: %v", err)
				}
				comp, ok, err := second.Composite(ctx)
				if err != nil || !ok {
					return nil, fmt.Errorf("the second sub-job finds no composite: %v", err)
				}
				_, err = runtime.AddSubJob(ctx, comp, runtime.NewCall("third"))
				return nil, err
			},
			"names": func(_ context.Context, c *runtime.Call) (any, error) { return subJobResults(c) },
		})
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx,
			runtime.Serial(runtime.NewCall("first"), runtime.Postprocess(runtime.NewCall("names"))))
		if err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		got, out := waitFor[[]string](t, w, job)
		if out.Failure != nil {
			t.Fatalf("composite failed: %v", out.Failure)
		}
		if want := []string{"first", "second", "third"}; !slices.Equal(got, want) {
			t.Fatalf("composite result %q, want %q", got, want)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"first", "second", "third"}; !slices.Equal(ran, want) {
			t.Fatalf("sub-jobs ran %q, want %q one after another", ran, want)
		}
		if subs, _ := w.parts(job.ID()); len(subs) != 3 {
			t.Fatalf("composite has %d sub-jobs, want 3", len(subs))
		}
	})
}

// A parallel composite grown by one of its sub-jobs: the appended sub-job is queued at once
// (it runs while the sub-job that appended it waits for it), and the default postprocess
// lists both outcomes, the appended one last.
func TestScenario37ParallelGrows(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		bRan := make(chan struct{})
		rt := w.runtime("s37p", 3, map[string]runtime.HandlerFunc{
			"a": func(ctx context.Context, _ *runtime.Call) (any, error) {
				me, _ := runtime.JobFrom(ctx)
				comp, ok, err := me.Composite(ctx)
				if err != nil || !ok {
					return nil, fmt.Errorf("sub-job a finds no composite: %v", err)
				}
				if _, err := runtime.AddSubJob(ctx, comp, runtime.NewCall("b")); err != nil {
					return nil, err
				}
				select {
				case <-bRan:
					return "a", nil
				case <-time.After(30 * time.Second):
					return nil, errors.New("the appended sub-job did not run alongside the one that appended it")
				}
			},
			"b": func(context.Context, *runtime.Call) (any, error) { close(bRan); return "b", nil },
		})
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.Parallel(runtime.NewCall("a")))
		if err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		subs, out := waitFor[[]runtime.SubJob](t, w, job)
		if out.Failure != nil {
			t.Fatalf("composite failed: %v", out.Failure)
		}
		var got []string
		for _, s := range subs {
			var v string
			if err := (&runtime.Outcome{Result: s.Result, Failure: s.Failure}).Decode(&v); err != nil {
				t.Fatalf("sub-job %s: %v", s.ID, err)
			}
			got = append(got, v)
		}
		if !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("parallel outcomes %q, want [a b]", got)
		}
	})
}

// Appending to a composite that has completed is too late: ErrBadStatus, and nothing is
// added. So is appending to a job that is not a composite (ErrInvalid), or appending a
// composite.
func TestScenario37AppendAfterCompletionRefused(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		rt := w.runtime("s37r", 3, map[string]runtime.HandlerFunc{
			"one": runtime.Func0(func(context.Context) (string, error) { return "one", nil }),
		})
		q := rt.Queue(runtime.DefaultQueue)
		job, err := q.Put(w.ctx, runtime.Serial(runtime.NewCall("one")))
		if err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		waitFor[[]runtime.SubJob](t, w, job)
		before, _ := w.parts(job.ID())
		added, err := runtime.AddSubJob(w.ctx, job, runtime.NewCall("one"))
		if !errors.Is(err, runtime.ErrBadStatus) || added != nil {
			t.Fatalf("AddSubJob to a completed composite: %v, %v; want ErrBadStatus and no job", added, err)
		}
		if after, _ := w.parts(job.ID()); !slices.Equal(after, before) {
			t.Fatalf("a refused AddSubJob changed the sub-jobs: %v, were %v", after, before)
		}

		plain, err := q.Put(w.ctx, runtime.NewCall("one"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runtime.AddSubJob(w.ctx, plain, runtime.NewCall("one")); !errors.Is(err, runtime.ErrInvalid) {
			t.Fatalf("AddSubJob to a job that is not a composite: %v, want ErrInvalid", err)
		}
		if _, err := runtime.AddSubJob(w.ctx, job, runtime.Serial(runtime.NewCall("one"))); !errors.Is(err, runtime.ErrInvalid) {
			t.Fatalf("AddSubJob of a composite: %v, want ErrInvalid", err)
		}
	})
}
