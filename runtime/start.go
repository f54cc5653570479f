package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/actors"
)

// ErrStarted reports a Start of a runtime already started.
var ErrStarted = errors.New("zasync: runtime already started")

// ErrNotStarted reports a Stop of a runtime not started.
var ErrNotStarted = errors.New("zasync: runtime not started")

// Start starts this runtime's dispatcher, with an agent per configured agent in each
// configured queue: it activates its record in each queue (another live process with the
// same UUID is refused and retried at each poll, with an ERROR), pings, and claims and runs
// jobs until Stop. It returns at once; a program that only puts jobs never calls it. The
// handlers must be registered before.
func (rt *Runtime) Start(ctx context.Context) error {
	rt.nodeMu.Lock()
	defer rt.nodeMu.Unlock()
	if rt.node != nil {
		return ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := rt.dispatcherUUID(); err != nil {
		return err
	}
	root, err := rt.actorRoot()
	if err != nil {
		return err
	}
	o := rt.nodeOptions(root)
	// The queues' actors are the runtime's, shared with its puts: they wake the dispatcher.
	o.QueueActors = make(map[string]*actor.PID, len(o.Queues))
	for _, q := range o.Queues {
		qa, err := rt.queueActor(q.Name)
		if err != nil {
			return fmt.Errorf("zasync: start: %w", err)
		}
		o.QueueActors[q.Name] = qa.PID()
	}
	n, err := actors.StartNode(o)
	if err != nil {
		return fmt.Errorf("zasync: start: %w", err)
	}
	rt.node = n
	rt.live.Store(n)
	return nil
}

// Stop shuts the dispatcher down cleanly: it stops claiming, cancels the running handlers'
// contexts, waits for them up to Config.ShutdownGrace, then deactivates its records, which
// hands what did not finish to recovery jobs (an interrupted job runs again after a restart,
// or on another dispatcher). A handler still running after that is abandoned; if it later
// tries to commit, the commit is refused. ctx bounds the whole wait.
func (rt *Runtime) Stop(ctx context.Context) error {
	rt.nodeMu.Lock()
	defer rt.nodeMu.Unlock()
	if rt.node == nil {
		return ErrNotStarted
	}
	err := rt.node.Stop(ctx)
	rt.node = nil
	rt.live.Store(nil)
	if err != nil {
		return fmt.Errorf("zasync: stop: %w", err)
	}
	return nil
}
