package tests

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zasync/zasync/internal/testlog"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/runtime"
)

func waitFor[T any](t *testing.T, w *world, j *runtime.Job) (T, *runtime.Outcome) {
	t.Helper()
	out, err := j.Wait(w.ctx)
	if err != nil {
		t.Fatalf("Wait(%s): %v", j, err)
	}
	var v T
	if out.Failure == nil {
		if err := out.Decode(&v); err != nil {
			t.Fatalf("result of %s: %v", j, err)
		}
	}
	return v, out
}

// Scenario 26: a job is ACTIVE while its handler runs, in CALLBACKS while its callbacks run,
// then COMPLETED for good.
func TestScenario26StatusFlow(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		seen := make(chan string, 2)
		rt := w.runtime("s26", 3, map[string]runtime.HandlerFunc{
			"work": func(ctx context.Context, _ *runtime.Call) (any, error) {
				j, _ := runtime.JobFrom(ctx)
				s, err := j.Status(ctx)
				seen <- "handler " + s.String()
				return 1, err
			},
			"after": func(ctx context.Context, _ *runtime.Call) (any, error) {
				j, _ := runtime.JobFrom(ctx)
				info, err := j.Info(ctx)
				if err != nil {
					return nil, err
				}
				parent, err := w.store.Get(ctx, persistence.Ref{Queue: info.Queue, ID: info.Parent})
				if err != nil {
					return nil, err
				}
				seen <- "callback sees parent " + parent.Status.String()
				return nil, nil
			},
		})
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("work"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := job.AddCallback(w.ctx, runtime.NewCall("after")); err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		waitFor[int](t, w, job)
		if a, b := <-seen, <-seen; a != "handler active" || b != "callback sees parent callbacks" {
			t.Fatalf("saw %q, %q", a, b)
		}
		if s, _ := job.Status(w.ctx); s != runtime.StatusCompleted {
			t.Fatalf("status %s, want completed", s)
		}
	})
}

// Scenario 28: a handler that returns another job makes its job wait for it and take its
// result.
func TestScenario28InnerJob(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		rt := w.runtime("s28", 1, map[string]runtime.HandlerFunc{
			"outer": func(ctx context.Context, _ *runtime.Call) (any, error) {
				j, _ := runtime.JobFrom(ctx)
				return j.Queue().Put(ctx, runtime.NewCall("inner"))
			},
			"inner": func(context.Context, *runtime.Call) (any, error) { return 42, nil },
		})
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("outer"))
		if err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		if n, _ := waitFor[int](t, w, job); n != 42 {
			t.Fatalf("outer result %d, want the inner 42", n)
		}
	})
}

// Scenarios 29 and 30: AddCallbacks picks the success side or the failure side from the
// outcome; callbacks chain on callbacks, and the original job keeps its own outcome.
func TestScenario29And30SuccessAndFailureCallbacks(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		var mu sync.Mutex
		var ran []string
		note := func(s string) { mu.Lock(); ran = append(ran, s); mu.Unlock() }
		rt := w.runtime("s29", 3, map[string]runtime.HandlerFunc{
			"multiply": func(_ context.Context, c *runtime.Call) (any, error) {
				var a, b *int
				c.Arg(0, &a)
				c.Arg(1, &b)
				if a == nil || b == nil {
					return nil, errors.New("unsupported operand type(s) for *: 'int' and 'NoneType'")
				}
				return *a * *b, nil
			},
			"success": runtime.Func1(func(_ context.Context, r int) (string, error) {
				note(fmt.Sprint("success! ", r))
				return "ok", nil
			}),
			"failure": func(_ context.Context, c *runtime.Call) (any, error) {
				var f runtime.Failure
				if err := c.Arg(0, &f); err != nil {
					return nil, err
				}
				note("failure: " + f.Message)
				return 0, nil
			},
		})
		q := rt.Queue(runtime.DefaultQueue)
		succeeds, err := q.Put(w.ctx, runtime.NewCall("multiply", 5, 3))
		if err != nil {
			t.Fatal(err)
		}
		success, failure := runtime.NewCall("success"), runtime.NewCall("failure")
		proxy1, err := succeeds.AddCallbacks(w.ctx, &success, &failure)
		if err != nil {
			t.Fatal(err)
		}
		fails, err := q.Put(w.ctx, runtime.NewCall("multiply", 5, nil))
		if err != nil {
			t.Fatal(err)
		}
		// Scenario 30: job.addCallbacks(failure=handle).addCallbacks(success)
		handled, err := fails.AddCallbacks(w.ctx, nil, &failure)
		if err != nil {
			t.Fatal(err)
		}
		chained, err := handled.AddCallbacks(w.ctx, &success, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		defer w.stop(rt)
		if n, _ := waitFor[int](t, w, succeeds); n != 15 {
			t.Fatalf("5*3 = %d", n)
		}
		waitFor[string](t, w, proxy1)
		waitFor[string](t, w, chained)
		if _, out := waitFor[int](t, w, fails); out.Failure == nil {
			t.Fatal("multiply(5, nil) did not fail")
		}
		mu.Lock()
		defer mu.Unlock()
		joined := strings.Join(ran, "|")
		if !strings.Contains(joined, "success! 15") || !strings.Contains(joined, "failure: unsupported operand") ||
			!strings.Contains(joined, "success! 0") || len(ran) != 3 {
			t.Fatalf("callbacks ran %q, want success! 15, the failure handler, then success! 0", ran)
		}
	})
}

