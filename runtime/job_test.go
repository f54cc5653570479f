package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

func TestJobHandles(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	job := mustPut(t, rt, NewCall("f"))

	byRef, err := rt.JobByRef(job.String())
	if err != nil || byRef.Ref() != job.Ref() {
		t.Fatalf("JobByRef(%s) = %v, %v", job, byRef, err)
	}
	if st, err := byRef.Status(ctx); err != nil || st != StatusPending {
		t.Fatalf("Status = %s, %v", st, err)
	}
	for _, bad := range []string{"", "no-slash", "a b/id", "q/"} {
		if _, err := rt.JobByRef(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("JobByRef(%q): %v, want ErrInvalid", bad, err)
		}
	}
	missing := rt.Job(Ref{Queue: DefaultQueue, ID: "missing"})
	if _, err := missing.Info(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info of a missing job: %v, want ErrNotFound", err)
	}
	if _, err := missing.Status(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status of a missing job: %v, want ErrNotFound", err)
	}
	if _, err := missing.Wait(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("Wait for a missing job: %v, want ErrNotFound", err)
	}
}

// silentCompletions is a store whose completion notifications never arrive, as when they
// are lost: Wait must then find the completion by re-reading the job.
type silentCompletions struct {
	persistence.Store
}

func (silentCompletions) Completions(context.Context, string) (persistence.Subscription, error) {
	return &silentSub{c: make(chan string)}, nil
}

type silentSub struct{ c chan string }

func (s *silentSub) C() <-chan string { return s.c }
func (s *silentSub) Close() error     { return nil }

func TestWait(t *testing.T) {
	t.Parallel()
	failure := persistence.NewFailure(errors.New("boom"), "stack")
	tests := []struct {
		name string
		// notified: Wait learns of the completion from the notification (its re-reads are an
		// hour apart); otherwise notifications are lost and it re-reads every few ms.
		notified bool
		// before: the job completes before Wait is called.
		before  bool
		outcome persistence.Outcome
	}{
		{"result by notification", true, false, persistence.Outcome{Result: json.RawMessage(`{"sum":42}`)}},
		{"failure by notification", true, false, persistence.Outcome{Failure: failure}},
		{"result by re-read", false, false, persistence.Outcome{Result: json.RawMessage(`{"sum":42}`)}},
		{"already completed", true, true, persistence.Outcome{Result: json.RawMessage(`{"sum":42}`)}},
		{"already failed", true, true, persistence.Outcome{Failure: failure}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := newRuntime(t, Config{})
			ctx := testCtx(t)
			rt.waitRecheck = time.Hour
			if !tt.notified {
				rt.store = silentCompletions{rt.store}
				rt.waitRecheck = 5 * time.Millisecond
			}
			job := mustPut(t, rt, NewCall("add", 40, 2))

			subscribed := make(chan struct{})
			rt.onWaitSubscribed = func(ref persistence.Ref) {
				if ref != job.ref {
					t.Errorf("Wait subscribed for %s, want %s", ref, job)
				}
				close(subscribed)
			}
			done := make(chan error, 1)
			if tt.before {
				if err := runAsDispatcher(ctx, rt, job, tt.outcome); err != nil {
					t.Fatalf("completing the job: %v", err)
				}
				close(done)
			} else {
				go func() {
					defer close(done)
					select {
					case <-subscribed:
						done <- runAsDispatcher(ctx, rt, job, tt.outcome)
					case <-ctx.Done():
					}
				}()
			}

			out, err := job.Wait(ctx)
			if err := <-done; err != nil {
				t.Fatalf("completing the job: %v", err)
			}
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			select {
			case <-subscribed:
				if tt.before {
					t.Error("Wait waited for a job already completed")
				}
			default:
			}
			var got struct{ Sum int }
			err = out.Decode(&got)
			if tt.outcome.Failure != nil {
				var f *Failure
				if !errors.As(err, &f) || f.Message != "boom" || out.Failure == nil || out.Result != nil {
					t.Fatalf("Decode: %v (outcome %+v), want the failure", err, out)
				}
				return
			}
			if err != nil || got.Sum != 42 || string(out.Result) != `{"sum":42}` || out.Failure != nil {
				t.Fatalf("Decode = %+v, %v (outcome %+v)", got, err, out)
			}
			if st, err := job.Status(ctx); err != nil || st != StatusCompleted {
				t.Fatalf("Status = %s, %v", st, err)
			}
		})
	}
}

// Another job's completion does not end the wait.
func TestWaitIgnoresOtherJobs(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	rt.waitRecheck = time.Hour
	other := mustPut(t, rt, NewCall("other"))
	job := mustPut(t, rt, NewCall("mine"))

	subscribed := make(chan struct{})
	rt.onWaitSubscribed = func(persistence.Ref) { close(subscribed) }
	otherDone := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		defer close(done)
		select {
		case <-subscribed:
		case <-ctx.Done():
			return
		}
		if err := runAsDispatcher(ctx, rt, other, persistence.Outcome{Result: json.RawMessage(`"other"`)}); err != nil {
			done <- err
			return
		}
		// The other job's notification is published; Wait must still be waiting.
		if out, err := other.Wait(ctx); err != nil || string(out.Result) != `"other"` {
			done <- errors.Join(errors.New("waiting for the other job"), err)
			return
		}
		close(otherDone)
		done <- runAsDispatcher(ctx, rt, job, persistence.Outcome{Result: json.RawMessage(`"mine"`)})
	}()
	out, err := job.Wait(ctx)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err != nil || string(out.Result) != `"mine"` {
		t.Fatalf("Wait = %+v, %v", out, err)
	}
	select {
	case <-otherDone:
	default:
		t.Fatal("Wait returned before its own job completed")
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	rt.waitRecheck = time.Hour
	job := mustPut(t, rt, NewCall("never_run"))

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		rt.onWaitSubscribed = func(persistence.Ref) { cancel() }
		_, err := job.Wait(ctx)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), job.String()) {
			t.Fatalf("Wait: %v, want context.Canceled naming the job", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testCtx(t), time.Millisecond)
		defer cancel()
		rt.onWaitSubscribed = nil
		if _, err := job.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait: %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestOutcomeDecode(t *testing.T) {
	t.Parallel()
	var n int
	if err := (&Outcome{Result: json.RawMessage(`"x"`)}).Decode(&n); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("Decode of a string into an int: %v", err)
	}
	f := persistence.NewFailure(&persistence.TimeoutError{}, "")
	err := (&Outcome{Failure: failureFrom(f)}).Decode(&n)
	if !IsKind(err, "TimeoutError") {
		t.Errorf("Decode of a timed out job: %v, want a TimeoutError failure", err)
	}
}

