package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// rootActor is zasync's root in an actor system: every other actor of one runtime (its
// dispatcher, and the actors a program asks for) is spawned below it, so that one poison
// stops them all, children first, and a program's own actor system keeps running after.
// It supervises its children with a logged one-for-one strategy (see supervision).
//
// Takes Spawn (start a child here; answered with Spawned to the asker); sends nothing else.
type rootActor struct{}

func (r *rootActor) Receive(c actor.Context) {
	if m, ok := c.Message().(*messages.Spawn); ok {
		pid, err := c.SpawnNamed(m.Props, m.Name)
		if err != nil {
			err = fmt.Errorf("spawn %q under %s: %w", m.Name, c.Self().Id, err)
		}
		c.Respond(&messages.Spawned{PID: pid, Err: err})
	}
}

// Root is zasync's subtree in an actor system: the system itself (the program's, or one of
// zasync's own) and the root actor every zasync actor of one runtime lives under.
type Root struct {
	sys *actor.ActorSystem
	pid *actor.PID
	own bool // zasync made sys: stopping the root shuts it down
}

// DefaultRootName is the name of zasync's root actor in an actor system.
const DefaultRootName = "zasync"

// spawnTimeout bounds how long a spawn below the root may take: a root actor that does not
// answer in that time is stuck, which is a bug.
const spawnTimeout = 10 * time.Second

// StartRoot spawns zasync's root actor, named name, in sys; a nil sys makes an actor system
// of zasync's own (see NewSystem), shut down with the root. A name already taken in sys is
// ErrInvalid.
func StartRoot(sys *actor.ActorSystem, name string, logger *slog.Logger) (*Root, error) {
	if name == "" {
		name = DefaultRootName
	}
	r := &Root{sys: sys}
	if sys == nil {
		r.sys, r.own = NewSystem(logger), true
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &rootActor{} },
		actor.WithSupervisor(supervision(eventsLogger(logger), "root")))
	pid, err := r.sys.Root.SpawnNamed(props, name)
	if err != nil {
		if errors.Is(err, actor.ErrNameExists) {
			err = fmt.Errorf("%w: an actor named %q already runs in this actor system (two runtimes need two root names)", persistence.ErrInvalid, name)
		}
		if r.own {
			r.sys.Shutdown()
		}
		return nil, fmt.Errorf("start zasync's root actor: %w", err)
	}
	r.pid = pid
	return r, nil
}

// System is the actor system the root lives in.
func (r *Root) System() *actor.ActorSystem { return r.sys }

// PID is the root actor's.
func (r *Root) PID() *actor.PID { return r.pid }

// Spawn starts an actor from props as a child of the root, named name.
func (r *Root) Spawn(props *actor.Props, name string) (*actor.PID, error) {
	res, err := r.sys.Root.RequestFuture(r.pid, &messages.Spawn{Props: props, Name: name}, spawnTimeout).Result()
	if err != nil {
		return nil, fmt.Errorf("spawn %q: %w", name, err)
	}
	s := res.(*messages.Spawned)
	return s.PID, s.Err
}

// Stop stops the root and every actor below it, children first, and waits for them; then it
// shuts the actor system down if zasync made it. A program's own system keeps running.
func (r *Root) Stop() error {
	err := r.sys.Root.PoisonFuture(r.pid).Wait()
	if r.own {
		r.sys.Shutdown()
	}
	if err != nil {
		return fmt.Errorf("stop zasync's root actor: %w", err)
	}
	return nil
}

// eventsLogger is where the actors log what happens to jobs and to themselves.
func eventsLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.With("logger", "zasync.events")
}
