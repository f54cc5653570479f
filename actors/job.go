package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// jobActor runs one claimed job: the executor works in a goroutine of its own (Receive never
// waits on user code), CancelJob cancels the handler's context, and the run's end is reported
// to the agent as JobFinished.
type jobActor struct {
	exec   *executor
	job    *persistence.Job
	cancel context.CancelFunc
}

// runDone carries a finished run back to its job actor.
type runDone struct{ r Result }

func (a *jobActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		ctx, cancel := context.WithCancel(a.exec.base)
		a.cancel = cancel
		self, root := c.Self(), c.ActorSystem().Root
		go func() { root.Send(self, &runDone{a.exec.run(ctx, a.job)}) }()
	case *runDone:
		a.cancel()
		failed, text := runText(m.r)
		c.Send(c.Parent(), &messages.JobFinished{ID: a.job.ID, Ending: m.r.Ending.String(), Err: m.r.Err,
			Worker: c.Self().Id, Failed: failed, Result: text, At: time.Now()})
		c.Stop(c.Self())
	case *messages.CancelJob:
		a.cancel()
	}
}

// jobProps runs j with exec.
func jobProps(exec *executor, j *persistence.Job) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &jobActor{exec: exec, job: j} })
}

// stopOnFailure is how an agent supervises its job actors: a job actor that panics is stopped,
// never restarted, because a restart would run its job a second time. The job stays held and
// is recovered with its agent.
var stopOnFailure = actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })
