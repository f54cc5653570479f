package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zasync/zasync/runtime"
)

// Scenario 27, as zasync means it: nothing a handler does is rolled back when it fails (a
// handler owns its side effects); what it wrote, here a live annotation, stays, and the
// failure is the job's result.
func TestScenario27FailuresRollBackNothing(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		rt := w.runtime("s27", 3, map[string]runtime.HandlerFunc{
			"half": func(ctx context.Context, _ *runtime.Call) (any, error) {
				j, _ := runtime.JobFrom(ctx)
				if err := j.SetAnnotation(ctx, "progress", "halfway"); err != nil {
					return nil, err
				}
				return nil, errors.New("gave up halfway")
			},
		})
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("half"))
		if err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		_, out := waitFor[any](t, w, job)
		if out.Failure == nil || out.Failure.Message != "gave up halfway" {
			t.Fatalf("outcome %+v, want the failure", out)
		}
		var p string
		if ok, err := job.Annotation(w.ctx, "progress", &p); !ok || err != nil || p != "halfway" {
			t.Fatalf("annotation %q %v %v, want it kept", p, ok, err)
		}
	})
}

// Scenarios 31 and 34: a callback added to a completed job runs at once; one added by a
// callback while the job runs its callbacks runs too.
func TestScenario31And34LateCallbacks(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		var rt *runtime.Runtime
		ran := make(chan string, 3)
		rt = w.runtime("s31", 3, map[string]runtime.HandlerFunc{
			"thirty": func(context.Context, *runtime.Call) (any, error) { return 30, nil },
			"note": runtime.Func2(func(_ context.Context, name string, r int) (int, error) {
				ran <- fmt.Sprint(name, " ", r)
				return r, nil
			}),
			"adder": runtime.Func1(func(ctx context.Context, r int) (int, error) {
				// While the parent runs its callbacks: add one more to it.
				cb, _ := runtime.JobFrom(ctx)
				info, err := cb.Info(ctx)
				if err != nil {
					return 0, err
				}
				parent := rt.Job(runtime.Ref{Queue: info.Queue, ID: info.Parent})
				_, err = parent.AddCallback(ctx, runtime.NewCall("note", "added during callbacks"))
				return r, err
			}),
		})
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("thirty"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := job.AddCallback(w.ctx, runtime.NewCall("adder")); err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		waitFor[int](t, w, job)
		if got := <-ran; got != "added during callbacks 30" {
			t.Fatalf("callback added during callbacks: %q", got)
		}
		late, err := job.AddCallback(w.ctx, runtime.NewCall("note", "added after completion"))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := waitFor[int](t, w, late); n != 30 || <-ran != "added after completion 30" {
			t.Fatalf("callback added to the completed job: %d", n)
		}
	})
}

// Scenarios 35 and 36: serial with a postprocess, parallel summed to 42, and a postprocess
// with an argument of its own (zc.async's Job(p, 'foo') gets ('foo', *jobs)).
func TestScenario35And36Composites(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		var order []int
		var mu sync.Mutex
		rt := w.runtime("s35", 3, map[string]runtime.HandlerFunc{
			"job": runtime.Func1(func(_ context.Context, n int) (int, error) {
				mu.Lock()
				order = append(order, n)
				mu.Unlock()
				return n, nil
			}),
			"results": func(_ context.Context, c *runtime.Call) (any, error) {
				var out []int
				for i := range c.Args {
					var s runtime.SubJob
					var n int
					if err := c.Arg(i, &s); err != nil {
						return nil, err
					}
					if err := (&runtime.Outcome{Result: s.Result}).Decode(&n); err != nil {
						return nil, err
					}
					out = append(out, n)
				}
				return out, nil
			},
			"labelled": func(_ context.Context, c *runtime.Call) (any, error) {
				var label string
				if err := c.Arg(0, &label); err != nil {
					return nil, err
				}
				sum := 0
				for i := 1; i < len(c.Args); i++ {
					var s runtime.SubJob
					var n int
					c.Arg(i, &s)
					(&runtime.Outcome{Result: s.Result}).Decode(&n)
					sum += n
				}
				return []any{label, sum}, nil
			},
		})
		q := rt.Queue(runtime.DefaultQueue)
		serial, err := q.Put(w.ctx, runtime.Serial(runtime.NewCall("job", 0), runtime.NewCall("job", 1), runtime.NewCall("job", 2),
			runtime.Postprocess(runtime.NewCall("results"))))
		if err != nil {
			t.Fatal(err)
		}
		parallel, err := q.Put(w.ctx, runtime.Parallel(runtime.NewCall("job", 7), runtime.NewCall("job", 14), runtime.NewCall("job", 21),
			runtime.Postprocess(runtime.NewCall("labelled", "foo"))))
		if err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		if got, _ := waitFor[[]int](t, w, serial); fmt.Sprint(got) != "[0 1 2]" {
			t.Fatalf("serial: %v, want [0 1 2]", got)
		}
		if got, _ := waitFor[[]any](t, w, parallel); fmt.Sprint(got) != "[foo 42]" {
			t.Fatalf("parallel: %v, want [foo 42]", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if i0, i1, i2 := indexOf(order, 0), indexOf(order, 1), indexOf(order, 2); !(i0 < i1 && i1 < i2) {
			t.Fatalf("serial parts ran in the order %v", order)
		}
	})
}

