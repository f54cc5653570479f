package actors

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/persistence"
)

// explode makes an actor whose props carry explodes panic.
type explode struct{}

// explodes is a middleware that panics with why when its actor receives an explode.
func explodes(why string) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			if _, ok := env.Message.(*explode); ok {
				panic(why)
			}
			next(c, env)
		}
	}
}

// signalsAfter is a middleware that signals on ch each time its actor has handled a message
// of type M.
func signalsAfter[M any](ch chan<- struct{}) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			next(c, env)
			if _, ok := env.Message.(M); ok {
				ch <- struct{}{}
			}
		}
	}
}

// A job actor that panics is stopped by its agent, logged, and its run cancelled; its job,
// held with no run, is recovered as an interruption at the next poll and runs again to the
// end. The agent goes on claiming.
func TestJobActorPanicRecoversItsJob(t *testing.T) {
	jobMiddleware = explodes("job actor broken on purpose")
	defer func() { jobMiddleware = nil }()
	f := newExecFixture(t)
	started := make(chan string, 10)
	cancelled := make(chan struct{}, 10)
	f.h["block"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		r, _ := RunningFrom(ctx)
		if r.Job.Attempt > 1 { // the run after the recovery
			return "second run", nil
		}
		started <- r.Job.ID
		<-ctx.Done()
		cancelled <- struct{}{}
		return nil, ctx.Err()
	}
	f.h["quick"] = func(context.Context, *persistence.Call) (any, error) { return "quick", nil }
	sub := f.completions()
	n := f.startNode(f.nodeOptions("n1", 2, 30*time.Millisecond))
	defer f.stopNode(n)
	j := f.put("block")
	id := receive(t, started, "the job never started")
	var info JobInfo
	f.eventually("the node to know the running job", func() bool {
		var ok bool
		info, ok = n.JobInfo(id)
		return ok
	})
	// The run's name is its job actor's PID id.
	n.root.System().Root.Send(actor.NewPID(n.root.System().Address(), info.Worker), &explode{})
	receive(t, cancelled, "the panicking job actor's run was not cancelled")
	if _, ok := f.logs.Find(slog.LevelError, "an actor panicked"); !ok {
		t.Error("the panic was not logged")
	}
	quick := f.put("quick")
	done := f.waitDone(sub, j.ID, quick.ID)
	if got := string(done[j.ID].Result); got != `"second run"` {
		t.Fatalf("the recovered job's result is %s, want \"second run\"", got)
	}
	if c := done[j.ID].Retry[persistence.CountInterruptions]; c != 1 {
		t.Fatalf("the recovered job counts %d interruptions, want 1", c)
	}
}

// An agent that panics is restarted by its dispatcher, logged; its job actors stop with it
// and cancel their runs, and the jobs they held are recovered as interruptions at the next
// poll. The restarted agent claims and runs them again.
func TestAgentPanicRestartsItAndRecoversItsJobs(t *testing.T) {
	agentMiddleware = explodes("agent broken on purpose")
	defer func() { agentMiddleware = nil }()
	f := newExecFixture(t)
	started := make(chan string, 10)
	cancelled := make(chan struct{}, 10)
	f.h["block"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		r, _ := RunningFrom(ctx)
		if r.Job.Attempt > 1 {
			return "again", nil
		}
		started <- r.Job.ID
		<-ctx.Done()
		cancelled <- struct{}{}
		return nil, ctx.Err()
	}
	sub := f.completions()
	n := f.startNode(f.nodeOptions("n1", 2, 30*time.Millisecond))
	defer f.stopNode(n)
	a, b := f.put("block"), f.put("block")
	receive(t, started, "the first job never started")
	receive(t, started, "the second job never started")
	sys := n.root.System()
	sys.Root.Send(actor.NewPID(sys.Address(), n.dispatcher.Id+"/agent/q/main"), &explode{})
	receive(t, cancelled, "a run of the restarted agent was not cancelled")
	receive(t, cancelled, "a run of the restarted agent was not cancelled")
	if _, ok := f.logs.Find(slog.LevelError, "an actor panicked"); !ok {
		t.Error("the panic was not logged")
	}
	done := f.waitDone(sub, a.ID, b.ID)
	for _, j := range done {
		if string(j.Result) != `"again"` || j.Retry[persistence.CountInterruptions] != 1 {
			t.Fatalf("job %s: result %s after %d interruptions, want \"again\" after 1", j.ID, j.Result, j.Retry[persistence.CountInterruptions])
		}
	}
}

// A committer that panics is restarted by the root, logged, and keeps its books: the runs
// going on commit through it, uninterrupted, and its agents claim through it again.
func TestCommitterPanicRestartsItAndKeepsItsBooks(t *testing.T) {
	committerMiddleware = explodes("committer broken on purpose")
	defer func() { committerMiddleware = nil }()
	f := newExecFixture(t)
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	f.h["block"] = func(context.Context, *persistence.Call) (any, error) {
		started <- struct{}{}
		<-release
		return "done", nil
	}
	f.h["quick"] = func(context.Context, *persistence.Call) (any, error) { return "quick", nil }
	sub := f.completions()
	n := f.startNode(f.nodeOptions("n1", 2, 30*time.Millisecond))
	defer f.stopNode(n)
	a, b := f.put("block"), f.put("block")
	receive(t, started, "the first job never started")
	receive(t, started, "the second job never started")
	n.root.System().Root.Send(n.committer, &explode{})
	f.eventually("the committer's panic logged", func() bool {
		_, ok := f.logs.Find(slog.LevelError, "an actor panicked")
		return ok
	})
	close(release)
	quick := f.put("quick")
	done := f.waitDone(sub, a.ID, b.ID, quick.ID)
	for _, j := range done {
		if j.Failed() || j.Retry[persistence.CountInterruptions] != 0 {
			t.Fatalf("job %s: result %s, failure %v, %d interruptions; want a success never interrupted",
				j.ID, j.Result, j.Failure, j.Retry[persistence.CountInterruptions])
		}
	}
}
