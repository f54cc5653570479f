package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/runtime"
)

// A handler that is an actor: each run of a "greet" job gets an actor of its own, which
// receives the job and answers with its result.
func ExampleRuntime_HandleActor() {
	rt, err := runtime.New(runtime.Config{UUID: "example-actor"})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	greeter := actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *messages.RunJob:
			var name string
			if err := json.Unmarshal(m.Args[0], &name); err != nil {
				c.Respond(&messages.JobReply{Err: err})
				return
			}
			c.Respond(&messages.JobReply{Value: "hello, " + name})
		case *messages.CancelJob:
			// The run was interrupted (a clean stop); the actor is stopped next.
		}
	})
	if err := rt.HandleActor("greet", greeter); err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx)

	job, err := rt.Queue(runtime.DefaultQueue).Put(ctx, runtime.NewCall("greet", "Ada"))
	if err != nil {
		panic(err)
	}
	var greeting string
	if out, err := job.Wait(ctx); err != nil || out.Decode(&greeting) != nil {
		panic(err)
	}
	fmt.Println(greeting)
	// Output:
	// hello, Ada
}

// A durable reminder: held in Redis until it is due, then delivered to the actor that hosts
// its target in a process serving it, which acknowledges it. Here the program's own actor
// system hosts zasync and the target's actor.
func ExampleRuntime_Remind() {
	// The program's actor system (its own logging left quiet here), which zasync joins.
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
	rt, err := runtime.New(runtime.Config{UUID: "example-remind", ActorSystem: sys})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	alarm := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*messages.Reminder); ok {
			// A reminder may come twice (after a crash): m.ID tells the copies apart.
			fmt.Printf("%s: %s\n", m.Target, m.Payload)
			c.Respond(&messages.ReminderAck{})
		}
	}))
	defer func() { sys.Root.PoisonFuture(alarm).Wait() }()
	if err := rt.HostReminders("alarm", alarm); err != nil { // before Start
		panic(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx)

	reminder, err := rt.Remind(ctx, "alarm", time.Now().Add(100*time.Millisecond), "wake up")
	if err != nil {
		panic(err)
	}
	if _, err := reminder.Wait(ctx); err != nil { // completes once acknowledged
		panic(err)
	}
	fmt.Println("delivered")
	// Output:
	// alarm: "wake up"
	// delivered
}
