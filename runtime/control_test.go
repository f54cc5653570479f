package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// wantCancelled waits for j and checks that it failed as cancelled.
func wantCancelled(t *testing.T, j *Job) {
	t.Helper()
	out, err := j.Wait(testCtx(t))
	if err != nil {
		t.Fatalf("Wait(%s): %v", j, err)
	}
	if err := out.Decode(new(any)); !errors.Is(err, ErrCancelled) {
		t.Fatalf("outcome of %s: %v, want a failure matching ErrCancelled", j, err)
	}
}

// A pending job and a scheduled one are cancelled: their waiters get ErrCancelled, their
// callbacks run with the failure, and a second cancel is refused as a bad status.
func TestCancelWaitingJobs(t *testing.T) {
	t.Parallel()
	got := make(chan string, 2)
	rt := startedRuntime(t, 2, func(rt *Runtime) {
		rt.Handle("never", func(context.Context, *Call) (any, error) { return nil, errors.New("must not run") })
		rt.Handle("after", func(_ context.Context, c *Call) (any, error) {
			var f Failure
			if err := c.Arg(0, &f); err != nil {
				return nil, err
			}
			got <- f.Type
			return nil, nil
		})
	})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	if _, err := rt.PauseQueue(ctx, DefaultQueue); err != nil { // so that nothing runs before the cancel
		t.Fatal(err)
	}
	due, err := q.Put(ctx, NewCall("never"))
	if err != nil {
		t.Fatal(err)
	}
	later, err := q.Put(ctx, NewCall("never"), BeginIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []*Job{due, later} {
		if _, err := j.AddCallback(ctx, NewCall("after")); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range []*Job{due, later} {
		r, err := rt.Cancel(ctx, j.Ref())
		if err != nil || r.Was != StatusPending {
			t.Fatalf("Cancel(%s): %+v %v, want cancelled from pending", j, r, err)
		}
	}
	if _, err := rt.ResumeQueue(ctx, DefaultQueue); err != nil { // for the callbacks to run
		t.Fatal(err)
	}
	for _, j := range []*Job{due, later} {
		wantCancelled(t, j)
		if kind := await(t, ctx, got, "the callback"); kind != "CancelledError" {
			t.Fatalf("the callback got a failure of kind %q, want CancelledError", kind)
		}
		var bad *BadStatusError
		if _, err := j.Cancel(ctx); !errors.As(err, &bad) || bad.Status != StatusCompleted {
			t.Fatalf("second Cancel(%s): %v, want a bad status (completed)", j, err)
		}
	}
}

// A running job is cancelled from another runtime (another process): its handler's context
// ends with ErrCancelled as the cause, the job completes as cancelled, nothing the run does
// later is stored, and its slot runs the next job.
func TestCancelRunningJobFromAnotherProcess(t *testing.T) {
	t.Parallel()
	rdb, prefix := sharedRedis(t, "cancel")
	started, stopped := make(chan struct{}), make(chan error, 1)
	server := newRuntime(t, Config{Redis: rdb, Prefix: prefix, UUID: "server",
		Queues:       []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 1}}}},
		PollInterval: 50 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute})
	server.Handle("block", func(ctx context.Context, _ *Call) (any, error) {
		close(started)
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return "too late", nil // refused: the job is cancelled
	})
	server.Handle("next", func(context.Context, *Call) (any, error) { return 1, nil })
	ctx := testCtx(t)
	if err := server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Stop(context.Background()) })
	operator := newRuntime(t, Config{Redis: rdb, Prefix: prefix, UUID: "operator"})

	j, err := operator.Queue(DefaultQueue).Put(ctx, NewCall("block"))
	if err != nil {
		t.Fatal(err)
	}
	await(t, ctx, started, "the handler to start")
	r, err := operator.Cancel(ctx, j.Ref())
	if err != nil || r.Was != StatusActive {
		t.Fatalf("Cancel: %+v %v, want cancelled while active", r, err)
	}
	if cause := await(t, ctx, stopped, "the handler's context to end"); !errors.Is(cause, ErrCancelled) {
		t.Fatalf("the handler's context ended with %v, want ErrCancelled", cause)
	}
	wantCancelled(t, j)
	next, err := operator.Queue(DefaultQueue).Put(ctx, NewCall("next"))
	if err != nil {
		t.Fatal(err)
	}
	if n := waitInt(t, next); n != 1 {
		t.Fatalf("the next job: %d", n)
	}
	rec := mustInfo(t, j)
	if rec.Status != StatusCompleted || !errors.Is(rec.Failure, ErrCancelled) || rec.Result != nil {
		t.Fatalf("the cancelled job: %s, failure %v, result %s; want completed, cancelled, no result", rec.Status, rec.Failure, rec.Result)
	}
}

