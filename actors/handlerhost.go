package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// handlerHost is the parent of the actors that run the jobs of one handler name whose handler
// is an actor (runtime.HandleActor), below zasync's root as handler/<name>. It makes one
// actor per run from the program's props, supervises them, and stops each when its run ends.
// It never waits: a run's goroutine waits for its actor's reply at a reply address of its
// own, which the host only tells when the actor cannot reply (see messages/handler.go).
//
// It is its children's supervisor strategy itself: a run's actor that panics is logged,
// stopped, and its run fails with a *PanicError, where protoactor's default would restart it
// and lose the job it was handling, leaving its run to wait for ever.
//
// Takes StartRun, EndRun, and each child's Terminated; sends RunStarted and RunFailed to runs'
// reply addresses, and stops its children.
type handlerHost struct {
	name   string
	props  *actor.Props
	events *slog.Logger
	// runs: a child's id → the reply address of its run; children: a reply address's id →
	// the run's actor.
	runs     map[string]*actor.PID
	children map[string]*actor.PID
	stopping bool // Stopping or Restarting came: no more runs
	stopped  func()
}

func (h *handlerHost) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *messages.StartRun:
		h.start(c, m)
	case *messages.EndRun:
		if child, ok := h.children[m.ReplyTo.Id]; ok {
			h.forget(child, m.ReplyTo)
			c.Poison(child) // after a CancelJob the run sent it first: the actor sees that too
		}
	case *actor.Terminated:
		if reply, ok := h.runs[m.Who.Id]; ok {
			h.forget(m.Who, reply)
			c.Send(reply, &messages.RunFailed{Err: fmt.Errorf("%w: the actor of handler %q stopped without replying", ErrActorGone, h.name)})
		}
	case *actor.Restarting, *actor.Stopping:
		// protoactor stops the children next; their runs must not wait for replies that
		// cannot come.
		h.stopping = true
		for id, reply := range h.runs {
			c.Send(reply, &messages.RunFailed{Err: fmt.Errorf("%w: the host of handler %q stopped", ErrActorGone, h.name)})
			delete(h.runs, id)
		}
		clear(h.children)
	case *actor.Stopped:
		h.stopped()
	}
}

// start makes the actor of a run and tells the run.
func (h *handlerHost) start(c actor.Context, m *messages.StartRun) {
	if h.stopping {
		c.Send(m.ReplyTo, &messages.RunFailed{Err: fmt.Errorf("%w: the host of handler %q is stopping", ErrActorGone, h.name)})
		return
	}
	child, err := h.spawn(c, m.Run)
	if err != nil {
		h.events.Error("cannot make the actor of a run", "handler", h.name, "job", m.Run.Ref.String(), "error", err)
		c.Send(m.ReplyTo, &messages.RunFailed{Err: err})
		return
	}
	h.runs[child.Id], h.children[m.ReplyTo.Id] = m.ReplyTo, child
	c.Send(m.ReplyTo, &messages.RunStarted{Actor: child})
}

// spawn makes the actor of run, named after its job and attempt when it can be. The props'
// producer is the program's code: its panic fails the run, not the host.
func (h *handlerHost) spawn(c actor.Context, run *messages.RunJob) (pid *actor.PID, err error) {
	defer func() {
		if p := recover(); p != nil {
			pid, err = nil, &PanicError{Value: p}
		}
	}()
	pid, err = c.SpawnNamed(h.props, run.Ref.ID+"-"+strconv.FormatInt(run.Attempt, 10))
	if errors.Is(err, actor.ErrNameExists) {
		// The same attempt of a job running twice here: a run abandoned at a stop whose
		// actor has not stopped yet, and the job claimed back.
		pid, err = c.SpawnNamed(h.props, run.Ref.ID+"-"+strconv.FormatInt(run.Attempt, 10)+"$"+c.ActorSystem().ProcessRegistry.NextId())
	}
	return pid, err
}

func (h *handlerHost) forget(child, reply *actor.PID) {
	delete(h.runs, child.Id)
	delete(h.children, reply.Id)
}

// HandleFailure is the host's strategy for its children: see handlerHost.
func (h *handlerHost) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, message any) {
	h.events.Error("an actor panicked", "actor", child.Id, "parent", "handler "+h.name, "panic", fmt.Sprint(reason),
		"message", fmt.Sprintf("%T", message), "then", "stopped; its run fails")
	if reply, ok := h.runs[child.Id]; ok {
		h.forget(child, reply)
		sys.Root.Send(reply, &messages.RunFailed{Err: &PanicError{Value: reason}})
	}
	sup.StopChildren(child)
}

