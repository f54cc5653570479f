package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/runtime"
)

// A program's own actor puts a job by message to the queue's actor, and hears as messages
// both the put's answer and, once the job has run, its outcome.
func ExampleQueue_PutMessage() {
	// The program's actor system (its own logging left quiet here), which zasync joins.
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
	rt, err := runtime.New(runtime.Config{ActorSystem: sys, UUID: "example-actor"})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	rt.Handle("greet", runtime.Func1(func(_ context.Context, name string) (string, error) {
		return "hello, " + name, nil
	}))
	if err := rt.Start(context.Background()); err != nil {
		panic(err)
	}

	q := rt.Queue(runtime.DefaultQueue)
	queue, err := q.PID()
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	greeter := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			put, err := q.PutMessage(runtime.NewCall("greet", "actors"), runtime.Notify(c.Self()))
			if err != nil {
				panic(err)
			}
			c.Request(queue, put) // Request: the answer comes back to this actor
		case *messages.PutDone:
			fmt.Println("put:", len(m.Jobs), "job, error:", m.Err)
		case *messages.JobCompleted:
			var greeting string
			if err := json.Unmarshal(m.Result, &greeting); err != nil {
				panic(err)
			}
			fmt.Println(m.Status, greeting)
			close(done)
		}
	}))
	<-done
	sys.Root.PoisonFuture(greeter).Wait()
	// Output:
	// put: 1 job, error: <nil>
	// completed hello, actors
}