// A serial composite is cancelled while its first part runs: the part's handler is told, the
// second part and the postprocess never run, and the composite and its parts end cancelled.
func TestCancelComposite(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	ran := make(chan string, 4)
	rt := startedRuntime(t, 3, func(rt *Runtime) {
		rt.Handle("block", func(ctx context.Context, _ *Call) (any, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		rt.Handle("second", func(context.Context, *Call) (any, error) { ran <- "second"; return 2, nil })
		rt.Handle("post", func(context.Context, *Call) (any, error) { ran <- "post"; return 3, nil })
	})
	ctx := testCtx(t)
	comp, err := rt.Queue(DefaultQueue).Put(ctx, Serial(NewCall("block"), NewCall("second"), Postprocess(NewCall("post"))))
	if err != nil {
		t.Fatal(err)
	}
	await(t, ctx, started, "the first part")
	r, err := comp.Cancel(ctx)
	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if len(r.Parts) != 3 { // the postprocess and both parts
		t.Fatalf("cancelled parts %v, want the postprocess and two sub-jobs", r.Parts)
	}
	wantCancelled(t, comp)
	for _, ref := range r.Parts {
		wantCancelled(t, rt.Job(ref))
	}
	// The first part's run has ended: its slot is free (the agent reports no run), and
	// nothing else ran.
	eventually(t, "the cancelled run to end", func() bool { return len(rt.ActiveJobIDs("", "")) == 0 })
	select {
	case what := <-ran:
		t.Fatalf("%s ran after the cancel", what)
	default:
	}
}

// Bad input is refused with a clear error and changes nothing.
func TestCancelAndPauseBadInput(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{UUID: "bad-input"})
	ctx := testCtx(t)
	j, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  Ref
		want error
	}{
		{Ref{Queue: DefaultQueue, ID: "nope"}, ErrNotFound},
		{Ref{Queue: "a b", ID: j.ID()}, ErrInvalid},
		{Ref{Queue: DefaultQueue}, ErrInvalid},
	} {
		if _, err := rt.Cancel(ctx, tc.ref); !errors.Is(err, tc.want) {
			t.Errorf("Cancel(%+v): %v, want %v", tc.ref, err, tc.want)
		}
	}
	if _, err := rt.PauseQueue(ctx, "never-used"); !errors.Is(err, ErrNotFound) {
		t.Errorf("pause of an unknown queue: %v, want ErrNotFound", err)
	}
	if _, err := rt.PauseQueue(ctx, "no/slash"); !errors.Is(err, ErrInvalid) {
		t.Errorf("pause of a bad name: %v, want ErrInvalid", err)
	}
	if st := mustInfo(t, j).Status; st != StatusPending {
		t.Fatalf("after bad input the job is %s, want pending", st)
	}
	if paused, err := rt.QueuePaused(ctx, DefaultQueue); err != nil || paused {
		t.Fatalf("QueuePaused: %v %v, want not paused", paused, err)
	}
}

