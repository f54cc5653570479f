package actors

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// jobActor holds one job this process claimed, from the claim to the end of its run (its
// fenced commit, its callbacks). Its agent hands it the job (TakeJob); it starts the run on one
// of the node's runner goroutines (runners.go): the handler never runs in a mailbox. It keeps
// the run's context, so that an interrupt cancels the handler; the run's end comes back to it
// and it tells its agent, which frees the slot. If it stops while it holds a job (its agent
// stops or restarts, or it panics and its agent stops it), it cancels the run: the job, still
// held in the store with no run, is recovered as an interruption at the next poll.
//
// Takes TakeJob, Interrupt (from its agent), JobFinished (from its run), Stopping; sends
// JobFinished to its agent. Its run sends Adopting and AdoptionEnded to the agent itself (see
// adopting).
//
// It is cheap on purpose. An agent keeps its job actors once their runs end and hands them
// the next jobs, so that a job costs two messages, not a spawn and a stop (an actor spawned
// and stopped per job cost about 20 allocations and a registry entry each): an agent has at
// most as many job actors as its size, named job<n> below it. They run on the synchronized
// dispatcher: their messages are handled on the sender's goroutine, with no mailbox goroutine.
type jobActor struct {
	exec *executor
	// base is the context its runs' contexts derive from: the executor's, telling its agent
	// of their adoptions (see adopting). Made at its first job, kept for the others.
	base   context.Context
	job    *persistence.Job // the job held, nil between jobs
	cancel context.CancelFunc
}

func (j *jobActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *messages.TakeJob:
		if j.base == nil {
			j.base = withAdoptions(j.exec.base, c.ActorSystem().Root, c.Parent())
		}
		ctx, cancel := context.WithCancel(j.base)
		j.job, j.cancel = m.Job, cancel
		self, root, exec, job := c.Self(), c.ActorSystem().Root, j.exec, m.Job
		exec.runners.start(func() {
			runJob(exec, ctx, cancel, job, self.Id, func(m *messages.JobFinished) { root.Send(self, m) })
		})
	case *messages.Interrupt:
		if j.job != nil {
			j.cancel()
		}
	case *messages.JobFinished:
		if j.job != nil && m.ID == j.job.ID {
			j.job, j.cancel = nil, nil
			c.Send(c.Parent(), m)
		}
	case *actor.Stopping:
		if j.job != nil {
			j.cancel()
		}
	}
}

// jobProps are the props of an agent's job actors, made once per agent. Job actors are never
// restarted (see jobSupervision): a restart would lose the job it holds while its run goes on.
func jobProps(exec *executor) *actor.Props {
	opts := []actor.PropsOption{actor.WithDispatcher(actor.NewSynchronizedDispatcher(agentThroughput))}
	if jobMiddleware != nil {
		opts = append(opts, actor.WithReceiverMiddleware(jobMiddleware))
	}
	return actor.PropsFromProducer(func() actor.Actor { return &jobActor{exec: exec} }, opts...)
}

// adoptionsKey is the key of a run's context under which its agent hears of its adoptions.
type adoptionsKey struct{}

// adoptions tell an agent of the jobs its runs adopt (messages.Adopting and AdoptionEnded).
type adoptions struct {
	root  *actor.RootContext
	agent *actor.PID
}

// withAdoptions returns ctx, for the runs of one of agent's job actors: their adoptions are
// told to agent.
func withAdoptions(ctx context.Context, root *actor.RootContext, agent *actor.PID) context.Context {
	return context.WithValue(ctx, adoptionsKey{}, &adoptions{root: root, agent: agent})
}

// adopting tells the agent of the run with ctx that the run is about to adopt job ref, before
// the adoption is written, so that a poll which reads the adoption finds the agent knowing of
// it; release, called once the run is done with the job, tells the agent it is over. Such a
// job can stay listed under the agent, no longer parked, with no run of its own: the poll's
// reconciliation must not take it for a job whose claim's reply was lost. A run with no agent
// (a test's) tells no one.
func adopting(ctx context.Context, ref persistence.Ref) (release func()) {
	a, _ := ctx.Value(adoptionsKey{}).(*adoptions)
	if a == nil {
		return func() {}
	}
	a.root.Send(a.agent, &messages.Adopting{Ref: ref})
	return func() { a.root.Send(a.agent, &messages.AdoptionEnded{Ref: ref}) }
}

// jobMiddleware, when set (by tests, before a node starts), sees every message of the job
// actors: how a test makes one fail.
var jobMiddleware actor.ReceiverMiddleware

// errRunPanicked is the result of a run that panicked outside the handler (a bug: a handler's
// panic is the failure of its job).
var errRunPanicked = errors.New("the run panicked before it could report how it ended")

// errJobActorStopped is the result of a run whose job actor stopped before the run ended.
var errJobActorStopped = errors.New("the job's actor stopped before its run ended")

// runJob runs one claimed job to the end of what this process does with it, and reports the
// run's end with report. ctx is cancelled to interrupt the handler; cancel, called when the
// run ends, ends whatever the run left waiting on ctx. A run that panics is reported failed
// and logged; its job stays held and is recovered with its agent, as when the process dies.
func runJob(exec *executor, ctx context.Context, cancel context.CancelFunc, j *persistence.Job, run string, report func(*messages.JobFinished)) {
	r := Result{Ending: Failed, Job: j, Err: errRunPanicked}
	defer func() {
		cancel()
		if p := recover(); p != nil {
			exec.events.Error("a job's run panicked", "job", j.Ref.String(), "panic", p, "stack", string(debug.Stack()))
		}
		failed, text := runText(r)
		report(&messages.JobFinished{ID: j.ID, Ending: r.Ending.String(), Err: r.Err, Worker: run, Failed: failed, Result: text, At: time.Now()})
	}()
	r = exec.run(ctx, j)
}

// callHandler runs h in the caller's goroutine (the run's), turning a panic into a failure
// that carries its stack.
func callHandler(ctx context.Context, h Handler, call *persistence.Call) (value any, err error) {
	defer func() {
		if r := recover(); r != nil {
			value, err = nil, &stackError{err: &PanicError{Value: r}, stack: string(debug.Stack())}
		}
	}()
	return h(ctx, call)
}
