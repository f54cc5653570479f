package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
)

// historianActor is the only writer of a node's history (history.go): "history/<uuid>" below
// zasync's root. The dispatcher tells it of each poll and of runs whose jobs were taken away,
// the agents of each run claimed, each claim's outcome and each run's end; the Node's readers
// read the history under its lock, and the Node marks it stopped. So no actor writes state
// another actor writes. It runs on the synchronized dispatcher: recording a run costs its
// agent a message handled on the agent's goroutine, not a hand-off.
//
// Takes RunsClaimed, ClaimOutcome, JobFinished (from agents), Polled and RunReassigned (from the
// dispatcher); sends nothing.
type historianActor struct {
	h *history
}

func (a *historianActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *messages.RunsClaimed:
		for _, r := range m.Runs {
			a.h.claimed(m.Queue, m.Agent, r.Job, r.Worker, r.Started)
		}
	case *messages.JobFinished:
		a.h.ended(m.Worker, m.Ending, m.Failed, m.Result, m.At)
	case *messages.ClaimOutcome:
		a.h.claimError(m.Queue, m.Agent, m.Err)
	case *messages.RunReassigned:
		a.h.markReassigned(m.Worker)
	case *messages.Polled:
		a.h.recordPoll(m.Queues)
	}
}

// startHistorian starts the historian of h below root, named name.
func startHistorian(root *Root, name string, h *history) (*actor.PID, error) {
	props := actor.PropsFromProducer(func() actor.Actor { return &historianActor{h: h} },
		actor.WithDispatcher(actor.NewSynchronizedDispatcher(agentThroughput)))
	return root.Spawn(props, name)
}