func indexOf(xs []int, x int) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// Scenario 39: an agent of size 3 runs at most 3 jobs at once; the 4th starts when one
// finishes. And a size-1 agent completes Serial(a, b, c): a waiting composite holds no slot.
func TestScenario39AgentSize(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		var running, most atomic.Int32
		release := make(chan struct{})
		rt := w.runtime("s39", 3, map[string]runtime.HandlerFunc{
			"hold": func(ctx context.Context, _ *runtime.Call) (any, error) {
				n := running.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				<-release
				running.Add(-1)
				return nil, nil
			},
		})
		var jobs []*runtime.Job
		for range 5 {
			j, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("hold"))
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, j)
		}
		w.start(rt)
		defer w.stop(rt)
		w.eventually("3 jobs running", func() bool { return running.Load() == 3 })
		if len(rt.ActiveJobIDs("", "")) != 3 {
			t.Fatalf("ActiveJobIDs %v, want 3", rt.ActiveJobIDs("", ""))
		}
		close(release)
		for _, j := range jobs {
			waitFor[any](t, w, j)
		}
		if m := most.Load(); m != 3 {
			t.Fatalf("at most %d ran at once, want 3", m)
		}
	})
	backends(t, func(t *testing.T, w *world) {
		rt := w.runtime("size1", 1, map[string]runtime.HandlerFunc{
			"n": runtime.Func1(func(_ context.Context, n int) (int, error) { return n, nil }),
		})
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.Serial(runtime.NewCall("n", 1), runtime.NewCall("n", 2), runtime.NewCall("n", 3)))
		if err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		if got, _ := waitFor[[]runtime.SubJob](t, w, job); len(got) != 3 || string(got[2].Result) != "3" {
			t.Fatalf("Serial(a, b, c) on a size-1 agent: %+v", got)
		}
	})
}

// 1,000 jobs put by 4 goroutines all complete exactly once; and an idle dispatcher starts a
// freshly put job well before its next poll (under a quarter of the poll interval).
func TestThroughputAndPickup(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		var mu sync.Mutex
		runs := map[string]int{}
		rt := w.runtime("many", 8, map[string]runtime.HandlerFunc{
			"count": func(ctx context.Context, _ *runtime.Call) (any, error) {
				j, _ := runtime.JobFrom(ctx)
				mu.Lock()
				runs[j.ID()]++
				mu.Unlock()
				return nil, nil
			},
		})
		w.start(rt)
		defer w.stop(rt)
		jobs := make(chan *runtime.Job, 1000)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 250 {
					j, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("count"))
					if err != nil {
						t.Error(err)
						return
					}
					jobs <- j
				}
			})
		}
		wg.Wait()
		close(jobs)
		for j := range jobs {
			waitFor[any](t, w, j)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(runs) != 1000 {
			t.Fatalf("%d jobs ran, want 1000", len(runs))
		}
		for id, n := range runs {
			if n != 1 {
				t.Fatalf("job %s ran %d times", id, n)
			}
		}
	})
	backends(t, func(t *testing.T, w *world) {
		const poll = 20 * time.Second
		rt, err := runtime.New(runtime.Config{Redis: w.client, Prefix: w.prefix, UUID: "pickup", PollInterval: poll})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		started := make(chan time.Time, 1)
		rt.Handle("now", func(context.Context, *runtime.Call) (any, error) { started <- time.Now(); return nil, nil })
		w.start(rt)
		defer w.stop(rt)
		w.eventually("the first poll", func() bool { return rt.StatusInfo().Status == runtime.DispatcherRunning })
		put := time.Now()
		if _, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("now")); err != nil {
			t.Fatal(err)
		}
		if took := (<-started).Sub(put); took > poll/4 {
			t.Fatalf("an idle dispatcher took %s to start a new job, want under %s", took, poll/4)
		}
	})
}

// Scenarios 51 to 53 through the public API: JobInfo after a success and a failure, the
// dispatcher's status while it runs and once stopped, and its bounded poll history.
func TestScenario51To53Introspection(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		rt := w.runtime("s51", 3, map[string]runtime.HandlerFunc{
			"ok":   func(context.Context, *runtime.Call) (any, error) { return 42, nil },
			"fail": func(context.Context, *runtime.Call) (any, error) { return nil, errors.New("boom") },
		})
		q := rt.Queue(runtime.DefaultQueue)
		ok, _ := q.Put(w.ctx, runtime.NewCall("ok"))
		bad, _ := q.Put(w.ctx, runtime.NewCall("fail"))
		w.start(rt)
		waitFor[int](t, w, ok)
		waitFor[any](t, w, bad)
		var good, failed runtime.JobInfo
		w.eventually("both runs recorded", func() bool {
			var a, b bool
			good, a = rt.JobInfo(ok.ID())
			failed, b = rt.JobInfo(bad.ID())
			return a && b && !good.Completed.IsZero() && !failed.Completed.IsZero()
		})
		if good.Agent != "main" || good.Queue != runtime.DefaultQueue || good.Result != "42" || good.Failed || good.Reassigned || good.Started.IsZero() {
			t.Fatalf("JobInfo of the success: %+v", good)
		}
		if !failed.Failed || !strings.Contains(failed.Result, "boom") {
			t.Fatalf("JobInfo of the failure: %+v", failed)
		}
		if s := rt.StatusInfo(); s.Status != runtime.DispatcherRunning || s.UUID != "s51" {
			t.Fatalf("status while running: %+v", s)
		}
		polls := rt.Polls(time.Time{}, time.Time{}, 0)
		if len(polls) == 0 || len(polls) > 400 || (len(polls) > 1 && polls[0].ID < polls[1].ID) {
			t.Fatalf("%d polls, want 1 to 400, newest first", len(polls))
		}
		w.stop(rt)
		if s := rt.StatusInfo(); s.Status != runtime.DispatcherStopped {
			t.Fatalf("status after Stop: %+v", s)
		}
	})
}