// A paused queue keeps taking puts while two processes serve it and neither claims; once
// resumed, both run its jobs.
func TestPauseWithSeveralDispatchers(t *testing.T) {
	t.Parallel()
	rdb, prefix := sharedRedis(t, "pause")
	ctx := testCtx(t)
	ran := make(chan string, 20)
	var rts []*Runtime
	for i := range 2 {
		rt := newRuntime(t, Config{Redis: rdb, Prefix: prefix, UUID: fmt.Sprintf("p%d", i),
			Queues:       []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 2}}}},
			PollInterval: 20 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute})
		rt.Handle("work", func(context.Context, *Call) (any, error) { ran <- "work"; return nil, nil })
		if err := rt.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Stop(context.Background()) })
		rts = append(rts, rt)
	}
	if changed, err := rts[0].PauseQueue(ctx, DefaultQueue); err != nil || !changed {
		t.Fatalf("PauseQueue: %v %v", changed, err)
	}
	if changed, err := rts[1].PauseQueue(ctx, DefaultQueue); err != nil || changed {
		t.Fatalf("second PauseQueue: %v %v, want unchanged", changed, err)
	}
	var jobs []*Job
	for range 6 {
		j, err := rts[1].Queue(DefaultQueue).Put(ctx, NewCall("work"))
		if err != nil {
			t.Fatalf("a put to a paused queue: %v", err)
		}
		jobs = append(jobs, j)
	}
	// Every dispatcher has polled (and been woken by the puts) since: nothing was claimed.
	waitPolls(t, rts[0], 3)
	waitPolls(t, rts[1], 3)
	st, err := rts[0].Queue(DefaultQueue).Stats(ctx)
	if err != nil || st.Due != 6 || st.Held != 0 || !st.Paused {
		t.Fatalf("stats of the paused queue: %+v %v, want 6 due, none held, paused", st, err)
	}
	if len(ran) != 0 {
		t.Fatalf("%d jobs ran in a paused queue", len(ran))
	}
	if changed, err := rts[0].ResumeQueue(ctx, DefaultQueue); err != nil || !changed {
		t.Fatalf("ResumeQueue: %v %v", changed, err)
	}
	for _, j := range jobs {
		if _, err := j.Wait(ctx); err != nil {
			t.Fatalf("Wait(%s) after resume: %v", j, err)
		}
	}
}

