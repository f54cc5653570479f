package runtime

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/actors"
)

// programSystem is a program's own actor system with one actor of its own, which answers
// "ping" with "pong"; both are stopped when the test ends.
func programSystem(t *testing.T) (*actor.ActorSystem, *actor.PID) {
	t.Helper()
	sys := actors.NewSystem(nil)
	pid, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if c.Message() == "ping" {
			c.Respond("pong")
		}
	}), "program")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sys.Root.PoisonFuture(pid).Wait()
		sys.Shutdown()
	})
	return sys, pid
}

func TestRuntimeInProgramActorSystem(t *testing.T) {
	sys, program := programSystem(t)
	ctx := testCtx(t)
	rt := newRuntime(t, Config{ActorSystem: sys, UUID: "program-dispatcher", PollInterval: 20 * time.Millisecond})
	if err := rt.Handle("echo", Func1(func(_ context.Context, s string) (string, error) {
		return s, nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// zasync's tree lives under its root in the program's system.
	if _, ok := sys.ProcessRegistry.GetLocal("zasync"); !ok {
		t.Fatal("no actor named zasync in the program's actor system")
	}
	if _, ok := sys.ProcessRegistry.GetLocal("zasync/dispatcher/program-dispatcher"); !ok {
		t.Fatalf("no dispatcher below zasync's root")
	}
	job, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("echo", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := sys.ProcessRegistry.GetLocal("zasync"); ok {
		t.Fatal("zasync's root still runs after Close")
	}
	// The program's system and its actors keep running.
	res, err := sys.Root.RequestFuture(program, "ping", 5*time.Second).Result()
	if err != nil || res != "pong" {
		t.Fatalf("the program's actor after Close: %v, %v", res, err)
	}
}

func TestTwoRuntimesInOneActorSystemNeedTwoNames(t *testing.T) {
	sys, _ := programSystem(t)
	ctx := testCtx(t)
	a := newRuntime(t, Config{ActorSystem: sys, UUID: "a-dispatcher"})
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b := newRuntime(t, Config{ActorSystem: sys, UUID: "b-dispatcher"})
	err := b.Start(ctx)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("second runtime with the same ActorName: %v, want ErrInvalid", err)
	}
	c := newRuntime(t, Config{ActorSystem: sys, UUID: "c-dispatcher", ActorName: "zasync-c"})
	if err := c.Start(ctx); err != nil {
		t.Fatalf("second runtime with its own ActorName: %v", err)
	}
}

func TestActorNameIsChecked(t *testing.T) {
	if _, err := New(Config{ActorName: "a/b"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("New with ActorName a/b: %v, want ErrInvalid", err)
	}
}

// A runtime without Config.ActorSystem lends its own, for the program's actors, and refuses
// after Close.
func TestRuntimeLendsItsActorSystem(t *testing.T) {
	rt := newRuntime(t, Config{})
	sys, err := rt.ActorSystem()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sys.ProcessRegistry.GetLocal("zasync"); !ok {
		t.Fatal("zasync's root is not in the actor system the runtime lends")
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.ActorSystem(); !errors.Is(err, ErrClosed) {
		t.Fatalf("ActorSystem after Close: %v, want ErrClosed", err)
	}
}
