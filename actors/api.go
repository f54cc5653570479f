package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/persistence"
)

// Handler runs one call of a job. Its result is any value that marshals to JSON, or an *Inner
// to make the job wait for another job and take its result. A callback is called with its
// own arguments followed by the parent's outcome, as zc.async calls a job with its args plus
// the result: the result when the parent succeeded, the *persistence.Failure (as JSON) when
// it failed.
type Handler func(ctx context.Context, call *persistence.Call) (any, error)

// Handlers finds the handler registered under a name.
type Handlers interface {
	Handler(name string) (Handler, bool)
}

// Inner is what a handler returns to make its job wait for another job, already put in a
// queue, and take its result.
type Inner struct {
	Ref persistence.Ref
}

// Running describes the job a handler runs; the runtime's JobFrom reads it from the context.
type Running struct {
	Job    *persistence.Job // the job as it was started
	Parent *persistence.Job // for a callback, the job whose outcome it receives; else nil
	Store  persistence.Store
}

type runningKey struct{}

// WithRunning returns ctx carrying r.
func WithRunning(ctx context.Context, r *Running) context.Context {
	return context.WithValue(ctx, runningKey{}, r)
}

// RunningFrom returns the job a handler runs, from its context.
func RunningFrom(ctx context.Context) (*Running, bool) {
	r, ok := ctx.Value(runningKey{}).(*Running)
	return r, ok
}

// AgentSpec is one agent of a dispatcher in a queue.
type AgentSpec struct {
	Name   string
	Size   int
	Filter func(*persistence.Job) bool // nil accepts every job
}

// QueueSpec is a queue a dispatcher serves, with its agents.
type QueueSpec struct {
	Name   string
	Agents []AgentSpec
}

// Options configure a dispatcher node. The runtime fills every field (its Config documents
// the defaults).
type Options struct {
	Store    persistence.Store
	Handlers Handlers
	Policies *persistence.RetryPolicies
	Logger   *slog.Logger
	// LogArguments puts calls' arguments and results in the log records about jobs; off,
	// a record names the job and its handler only (arguments may hold personal data).
	LogArguments      bool
	UUID              string
	Queues            []QueueSpec
	PollInterval      time.Duration
	PingInterval      time.Duration
	PingDeathInterval time.Duration
	ShutdownGrace     time.Duration
	// Root is zasync's root actor the dispatcher is spawned under; nil: the node makes a root
	// in an actor system of its own, and stops both with the node.
	Root *Root
	// QueueActors are the actors of the queues the node serves (StartQueue), by queue name:
	// they wake the dispatcher when a job is put. StartNode starts one below Root for each
	// queue that has none here, which the node's Stop stops.
	QueueActors map[string]*actor.PID
	// Activated, if set, is called once per queue with the outcome of the dispatcher's first
	// attempt to activate its record there: nil when it did, else the store's error
	// (persistence.ErrAlreadyActivated when another live process holds the UUID). The
	// dispatcher goes on trying at each poll either way.
	Activated func(queue string, err error)
	// OnCommit, if set, is called as a run's outcome is committed, with the run's context and
	// job; it returns what to call with the commit's error (a tracer's span, say).
	OnCommit func(ctx context.Context, j *persistence.Job) func(error)
	// Observer hears the node's claims, outcomes, retries, interruptions, reassignments and
	// polls, for metrics; nil hears nothing.
	Observer Observer
}
