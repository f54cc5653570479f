package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/internal/testlog"
	"github.com/zasync/zasync/messages"
)

// sumActor answers a run with the sum of its call's integer arguments, and records the run.
func sumActor(runs chan<- *messages.RunJob) *actor.Props {
	return actor.PropsFromFunc(func(c actor.Context) {
		m, ok := c.Message().(*messages.RunJob)
		if !ok {
			return
		}
		runs <- m
		sum := 0
		for _, a := range m.Args {
			var n int
			if err := json.Unmarshal(a, &n); err != nil {
				c.Respond(&messages.JobReply{Err: invalidf("not a number: %s", a)})
				return
			}
			sum += n
		}
		c.Respond(&messages.JobReply{Value: sum})
	})
}

// An actor's reply is its job's result; the actor gets the job's ref, attempt and arguments;
// a reply sent later, from another goroutine, to the sender it kept, counts as well; and a
// raw JSON value is stored as it is.
func TestHandleActorResult(t *testing.T) {
	t.Parallel()
	runs := make(chan *messages.RunJob, 4)
	rt := startedRuntime(t, 2, func(rt *Runtime) {
		if err := rt.HandleActor("sum", sumActor(runs)); err != nil {
			t.Fatal(err)
		}
		later := actor.PropsFromFunc(func(c actor.Context) {
			if _, ok := c.Message().(*messages.RunJob); ok {
				sender, sys := c.Sender(), c.ActorSystem()
				go sys.Root.Send(sender, &messages.JobReply{Value: json.RawMessage(`{"later":true}`)})
			}
		})
		if err := rt.HandleActor("later", later); err != nil {
			t.Fatal(err)
		}
	})
	job := mustPut(t, rt, NewCall("sum", 40, 2))
	if n := waitInt(t, job); n != 42 {
		t.Fatalf("sum: %d, want 42", n)
	}
	m := <-runs
	if m.Ref != job.ref || m.Attempt != 1 || m.Handler != "sum" || len(m.Args) != 2 {
		t.Fatalf("the actor got %+v, want job %s, attempt 1, two arguments", m, job)
	}
	later := mustPut(t, rt, NewCall("later"))
	out, err := later.Wait(testCtx(t))
	if err != nil || out.Failure != nil || string(out.Result) != `{"later":true}` {
		t.Fatalf("later: %+v %v, want {\"later\":true}", out, err)
	}
}

// A reply with an error fails the job with it; a reply that is not a JobReply fails it with
// ErrInvalid; an actor that stops without replying fails its run.
func TestHandleActorFailure(t *testing.T) {
	t.Parallel()
	rt := startedRuntime(t, 2, func(rt *Runtime) {
		for name, receive := range map[string]actor.ReceiveFunc{
			"refuse": func(c actor.Context) {
				if _, ok := c.Message().(*messages.RunJob); ok {
					c.Respond(&messages.JobReply{Value: 1, Err: errors.New("no, thank you")})
				}
			},
			"mumble": func(c actor.Context) {
				if _, ok := c.Message().(*messages.RunJob); ok {
					c.Respond(42)
				}
			},
			"quit": func(c actor.Context) {
				if _, ok := c.Message().(*messages.RunJob); ok {
					c.Stop(c.Self())
				}
			},
		} {
			if err := rt.HandleActor(name, actor.PropsFromFunc(receive)); err != nil {
				t.Fatal(err)
			}
		}
	})
	for _, tc := range []struct{ handler, want string }{
		{"refuse", "no, thank you"},
		{"mumble", "replied with a int, not a *messages.JobReply"},
		{"quit", "stopped without replying"},
	} {
		out, err := mustPut(t, rt, NewCall(tc.handler)).Wait(testCtx(t))
		if err != nil || out.Failure == nil || !strings.Contains(out.Failure.Message, tc.want) {
			t.Errorf("%s: %+v %v, want a failure saying %q", tc.handler, out, err, tc.want)
		}
	}
}

// An actor that panics on its job, or whose props' producer panics, fails its run with a
// PanicError, logged; the handler's next runs go on.
func TestHandleActorPanic(t *testing.T) {
	t.Parallel()
	rec := &testlog.Recorder{}
	rt := newRuntime(t, Config{
		UUID: "d-panic", Logger: slog.New(rec),
		PollInterval: 100 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute,
	})
	if err := rt.HandleActor("fragile", actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*messages.RunJob); ok {
			if string(m.Args[0]) == `"boom"` {
				panic("boom")
			}
			c.Respond(&messages.JobReply{Value: 7})
		}
	})); err != nil {
		t.Fatal(err)
	}
	if err := rt.HandleActor("unborn", actor.PropsFromProducer(func() actor.Actor {
		panic("no actor today")
	})); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Stop(ctx)
	for _, tc := range []struct {
		call Call
		want string
	}{
		{NewCall("fragile", "boom"), "panic: boom"},
		{NewCall("unborn"), "panic: no actor today"},
	} {
		out, err := mustPut(t, rt, tc.call).Wait(ctx)
		if err != nil || out.Failure == nil || !IsKind(out.Failure, "PanicError") || out.Failure.Message != tc.want {
			t.Fatalf("%s: %+v %v, want a PanicError %q", tc.call, out, err, tc.want)
		}
	}
	if _, ok := rec.Find(slog.LevelError, "an actor panicked"); !ok {
		t.Error("the panic of a run's actor was not logged")
	}
	if n := waitInt(t, mustPut(t, rt, NewCall("fragile", "calm"))); n != 7 {
		t.Fatalf("the run after a panic: %d, want 7", n)
	}
}

