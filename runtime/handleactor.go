package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// HandleActor registers, under name, a handler that is an actor: each run of a job naming it
// gets an actor of its own, made from props below zasync's root actor
// (<ActorName>/handler/<name, path-escaped>/<job id>-<attempt>) and stopped once the run is
// over. The actor receives a *messages.RunJob (the job's ref and attempt, and its call's
// arguments as JSON) whose sender is the run's reply address, and answers there with a
// *messages.JobReply: its Value is the job's result (anything that marshals to JSON, a
// json.RawMessage as it is, or a *Job to wait for, as a HandlerFunc may return), its Err the
// run's error, which the job's retry policy answers. It may answer at once (c.Respond) or
// later, keeping c.Sender(); the run waits for it as long as a handler may run.
//
// One actor per run, rather than one per name taking runs by id: a run's state is its actor's
// own, as a handler call's is its locals; runs of one name go concurrently without an actor
// juggling them; a panic ends one run; and a cancellation reaches exactly the run it is for.
// It costs a spawn and a stop per run, little next to work that needs an actor.
//
// An interrupted run (a clean stop cancels its context) ends at once, as a HandlerFunc that
// returns ctx.Err(): its actor gets a *messages.CancelJob and is stopped after it. An actor
// that panics is logged (ERROR "an actor panicked") and stopped, and its run fails with a
// PanicError failure; one that stops without replying fails its run too. No zasync actor
// waits for the reply: the run's goroutine does.
//
// The name follows Handle's rules and shares its names: a name may have one handler, a
// HandlerFunc or an actor. HandleActor makes zasync's root actor if it does not exist yet (in
// Config.ActorSystem, or an actor system of the runtime's own); after Close it gives
// ErrClosed.
func (rt *Runtime) HandleActor(name string, props *actor.Props) error {
	if err := checkHandlerName("handle actor", name); err != nil {
		return err
	}
	if props == nil {
		return invalidf("handle actor %q: nil props", name)
	}
	if rt.registered(name) {
		return invalidf("handle actor %q: a handler is already registered under that name", name)
	}
	root, err := rt.actorRoot()
	if err != nil {
		return err
	}
	h, err := actors.StartActorHandler(root, name, props, rt.logger)
	if errors.Is(err, actor.ErrNameExists) {
		return invalidf("handle actor %q: a handler is already registered under that name", name)
	}
	if err != nil {
		return fmt.Errorf("zasync: handle actor: %w", err)
	}
	f := func(ctx context.Context, call *Call) (any, error) {
		return h.Handle(ctx, &persistence.Call{Handler: call.Handler, Args: call.Args, Kwargs: call.Kwargs})
	}
	if err := rt.register("handle actor", name, f); err != nil {
		h.Stop() // a Handle of the same name won the race
		return err
	}
	return nil
}
