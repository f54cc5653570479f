package runtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

// startedRuntime returns a started runtime on the test's Redis with handlers registered by
// register, serving the default queue with one agent of size; it is stopped at the end.
func startedRuntime(t *testing.T, size int, register func(rt *Runtime)) *Runtime {
	t.Helper()
	rt := newRuntime(t, Config{
		UUID:         "d-" + t.Name(),
		Queues:       []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: size}}}},
		PollInterval: 100 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute,
	})
	register(rt)
	if err := rt.Start(testCtx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Stop(ctx); err != nil && !errors.Is(err, ErrNotStarted) {
			t.Errorf("Stop: %v", err)
		}
	})
	return rt
}

func waitInt(t *testing.T, j *Job) int {
	t.Helper()
	out, err := j.Wait(testCtx(t))
	if err != nil {
		t.Fatalf("Wait(%s): %v", j, err)
	}
	var n int
	if err := out.Decode(&n); err != nil {
		t.Fatalf("result of %s: %v", j, err)
	}
	return n
}

// Put, run, wait; a callback gets the result; a callback added once the job has completed
// runs too.
func TestRunJobsAndCallbacks(t *testing.T) {
	t.Parallel()
	got := make(chan int, 2)
	rt := startedRuntime(t, 3, func(rt *Runtime) {
		rt.Handle("add", Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil }))
		rt.Handle("report", Func1(func(_ context.Context, n int) (int, error) { got <- n; return n, nil }))
	})
	ctx := testCtx(t)
	j, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("add", 40, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.AddCallback(ctx, NewCall("report")); err != nil {
		t.Fatal(err)
	}
	if n := waitInt(t, j); n != 42 {
		t.Fatalf("result %d, want 42", n)
	}
	if n := <-got; n != 42 {
		t.Fatalf("callback got %d, want 42", n)
	}
	late, err := j.AddCallback(ctx, NewCall("report"))
	if err != nil {
		t.Fatal(err)
	}
	if n := waitInt(t, late); n != 42 || <-got != 42 {
		t.Fatalf("late callback result %d, want 42", n)
	}
}

// An agent of size 1 completes Serial(a, b, c) with a postprocess (the waiting composite
// does not hold the slot); composites nest; Parallel collects outcomes.
func TestRunComposites(t *testing.T) {
	t.Parallel()
	rt := startedRuntime(t, 1, func(rt *Runtime) {
		rt.Handle("n", Func1(func(_ context.Context, n int) (int, error) { return n, nil }))
		rt.Handle("sum", func(_ context.Context, c *Call) (any, error) {
			total := 0
			for i := range c.Args {
				var s SubJob
				if err := c.Arg(i, &s); err != nil {
					return nil, err
				}
				var n int
				if err := (&Outcome{Result: s.Result, Failure: s.Failure}).Decode(&n); err != nil {
					return nil, err
				}
				total += n
			}
			return total, nil
		})
	})
	q := rt.Queue(DefaultQueue)
	ctx := testCtx(t)
	serial, err := q.Put(ctx, Serial(NewCall("n", 1), NewCall("n", 2), NewCall("n", 3), Postprocess(NewCall("sum"))))
	if err != nil {
		t.Fatal(err)
	}
	if n := waitInt(t, serial); n != 6 {
		t.Fatalf("serial: %d, want 6", n)
	}
	nested, err := q.Put(ctx, Parallel(NewCall("n", 7), Serial(NewCall("n", 14), Postprocess(NewCall("sum"))), NewCall("n", 21), Postprocess(NewCall("sum"))))
	if err != nil {
		t.Fatal(err)
	}
	if n := waitInt(t, nested); n != 42 {
		t.Fatalf("nested parallel: %d, want 42", n)
	}
	if _, err := q.Put(ctx, Serial()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an empty composite: %v, want ErrInvalid", err)
	}
}

// Inside a handler, JobFrom gives the running job, and live annotations are visible to others
// while it runs (scenario 54).
func TestRunJobFromAndAnnotations(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 1)
	reply := make(chan struct{})
	rt := startedRuntime(t, 3, func(rt *Runtime) {
		rt.Handle("talk", func(ctx context.Context, _ *Call) (any, error) {
			j, ok := JobFrom(ctx)
			if !ok {
				return nil, errors.New("no job in the context")
			}
			if err := j.SetAnnotation(ctx, "hello", "world"); err != nil {
				return nil, err
			}
			<-reply
			var r string
			if _, err := j.Annotation(ctx, "reply", &r); err != nil {
				return nil, err
			}
			seen <- r
			return r, nil
		})
	})
	ctx := testCtx(t)
	j, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("talk"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var hello string
		if ok, _ := j.Annotation(ctx, "hello", &hello); ok && hello == "world" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the running job's annotation was not visible within 30s")
		}
		time.Sleep(2 * time.Millisecond) // polling a condition with a deadline
	}
	if err := j.SetAnnotation(ctx, "reply", "hi"); err != nil {
		t.Fatal(err)
	}
	close(reply)
	if r := <-seen; r != "hi" {
		t.Fatalf("the handler read %q, want hi", r)
	}
}