// A failed job is retried: it runs again under the same id, keeps its first run in its
// attempts, and its callback runs again with the new outcome. A callback that failed is
// retried on its own, and gets its parent's outcome again.
func TestRetryFailedJobAndCallback(t *testing.T) {
	t.Parallel()
	runs := make(map[string]int)
	var mu sync.Mutex
	seen := make(chan string, 8)
	rt := startedRuntime(t, 2, func(rt *Runtime) {
		rt.Handle("flaky", func(_ context.Context, c *Call) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			runs["flaky"]++
			if runs["flaky"] == 1 {
				return nil, errors.New("first run fails")
			}
			return runs["flaky"], nil
		})
		rt.Handle("report", func(_ context.Context, c *Call) (any, error) {
			mu.Lock()
			runs["report"]++
			n := runs["report"]
			mu.Unlock()
			var v any
			c.Arg(0, &v)
			seen <- fmt.Sprint(v)
			if n == 2 {
				return nil, errors.New("the report fails once")
			}
			return n, nil
		})
	})
	ctx := testCtx(t)
	j, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("flaky"), Retry(NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := j.AddCallback(ctx, NewCall("report"), CallbackRetry(NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	out, err := j.Wait(ctx)
	if err != nil || out.Failure == nil {
		t.Fatalf("first run: %+v %v, want a failure", out, err)
	}
	await(t, ctx, seen, "the callback of the first run")
	if _, err := cb.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	r, err := j.Retry(ctx)
	if err != nil || r.Attempts != 1 {
		t.Fatalf("Retry: %+v %v, want one earlier attempt kept", r, err)
	}
	if n := waitInt(t, j); n != 2 {
		t.Fatalf("second run returned %d, want 2", n)
	}
	if got := await(t, ctx, seen, "the callback of the second run"); got != "2" {
		t.Fatalf("the callback got %s, want the second run's result", got)
	}
	rec := mustInfo(t, j)
	if len(rec.Attempts) != 1 || rec.Attempts[0].Failure == nil || rec.Attempts[0].Failure.Message != "first run fails" {
		t.Fatalf("attempts %+v, want the first run's failure", rec.Attempts)
	}
	// The callback failed on the second run: retried alone, it runs with the parent's result.
	out, err = cb.Wait(ctx)
	if err != nil || out.Failure == nil {
		t.Fatalf("the callback's second run: %+v %v, want its failure", out, err)
	}
	if _, err := cb.Retry(ctx); err != nil {
		t.Fatalf("Retry of the callback: %v", err)
	}
	if got := await(t, ctx, seen, "the callback retried"); got != "2" {
		t.Fatalf("the retried callback got %s, want its parent's result", got)
	}
	if n := waitInt(t, cb); n != 3 {
		t.Fatalf("the retried callback returned %d, want 3", n)
	}
	// A job that succeeded is not retried.
	var bad *BadStatusError
	if _, err := j.Retry(ctx); !errors.Is(err, ErrBadStatus) || errors.As(err, &bad) {
		t.Fatalf("Retry of a job that succeeded: %v, want ErrBadStatus", err)
	}
}

// A waiting job is deleted with its callback; a running job, and a callback of a job that
// has not completed, are refused.
func TestDeleteJobs(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	rt := startedRuntime(t, 1, func(rt *Runtime) {
		rt.Handle("block", func(ctx context.Context, _ *Call) (any, error) {
			close(started)
			<-release
			return nil, nil
		})
	})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	running, err := q.Put(ctx, NewCall("block"))
	if err != nil {
		t.Fatal(err)
	}
	await(t, ctx, started, "the blocking job")
	waiting, err := q.Put(ctx, NewCall("later"), BeginIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := waiting.AddCallback(ctx, NewCall("report"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Delete(ctx); !errors.Is(err, ErrBadStatus) {
		t.Fatalf("Delete of a callback of a waiting job: %v, want ErrBadStatus", err)
	}
	if _, err := running.Delete(ctx); !errors.Is(err, ErrBadStatus) {
		t.Fatalf("Delete of a running job: %v, want ErrBadStatus", err)
	}
	r, err := waiting.Delete(ctx)
	if err != nil || r.Was != StatusPending || len(r.Parts) != 1 || r.Parts[0] != cb.Ref() {
		t.Fatalf("Delete: %+v %v, want the job and its callback", r, err)
	}
	for _, j := range []*Job{waiting, cb} {
		if _, err := j.Info(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Info(%s) after Delete: %v, want ErrNotFound", j, err)
		}
	}
	if _, err := rt.Delete(ctx, waiting.Ref()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	close(release)
	if _, err := running.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := running.Delete(ctx); err != nil || r.Was != StatusCompleted {
		t.Fatalf("Delete of the completed job: %+v %v", r, err)
	}
}

// A serial composite whose second part fails is retried: that part and the postprocess run
// again (the postprocess with the parts' new outcomes, not the old ones as well), the first
// part keeps its result, and the composite succeeds. A cancelled composite retried runs its
// cancelled parts again.
func TestRetryComposite(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	runs := map[string]int{}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		runs[name]++
		return runs[name]
	}
	gate := make(chan struct{})
	rt := startedRuntime(t, 4, func(rt *Runtime) {
		rt.Handle("a", func(context.Context, *Call) (any, error) { return count("a"), nil })
		rt.Handle("b", func(ctx context.Context, _ *Call) (any, error) {
			if a, _ := Attempt(ctx); a == 1 {
				count("b")
				return nil, errors.New("b fails at first")
			}
			return count("b") * 10, nil
		})
		rt.Handle("wait", func(ctx context.Context, _ *Call) (any, error) {
			if count("wait") == 1 {
				<-ctx.Done() // the first run is cancelled
				return nil, ctx.Err()
			}
			<-gate
			return 5, nil
		})
		rt.Handle("post", func(_ context.Context, c *Call) (any, error) {
			count("post")
			total := 0
			for i := range c.Args {
				var sub SubJob
				if err := c.Arg(i, &sub); err != nil {
					return nil, err
				}
				if sub.Failure != nil {
					return nil, fmt.Errorf("part %s failed: %w", sub.ID, sub.Failure)
				}
				var n int
				json.Unmarshal(sub.Result, &n)
				total += n
			}
			return fmt.Sprintf("%d parts, total %d", len(c.Args), total), nil
		})
	})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	comp, err := q.Put(ctx, Serial(NewCall("a"), NewCall("b"), Postprocess(NewCall("post"))), Retry(NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	out, err := comp.Wait(ctx)
	if err != nil || out.Failure == nil {
		t.Fatalf("first run of the composite: %+v %v, want the postprocess's failure", out, err)
	}
	if _, err := comp.Retry(ctx); err != nil {
		t.Fatalf("Retry of the composite: %v", err)
	}
	out, err = comp.Wait(ctx)
	var s string
	if err != nil || out.Decode(&s) != nil || s != "2 parts, total 21" {
		t.Fatalf("the retried composite: %+v %v (%q), want 2 parts, total 21 (a: 1, b: 20)", out, err, s)
	}
	mu.Lock()
	if runs["a"] != 1 || runs["b"] != 2 || runs["post"] != 2 {
		t.Errorf("runs %v, want a once, b and the postprocess twice", runs)
	}
	mu.Unlock()
	if rec := mustInfo(t, comp); len(rec.Attempts) != 1 || rec.Attempts[0].Failure == nil {
		t.Fatalf("the composite's attempts: %+v", rec.Attempts)
	}

	// Cancelled while its part runs, then retried: the part runs again.
	par, err := q.Put(ctx, Parallel(NewCall("wait"), NewCall("a"), Postprocess(NewCall("post"))), Retry(NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the wait part to run", func() bool { mu.Lock(); defer mu.Unlock(); return runs["wait"] == 1 })
	if _, err := par.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	wantCancelled(t, par)
	// (Each cancelled part completes through a resumeCallbacks job of its own: Retry waits
	// for those.)
	if _, err := par.Retry(ctx); err != nil {
		t.Fatalf("Retry of the cancelled composite: %v", err)
	}
	close(gate)
	out, err = par.Wait(ctx)
	if err != nil || out.Decode(&s) != nil || s != "2 parts, total 7" {
		t.Fatalf("the retried parallel: %+v %v (%q), want 2 parts, total 7 (wait: 5, a: 2)", out, err, s)
	}
}

// The log of dispatcher events says, newest first, that a process started and stopped, and
// reads across queues by glob; a bad limit or glob is refused. The kinds are the store's.
func TestDispatcherEvents(t *testing.T) {
	t.Parallel()
	rdb, prefix := sharedRedis(t, "events")
	ctx := testCtx(t)
	rt := newRuntime(t, Config{Redis: rdb, Prefix: prefix, UUID: "ev1",
		Queues:       []QueueConfig{{Name: "a", Agents: []AgentConfig{{Name: "main", Size: 1}}}, {Name: "b", Agents: []AgentConfig{{Name: "main", Size: 1}}}},
		PollInterval: 20 * time.Millisecond})
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dispatcher activated in both queues", func() bool {
		ds, err := rt.Dispatchers(ctx, "")
		return err == nil && len(ds) == 2 && !ds[0].Stopped && !ds[1].Stopped
	})
	if err := rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := rt.DispatcherEvents(ctx, "", 10)
	if err != nil || len(evs) != 4 {
		t.Fatalf("events: %+v %v, want a start and a stop in each of two queues", evs, err)
	}
	for i, e := range evs {
		want := EventStopped
		if i >= 2 {
			want = EventActivated
		}
		if e.Kind != want || e.Dispatcher != "ev1" || (i > 0 && e.At.After(evs[i-1].At)) {
			t.Fatalf("event %d of %+v: want %s by ev1, newest first", i, evs, want)
		}
	}
	if evs, err := rt.DispatcherEvents(ctx, "b", 1); err != nil || len(evs) != 1 || evs[0].Queue != "b" || evs[0].Kind != EventStopped {
		t.Fatalf("queue b's newest event: %+v %v", evs, err)
	}
	for _, bad := range []struct {
		glob  string
		limit int
	}{{"[", 1}, {"", 0}, {"", MaxDispatcherEvents + 1}} {
		if _, err := rt.DispatcherEvents(ctx, bad.glob, bad.limit); !errors.Is(err, ErrInvalid) {
			t.Fatalf("DispatcherEvents(%q, %d): %v, want ErrInvalid", bad.glob, bad.limit, err)
		}
	}
	for k, p := range map[DispatcherEventKind]persistence.DispatcherEventKind{EventActivated: persistence.EventActivated,
		EventStopped: persistence.EventStopped, EventFoundDead: persistence.EventFoundDead, EventCameBack: persistence.EventCameBack} {
		if string(k) != string(p) {
			t.Fatalf("kind %s is %s in the store", k, p)
		}
	}
}
