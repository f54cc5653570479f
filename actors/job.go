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
// fenced commit, its callbacks). Its agent spawns it for each job a claim gives it, named
// run<n> below the agent. On Started it starts the run on one of the node's runner
// goroutines (runners.go): the handler never runs in a mailbox. It keeps the run's context,
// so that an interrupt cancels the handler; the run's end comes back to it, and it tells its
// agent, which frees the slot and stops it. If it stops before the run ends (its agent
// stops or restarts, or it panics and its agent stops it), it cancels the run: the job,
// still held in the store with no run, is recovered as an interruption at the next poll.
//
// Takes Started, Interrupt (from its agent), JobFinished (from its run), Stopping; sends
// JobFinished to its agent.
//
// It is cheap on purpose: props made once per agent, the synchronized dispatcher (its
// messages are handled on the sender's goroutine, no mailbox goroutine is started), and its
// job handed over at spawn instead of in a message.
type jobActor struct {
	exec   *executor
	job    *persistence.Job
	cancel context.CancelFunc
	ended  bool // the run has reported its end
}

func (j *jobActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		ctx, cancel := context.WithCancel(j.exec.base)
		j.cancel = cancel
		self, root, exec, job := c.Self(), c.ActorSystem().Root, j.exec, j.job
		exec.runners.start(func() {
			runJob(exec, ctx, cancel, job, self.Id, func(m *messages.JobFinished) { root.Send(self, m) })
		})
	case *messages.Interrupt:
		j.cancel()
	case *messages.JobFinished:
		j.ended = true
		c.Send(c.Parent(), m)
	case *actor.Stopping:
		if !j.ended {
			j.cancel()
		}
	}
}

// jobProps are the props of an agent's job actors, made once per agent. Each spawn takes its
// job from *next, which the agent sets just before (the producer runs within the spawn, on
// the agent's goroutine). Job actors are never restarted (see jobSupervision), so the
// producer runs once per job actor.
func jobProps(exec *executor, next **persistence.Job) *actor.Props {
	opts := []actor.PropsOption{actor.WithDispatcher(actor.NewSynchronizedDispatcher(agentThroughput))}
	if jobMiddleware != nil {
		opts = append(opts, actor.WithReceiverMiddleware(jobMiddleware))
	}
	return actor.PropsFromProducer(func() actor.Actor {
		j := &jobActor{exec: exec, job: *next}
		*next = nil
		return j
	}, opts...)
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