// Runs of one name go at once, each in an actor of its own.
func TestHandleActorRunsConcurrently(t *testing.T) {
	t.Parallel()
	started := make(chan *actor.PID, 2)
	release := make(chan struct{})
	rt := startedRuntime(t, 2, func(rt *Runtime) {
		if err := rt.HandleActor("wait", actor.PropsFromFunc(func(c actor.Context) {
			if _, ok := c.Message().(*messages.RunJob); ok {
				started <- c.Self()
				<-release // a run's actor has its own mailbox: blocking it blocks this run only
				c.Respond(&messages.JobReply{Value: 1})
			}
		})); err != nil {
			t.Fatal(err)
		}
	})
	a, b := mustPut(t, rt, NewCall("wait")), mustPut(t, rt, NewCall("wait"))
	ctx := testCtx(t)
	var pids []string
	for range 2 {
		select {
		case pid := <-started:
			pids = append(pids, pid.Id)
		case <-ctx.Done():
			close(release)
			t.Fatalf("only %d of two runs started at once", len(pids))
		}
	}
	close(release)
	if pids[0] == pids[1] || !strings.Contains(pids[0], "/handler/wait/") {
		t.Errorf("the runs' actors: %v, want two below the handler's host", pids)
	}
	waitInt(t, a)
	waitInt(t, b)
}

// A clean stop cancels a run: its actor gets CancelJob and is stopped, the run ends at once
// (Stop does not wait out the grace period), and the job is handed back as interrupted.
func TestHandleActorCancelOnStop(t *testing.T) {
	t.Parallel()
	got := make(chan any, 8)
	rt := newRuntime(t, Config{
		UUID: "d-cancel", ShutdownGrace: time.Hour,
		PollInterval: 100 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute,
	})
	if err := rt.HandleActor("forever", actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *messages.RunJob, *messages.CancelJob, *actor.Stopped:
			got <- c.Message() // never replies
		}
	})); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	job := mustPut(t, rt, NewCall("forever"))
	if _, ok := await(t, ctx, got, "the run's job").(*messages.RunJob); !ok {
		t.Fatal("the actor's first message is not its job")
	}
	if err := rt.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v (a cancelled run must end at once, not after the grace period)", err)
	}
	if m, ok := await(t, ctx, got, "the run's cancellation").(*messages.CancelJob); !ok || m.Ref != job.ref || m.Attempt != 1 {
		t.Fatalf("after Stop the actor got %#v, want CancelJob for %s", m, job)
	}
	if _, ok := await(t, ctx, got, "the run's actor to stop").(*actor.Stopped); !ok {
		t.Fatal("the run's actor was not stopped after its cancellation")
	}
	rec := mustInfo(t, job)
	if rec.Status == StatusCompleted {
		t.Fatalf("the cancelled job completed: %+v", rec)
	}
	root, err := rt.actorRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := root.System().ProcessRegistry.GetLocal("zasync/handler/forever/" + job.ID() + "-1"); ok {
		t.Fatal("the run's actor is still registered after it stopped")
	}
}

// HandleActor's names follow Handle's rules and share its names; after Close, ErrClosed.
func TestHandleActorNames(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{UUID: "d-names"})
	props := actor.PropsFromFunc(func(actor.Context) {})
	if err := rt.Handle("taken", Func0(func(context.Context) (int, error) { return 0, nil })); err != nil {
		t.Fatal(err)
	}
	if err := rt.HandleActor("a/b", props); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		props *actor.Props
	}{
		{"", props}, {"zasync.mine", props}, {" padded", props}, {"nil-props", nil}, {"taken", props}, {"a/b", props},
	} {
		if err := rt.HandleActor(tc.name, tc.props); !errors.Is(err, ErrInvalid) {
			t.Errorf("HandleActor(%q): %v, want ErrInvalid", tc.name, err)
		}
	}
	if err := rt.Handle("a/b", Func0(func(context.Context) (int, error) { return 0, nil })); !errors.Is(err, ErrInvalid) {
		t.Errorf("Handle of a name HandleActor took: %v, want ErrInvalid", err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rt.HandleActor("late", props); !errors.Is(err, ErrClosed) {
		t.Errorf("HandleActor after Close: %v, want ErrClosed", err)
	}
}