// ErrActorGone reports a run or a delivery whose actor stopped, or was not running, before it
// replied.
var ErrActorGone = errors.New("zasync: the actor is gone")

// ActorHandler is a handler whose runs are actors made from the program's props, below the
// host actor of one handler name.
type ActorHandler struct {
	name string
	sys  *actor.ActorSystem
	host *actor.PID
	done chan struct{} // closed once the host has stopped for good
}

// StartActorHandler spawns below root the host of handler name, whose runs are actors made
// from props (runtime.HandleActor). Each run has an actor of its own, made for it and stopped
// after it: a run's state is the actor's, as a handler call's is its locals; runs of one name
// go concurrently without an actor juggling them by id; a panic ends one run only; and a
// cancellation reaches exactly the run it is for. What that costs, a spawn and a stop per
// run, is small next to work that needs an actor.
func StartActorHandler(root *Root, name string, props *actor.Props, logger *slog.Logger) (*ActorHandler, error) {
	if props == nil {
		return nil, fmt.Errorf("%w: handler %q: nil props", persistence.ErrInvalid, name)
	}
	h := &ActorHandler{name: name, sys: root.System(), done: make(chan struct{})}
	var once sync.Once
	stopped := func() { once.Do(func() { close(h.done) }) }
	events := eventsLogger(logger)
	hostProps := actor.PropsFromProducer(func() actor.Actor {
		return &handlerHost{name: name, props: props, events: events, stopped: stopped,
			runs: map[string]*actor.PID{}, children: map[string]*actor.PID{}}
	})
	// Escaped: a handler name may hold a '/', which would make one host's path another's.
	pid, err := root.Spawn(hostProps, "handler/"+url.PathEscape(name))
	if err != nil {
		return nil, fmt.Errorf("handler %q: %w", name, err)
	}
	h.host = pid
	return h, nil
}

// Stop stops the host and the actors of its runs; their runs fail.
func (h *ActorHandler) Stop() {
	h.sys.Root.PoisonFuture(h.host).Wait()
}

// Handle runs one job: it asks the host for the run's actor, sends it the job, and waits for
// its reply. ctx cancelled (an interrupt) sends the actor CancelJob and ends the run at once
// with ctx's error, as a handler that returns it; the host then stops the actor.
func (h *ActorHandler) Handle(ctx context.Context, call *persistence.Call) (any, error) {
	run := &messages.RunJob{Handler: call.Handler, Args: call.Args, Kwargs: call.Kwargs}
	if r, ok := RunningFrom(ctx); ok {
		run.Ref, run.Attempt = r.Job.Ref, r.Job.Attempt
	}
	select {
	case <-h.done:
		return nil, fmt.Errorf("%w: the host of handler %q has stopped", ErrActorGone, h.name)
	default:
	}
	reply := newReplyAddress(h.sys)
	defer reply.close()
	h.sys.Root.Send(h.host, &messages.StartRun{Run: run, ReplyTo: reply.pid})
	var child *actor.PID
	for {
		select {
		case m := <-reply.c:
			switch m := m.(type) {
			case *messages.RunStarted:
				child = m.Actor
				h.sys.Root.RequestWithCustomSender(child, run, reply.pid)
				continue
			case *messages.RunFailed:
				return nil, m.Err // the host has forgotten the run already
			case *actor.DeadLetterResponse:
				// The actor stopped before it got the job: the host, which hears of every
				// end of its children, answers with RunFailed.
				continue
			case *messages.JobReply:
				h.sys.Root.Send(h.host, &messages.EndRun{ReplyTo: reply.pid})
				if m.Err != nil {
					return nil, m.Err
				}
				return m.Value, nil
			default:
				h.sys.Root.Send(h.host, &messages.EndRun{ReplyTo: reply.pid})
				return nil, fmt.Errorf("%w: the actor of handler %q replied with a %T, not a *messages.JobReply", persistence.ErrInvalid, h.name, m)
			}
		case <-ctx.Done():
			if child != nil {
				h.sys.Root.Send(child, &messages.CancelJob{Ref: run.Ref, Attempt: run.Attempt})
			}
			h.sys.Root.Send(h.host, &messages.EndRun{ReplyTo: reply.pid})
			return nil, ctx.Err()
		case <-h.done:
			return nil, fmt.Errorf("%w: the host of handler %q has stopped", ErrActorGone, h.name)
		}
	}
}