func TestAddCallback(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	parent := mustPut(t, rt, NewCall("parent"))

	first, err := parent.AddCallback(ctx, NewCall("notify", "ops"))
	if err != nil {
		t.Fatalf("AddCallback: %v", err)
	}
	second, err := parent.AddCallback(ctx, NewCall("audit"), CallbackRetry(NeverRetry), CallbackFailureLevel(slog.LevelWarn))
	if err != nil {
		t.Fatalf("AddCallback with options: %v", err)
	}
	success := NewCall("on_success")
	pair, err := parent.AddCallbacks(ctx, &success, nil)
	if err != nil {
		t.Fatalf("AddCallbacks: %v", err)
	}
	failure := NewCall("on_failure", 1)
	both, err := parent.AddCallbacks(ctx, &success, &failure)
	if err != nil {
		t.Fatalf("AddCallbacks with both sides: %v", err)
	}

	prec := mustInfo(t, parent)
	if want := []string{first.ID(), second.ID(), pair.ID(), both.ID()}; !slices.Equal(prec.Callbacks, want) {
		t.Fatalf("parent's callbacks %v, want %v", prec.Callbacks, want)
	}
	if prec.Status != StatusPending {
		t.Fatalf("parent %s", prec.Status)
	}
	tests := []struct {
		name   string
		job    *Job
		call   string
		policy string
		level  slog.Level
		choice *CallbackChoice
	}{
		{"plain", first, `notify("ops")`, "RetryCommonForever", LevelCritical, nil},
		{"with options", second, `audit()`, "NeverRetry", slog.LevelWarn, nil},
		{"success side only", pair, "", "RetryCommonForever", LevelCritical, &CallbackChoice{Success: &Call{Handler: "on_success"}}},
		{"both sides", both, "", "RetryCommonForever", LevelCritical, &CallbackChoice{
			Success: &Call{Handler: "on_success"},
			Failure: &Call{Handler: "on_failure", Args: []json.RawMessage{json.RawMessage("1")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := mustInfo(t, tt.job)
			if rec.Status != StatusNew || rec.Parent != parent.ID() || rec.Queue != parent.Ref().Queue ||
				rec.RetryPolicy != tt.policy || rec.FailureLogLevel != tt.level {
				t.Errorf("record %+v", rec)
			}
			if tt.choice == nil {
				if rec.Call.String() != tt.call || rec.Choice != nil {
					t.Errorf("call %s, choice %+v; want %s", rec.Call.String(), rec.Choice, tt.call)
				}
				return
			}
			if rec.Choice == nil || callString(rec.Choice.Success) != callString(tt.choice.Success) ||
				callString(rec.Choice.Failure) != callString(tt.choice.Failure) {
				t.Errorf("choice %+v, want %+v", rec.Choice, tt.choice)
			}
		})
	}

	errTests := []struct {
		name string
		add  func() (*Job, error)
		want error
	}{
		{"bad call", func() (*Job, error) { return parent.AddCallback(ctx, NewCall("f", make(chan int))) }, ErrInvalid},
		{"bad side", func() (*Job, error) { bad := NewCall(""); return parent.AddCallbacks(ctx, nil, &bad) }, ErrInvalid},
		{"unregistered policy", func() (*Job, error) {
			return parent.AddCallback(ctx, NewCall("f"), CallbackRetry(customPolicy{NeverRetry, "Unknown"}))
		}, ErrInvalid},
		{"nil policy", func() (*Job, error) { return parent.AddCallback(ctx, NewCall("f"), CallbackRetry(nil)) }, ErrInvalid},
		{"missing parent", func() (*Job, error) {
			return rt.Job(Ref{Queue: DefaultQueue, ID: "missing"}).AddCallback(ctx, NewCall("f"))
		}, ErrNotFound},
	}
	for _, tt := range errTests {
		if job, err := tt.add(); !errors.Is(err, tt.want) || job != nil {
			t.Errorf("%s: %v, %v; want %v", tt.name, job, err, tt.want)
		}
	}
	if prec := mustInfo(t, parent); len(prec.Callbacks) != 4 {
		t.Errorf("failed adds changed the parent's callbacks: %v", prec.Callbacks)
	}
}

func callString(c *Call) string {
	if c == nil {
		return "<nil>"
	}
	return c.String()
}

// A callback added to a completed parent is queued at once in the parent's queue, where a
// dispatcher runs it as the parent's callback (see TestCallbackAddedToCompletedJobRuns).
func TestAddCallbackToCompletedJob(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	parent := mustPut(t, rt, NewCall("parent"))
	if err := runAsDispatcher(ctx, rt, parent, persistence.Outcome{Result: json.RawMessage(`7`)}); err != nil {
		t.Fatal(err)
	}
	cb, err := parent.AddCallback(ctx, NewCall("late"))
	if err != nil {
		t.Fatalf("AddCallback: %v", err)
	}
	if rec := mustInfo(t, cb); rec.Parent != parent.ID() || rec.Status != StatusPending {
		t.Fatalf("callback record %+v, want PENDING with its parent", rec)
	}
	if pending, _ := rt.store.Pending(ctx, parent.Ref().Queue, 0, 10); !slices.Contains(pending, cb.ID()) {
		t.Fatalf("queue %v, want the callback in it", pending)
	}
}

func TestJobFrom(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	job := mustPut(t, rt, NewCall("running"))
	rec, err := job.info(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if _, ok := JobFrom(ctx); ok {
		t.Fatal("JobFrom found a job outside a handler")
	}
	if _, ok := JobFrom(actors.WithRunning(ctx, &actors.Running{})); ok {
		t.Fatal("JobFrom found a job in a Running without one")
	}

	// Made by actors.WithRunning alone: a detached runtime over the running job's store.
	running := actors.WithRunning(ctx, &actors.Running{Job: rec, Store: rt.store})
	got, ok := JobFrom(running)
	if !ok || got.Ref() != job.Ref() {
		t.Fatalf("JobFrom = %v, %v; want %s", got, ok, job)
	}
	if st, err := got.Status(ctx); err != nil || st != StatusPending {
		t.Fatalf("Status through the detached job = %s, %v", st, err)
	}
	if _, err := got.Queue().Put(ctx, NewCall("next")); err != nil {
		t.Fatalf("Put through the detached job's queue: %v", err)
	}
	// Waiting through it subscribes on its own: nothing runs the job, so the wait ends with
	// its context.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := got.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait through the detached job: %v, want the context's deadline", err)
	}

	// Inside a handler of rt: the job belongs to rt.
	seen := make(chan *Job, 1)
	if err := rt.Handle("running", func(ctx context.Context, _ *Call) (any, error) {
		j, ok := JobFrom(ctx)
		if !ok {
			return nil, errors.New("no job in the handler's context")
		}
		seen <- j
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	h, _ := rt.Handler("running")
	if _, err := h(running, &rec.Call); err != nil {
		t.Fatalf("handler: %v", err)
	}
	if j := <-seen; j.rt != rt || j.Ref() != job.Ref() {
		t.Fatalf("JobFrom in a handler = %v (runtime %p), want %s of runtime %p", j, j.rt, job, rt)
	}
}

func TestAnnotations(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	job := mustPut(t, rt, NewCall("long"))

	type progress struct {
		Done, Total int
	}
	var p progress
	if ok, err := job.Annotation(ctx, "progress", &p); ok || err != nil {
		t.Fatalf("Annotation before any set = %v, %v", ok, err)
	}
	for _, want := range []progress{{1, 10}, {9, 10}} {
		if err := job.SetAnnotation(ctx, "progress", want); err != nil {
			t.Fatalf("SetAnnotation: %v", err)
		}
		// Read through another handle, as another process would.
		other, _ := rt.JobByRef(job.String())
		if ok, err := other.Annotation(ctx, "progress", &p); !ok || err != nil || p != want {
			t.Fatalf("Annotation = %+v, %v, %v; want %+v", p, ok, err, want)
		}
	}
	var s string
	if ok, err := job.Annotation(ctx, "progress", &s); !ok || !errors.Is(err, ErrInvalid) {
		t.Errorf("Annotation into the wrong type = %v, %v; want ErrInvalid", ok, err)
	}
	if err := job.SetAnnotation(ctx, "bad", make(chan int)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetAnnotation of a channel: %v, want ErrInvalid", err)
	}
	if err := job.SetAnnotation(ctx, "", 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetAnnotation with no name: %v, want ErrInvalid", err)
	}
	missing := rt.Job(Ref{Queue: DefaultQueue, ID: "missing"})
	if err := missing.SetAnnotation(ctx, "progress", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetAnnotation of a missing job: %v, want ErrNotFound", err)
	}
	if _, err := missing.Annotation(ctx, "progress", &p); !errors.Is(err, ErrNotFound) {
		t.Errorf("Annotation of a missing job: %v, want ErrNotFound", err)
	}
}

func TestNodeOptions(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.DiscardHandler)
	filtered := make(chan string, 1)
	filter := func(j *JobRecord) bool { filtered <- j.ID; return true }
	rt := newRuntime(t, Config{
		UUID:              "node-1",
		Logger:            logger,
		PollInterval:      100 * time.Millisecond,
		PingInterval:      time.Second,
		PingDeathInterval: 3 * time.Second,
		ShutdownGrace:     2 * time.Second,
		RetryPolicies:     []RetryPolicy{customPolicy{NeverRetry, "Custom"}},
		Queues: []QueueConfig{
			{Name: "a", Agents: []AgentConfig{{Name: "x", Size: 2, Filter: filter}, {Name: "y"}}},
			{Name: "b"},
		},
	})
	if err := rt.Handle("add", Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil })); err != nil {
		t.Fatal(err)
	}
	o := rt.nodeOptions(nil)

	if o.Store != rt.store || o.Policies != rt.policies || o.Logger != logger || o.UUID != "node-1" ||
		o.PollInterval != 100*time.Millisecond || o.PingInterval != time.Second ||
		o.PingDeathInterval != 3*time.Second || o.ShutdownGrace != 2*time.Second {
		t.Fatalf("options %+v", o)
	}
	if _, err := o.Policies.Lookup("Custom"); err != nil {
		t.Errorf("the user's policy is not in the options: %v", err)
	}
	if h, ok := o.Handlers.Handler("add"); !ok {
		t.Error("the registered handler is not in the options")
	} else if got, err := h(t.Context(), &persistence.Call{Handler: "add", Args: []json.RawMessage{json.RawMessage("1"), json.RawMessage("2")}}); err != nil || got != 3 {
		t.Errorf("add through the options = %v, %v", got, err)
	}
	// A handler registered after the options were built is found too: the runtime is the
	// registry, not a copy of it.
	if err := rt.Handle("later", Func0(func(context.Context) (int, error) { return 0, nil })); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.Handlers.Handler("later"); !ok {
		t.Error("a handler registered later is not found")
	}

	want := []struct {
		queue  string
		agents []actors.AgentSpec
	}{
		{"a", []actors.AgentSpec{{Name: "x", Size: 2}, {Name: "y", Size: 3}}},
		{"b", []actors.AgentSpec{{Name: "main", Size: 3}}},
	}
	if len(o.Queues) != len(want) {
		t.Fatalf("queues %+v", o.Queues)
	}
	for i, w := range want {
		q := o.Queues[i]
		if q.Name != w.queue || len(q.Agents) != len(w.agents) {
			t.Fatalf("queue %d: %+v, want %s with %+v", i, q, w.queue, w.agents)
		}
		for j, a := range w.agents {
			if q.Agents[j].Name != a.Name || q.Agents[j].Size != a.Size {
				t.Errorf("queue %s agent %d: %+v, want %+v", w.queue, j, q.Agents[j], a)
			}
		}
	}
	if o.Queues[0].Agents[1].Filter != nil || o.Queues[1].Agents[0].Filter != nil {
		t.Error("an agent without a filter got one")
	}
	if f := o.Queues[0].Agents[0].Filter; f == nil || !f(&persistence.Job{Ref: persistence.Ref{ID: "probe"}}) || <-filtered != "probe" {
		t.Error("the agent's filter is not the configured one")
	}
}

// A handler reports progress with Annotate, fenced to its run; any handle reads it. Outside a
// handler, and with a value JSON cannot hold, Annotate refuses.
func TestAnnotateFromAHandler(t *testing.T) {
	t.Parallel()
	type progress struct{ Done, Of int }
	rt := startedRuntime(t, 1, func(rt *Runtime) {
		rt.Handle("work", Func0(func(ctx context.Context) (int, error) {
			for i := range 4 {
				if err := Annotate(ctx, "progress", progress{i + 1, 4}); err != nil {
					return 0, err
				}
			}
			if err := Annotate(ctx, "bad", make(chan int)); !errors.Is(err, ErrInvalid) {
				return 0, fmt.Errorf("Annotate of a channel: %v, want ErrInvalid", err)
			}
			return 4, nil
		}))
	})
	ctx := testCtx(t)
	j, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("work"))
	if err != nil {
		t.Fatal(err)
	}
	if n := waitInt(t, j); n != 4 {
		t.Fatalf("result %d, want 4", n)
	}
	var p progress
	if ok, err := j.Annotation(ctx, "progress", &p); !ok || err != nil || p != (progress{4, 4}) {
		t.Fatalf("Annotation = %+v, %v, %v; want the last progress, {4 4}", p, ok, err)
	}
	if err := Annotate(ctx, "progress", 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Annotate outside a handler: %v, want ErrInvalid", err)
	}
}
