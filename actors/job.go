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
// JobFinished to its agent.
//
// It is cheap on purpose. An agent keeps its job actors once their runs end and hands them
// the next jobs, so that a job costs two messages, not a spawn and a stop (an actor spawned
// and stopped per job cost about 20 allocations and a registry entry each): an agent has at
// most as many job actors as its size, named job<n> below it. They run on the synchronized
// dispatcher: their messages are handled on the sender's goroutine, with no mailbox goroutine.
type jobActor struct {
	exec   *executor
	job    *persistence.Job // the job held, nil between jobs
	cancel context.CancelFunc
}

func (j *jobActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *messages.TakeJob:
		ctx, cancel := context.WithCancel(j.exec.base)
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
