package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
// It also writes its runs' annotations (Annotate), fenced to the run, coalescing the writes
// of one name that a handler asks for while one is on its way.
//
// Takes TakeJob, Interrupt, Revoked (from its agent), JobFinished (from its run), annotateReq (from its
// run's handler, with a reply channel), annotated (its own, an annotation write back from the
// store), Stopping; sends JobFinished to its agent. Its run sends Adopting and AdoptionEnded to
// the agent itself (see adopting).
//
// It is cheap on purpose. An agent keeps its job actors once their runs end and hands them
// the next jobs, so that a job costs two messages, not a spawn and a stop (an actor spawned
// and stopped per job cost about 20 allocations and a registry entry each): an agent has at
// most as many job actors as its size, named job<n> below it. They run on the synchronized
// dispatcher: their messages are handled on the sender's goroutine, with no mailbox goroutine.
type jobActor struct {
	exec *executor
	// base is the context its runs' contexts derive from: the executor's, with the run's
	// scope (see adopting and Annotate). Made at its first job, kept for the others.
	base   context.Context
	job    *persistence.Job // the job held, nil between jobs
	cancel context.CancelCauseFunc
	// annotations are the annotation writes of its runs on their way (see Annotate).
	annotations map[annotationKey]*annotating
}

func (j *jobActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *messages.TakeJob:
		if j.base == nil {
			j.base = withRunScope(j.exec.base, c.ActorSystem().Root, c.Parent(), c.Self())
		}
		ctx, cancel := context.WithCancelCause(j.base)
		j.job, j.cancel = m.Job, cancel
		self, root, exec, job := c.Self(), c.ActorSystem().Root, j.exec, m.Job
		exec.runners.start(func() {
			runJob(exec, ctx, cancel, job, self.Id, func(m *messages.JobFinished) { root.Send(self, m) })
		})
	case *messages.Interrupt:
		if j.job != nil {
			j.cancel(nil)
		}
	case *messages.Revoked:
		if j.job != nil && j.job.ID == m.Ref.ID {
			j.cancel(persistence.ErrCancelled)
		}
	case *messages.JobFinished:
		if j.job != nil && m.ID == j.job.ID {
			j.job, j.cancel = nil, nil
			c.Send(c.Parent(), m)
		}
	case *annotateReq:
		j.annotate(c, m)
	case *annotated:
		j.annotationDone(c, m)
	case *actor.Stopping:
		if j.job != nil {
			j.cancel(nil)
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

// runScopeKey is the key of a run's context under which its job actor and agent are found.
type runScopeKey struct{}

// runScope is where a run's messages go: its agent hears of its adoptions (messages.Adopting
// and AdoptionEnded), its job actor writes its annotations (see Annotate).
type runScope struct {
	root  *actor.RootContext
	agent *actor.PID
	job   *actor.PID
}

// withRunScope returns ctx, for the runs of job actor job of agent.
func withRunScope(ctx context.Context, root *actor.RootContext, agent, job *actor.PID) context.Context {
	return context.WithValue(ctx, runScopeKey{}, &runScope{root: root, agent: agent, job: job})
}

// adopting tells the agent of the run with ctx that the run is about to adopt job ref, before
// the adoption is written, so that a poll which reads the adoption finds the agent knowing of
// it; release, called once the run is done with the job, tells the agent it is over. Such a
// job can stay listed under the agent, no longer parked, with no run of its own: the poll's
// reconciliation must not take it for a job whose claim's reply was lost. A run with no agent
// (a test's) tells no one.
func adopting(ctx context.Context, ref persistence.Ref) (release func()) {
	a, _ := ctx.Value(runScopeKey{}).(*runScope)
	if a == nil {
		return func() {}
	}
	a.root.Send(a.agent, &messages.Adopting{Ref: ref})
	return func() { a.root.Send(a.agent, &messages.AdoptionEnded{Ref: ref}) }
}

// Annotate sets a live annotation of the job the handler with ctx runs, fenced to its run
// (persistence.Store.SetRunAnnotation): refused with ErrReassigned once the job was taken
// from the run, so that a run presumed dead never overwrites what the job's new run reports.
// The write goes through the run's job actor, which coalesces: while a write of one name is
// on its way, the values asked for that name after it wait, and only the newest is written
// next; every caller is answered with the outcome of the write that carried its value or a
// newer one. A handler reporting progress in a tight loop costs the store a write per round
// trip, not one per call. Outside a handler's context it is ErrInvalid.
func Annotate(ctx context.Context, name string, value json.RawMessage) error {
	r, ok := RunningFrom(ctx)
	if !ok || r.Job == nil {
		return fmt.Errorf("%w: a run's annotation is set from its handler's context", persistence.ErrInvalid)
	}
	sc, _ := ctx.Value(runScopeKey{}).(*runScope)
	if sc == nil { // a run with no job actor (a test's): written at once
		if r.Store == nil {
			return fmt.Errorf("%w: the handler's context has no store", persistence.ErrInvalid)
		}
		return r.Store.SetRunAnnotation(ctx, r.Job.Fence(), name, value)
	}
	reply := make(chan error, 1)
	sc.root.Send(sc.job, &annotateReq{fence: r.Job.Fence(), name: name, value: value, reply: reply})
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// annotateReq asks a job actor to write a run's annotation, and where to answer.
type annotateReq struct {
	fence persistence.Fence
	name  string
	value json.RawMessage
	reply chan error
}

// annotationKey names one annotation of one run.
type annotationKey struct {
	fence persistence.Fence
	name  string
}

// annotating is one annotation being written by a job actor: who waits for the write on its
// way, and the newest value asked meanwhile (when nextWaiters is not empty), with who waits
// for it.
type annotating struct {
	waiters     []chan error
	next        json.RawMessage
	nextWaiters []chan error
}

// annotated is a job actor's annotation write back from the store.
type annotated struct {
	key annotationKey
	err error
}

// annotate takes an annotation write: at once if none of its name is on its way, else as the
// next value of that name.
func (j *jobActor) annotate(c actor.Context, m *annotateReq) {
	k := annotationKey{fence: m.fence, name: m.name}
	if a := j.annotations[k]; a != nil {
		a.next = m.value
		a.nextWaiters = append(a.nextWaiters, m.reply)
		return
	}
	if j.annotations == nil {
		j.annotations = map[annotationKey]*annotating{}
	}
	j.annotations[k] = &annotating{waiters: []chan error{m.reply}}
	j.writeAnnotation(c, k, m.value)
}

// annotationDone answers the callers of a write back from the store, and writes the next
// value of its name, if one was asked meanwhile.
func (j *jobActor) annotationDone(c actor.Context, m *annotated) {
	a := j.annotations[m.key]
	if a == nil {
		return
	}
	for _, w := range a.waiters {
		w <- m.err
	}
	if len(a.nextWaiters) == 0 {
		delete(j.annotations, m.key)
		return
	}
	value := a.next
	a.waiters, a.next, a.nextWaiters = a.nextWaiters, nil, nil
	j.writeAnnotation(c, m.key, value)
}

// writeAnnotation writes one annotation on a goroutine of its own (never in Receive), and
// tells the actor when it is done.
func (j *jobActor) writeAnnotation(c actor.Context, k annotationKey, value json.RawMessage) {
	self, root, exec := c.Self(), c.ActorSystem().Root, j.exec
	go func() {
		ctx, cancel := exec.op()
		err := exec.store.SetRunAnnotation(ctx, k.fence, k.name, value)
		cancel()
		root.Send(self, &annotated{key: k, err: err})
	}()
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
func runJob(exec *executor, ctx context.Context, cancel context.CancelCauseFunc, j *persistence.Job, run string, report func(*messages.JobFinished)) {
	r := Result{Ending: Failed, Job: j, Err: errRunPanicked}
	defer func() {
		cancel(nil)
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