// Scenario 45: a clean shutdown in the middle of a job leaves it to a handleInterrupt job; a
// restart runs the job again to 42, its callback runs, and one interruption is counted.
func TestScenario45ShutdownMidJob(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		started := make(chan struct{}, 1)
		var first atomic.Bool
		first.Store(true)
		got := make(chan string, 1)
		handlers := map[string]runtime.HandlerFunc{
			"work": func(ctx context.Context, _ *runtime.Call) (any, error) {
				if first.Swap(false) {
					started <- struct{}{}
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return 42, nil
			},
			"report": runtime.Func1(func(_ context.Context, r int) (any, error) {
				got <- fmt.Sprint("I got result ", r)
				return nil, nil
			}),
		}
		rt := w.runtime("s45", 3, handlers)
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("work"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := job.AddCallback(w.ctx, runtime.NewCall("report")); err != nil {
			t.Fatal(err)
		}
		w.start(rt)
		<-started
		w.stop(rt)
		if q := w.queued(); len(q) != 1 || q[0].Call.Handler != persistence.HandlerHandleInterrupt || q[0].Target != job.ID() {
			t.Fatalf("after the stop the queue holds %d jobs, want the job's handleInterrupt", len(q))
		}
		rt = w.runtime("s45", 3, handlers)
		w.start(rt)
		defer w.stop(rt)
		if n, _ := waitFor[int](t, w, job); n != 42 {
			t.Fatalf("result %d, want 42", n)
		}
		if m := <-got; m != "I got result 42" {
			t.Fatalf("callback: %q", m)
		}
		if c := w.record(job.ID()).Retry[persistence.CountInterruptions]; c != 1 {
			t.Fatalf("interruptions %d, want 1", c)
		}
	})
}

// Scenario 49: a dispatcher whose record was deactivated while it still runs (a sibling took
// it for dead) logs CRITICAL "not activated prior to ping", reactivates, and goes on working.
func TestScenario49ReactivatedWhileAlive(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		logs := &testlog.Recorder{}
		rt, err := runtime.New(runtime.Config{Redis: w.client, Prefix: w.prefix, UUID: "s49", Logger: slog.New(logs),
			PollInterval: 50 * time.Millisecond, PingInterval: 50 * time.Millisecond, PingDeathInterval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		rt.Handle("work", runtime.Func0(func(context.Context) (int, error) { return 42, nil }))
		w.start(rt)
		defer w.stop(rt)
		w.eventually("activated", func() bool {
			d, err := w.store.Dispatcher(w.ctx, runtime.DefaultQueue, "s49")
			return err == nil && d.IsActivated()
		})
		if _, err := w.store.Deactivate(w.ctx, runtime.DefaultQueue, "s49"); err != nil { // as a sibling would
			t.Fatal(err)
		}
		job, err := rt.Queue(runtime.DefaultQueue).Put(w.ctx, runtime.NewCall("work"))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := waitFor[int](t, w, job); n != 42 {
			t.Fatalf("result %d", n)
		}
		if _, ok := logs.Find(persistence.LevelCritical, "not activated prior to ping"); !ok {
			t.Fatal("no CRITICAL 'not activated prior to ping'")
		}
	})
}
