package actors

import (
	"errors"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// agentActor claims jobs from one queue for one agent of its dispatcher, up to its size, and
// runs each in a job actor. A finished job frees a slot and the agent claims again at once,
// so a busy queue does not wait for polls.
type agentActor struct {
	exec    *executor
	queue   string
	owner   persistence.Owner
	spec    AgentSpec
	running map[string]*actor.PID // job id → job actor
	byPID   map[string]string     // job actor id → job id
	// draining: the dispatcher is shutting down; no more claims, report when idle.
	draining bool
}

func newAgent(exec *executor, queue, uuid string, spec AgentSpec) *agentActor {
	return &agentActor{exec: exec, queue: queue, owner: persistence.Owner{Dispatcher: uuid, Agent: spec.Name}, spec: spec,
		running: map[string]*actor.PID{}, byPID: map[string]string{}}
}

func (a *agentActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *messages.Claim:
		a.claim(c)
	case *messages.JobFinished:
		a.finished(c, m.ID)
	case *actor.Terminated:
		if id, ok := a.byPID[m.Who.Id]; ok { // a job actor that stopped without reporting
			a.finished(c, id)
		}
	case *messages.Interrupt:
		a.draining = true
		for _, pid := range a.running {
			c.Send(pid, &messages.CancelJob{})
		}
		a.reportIdle(c)
	}
}

// finished frees the slot of job id and claims again.
func (a *agentActor) finished(c actor.Context, id string) {
	pid, ok := a.running[id]
	if !ok {
		return
	}
	delete(a.running, id)
	delete(a.byPID, pid.Id)
	if a.draining {
		a.reportIdle(c)
		return
	}
	a.claim(c)
}

// reportIdle tells the dispatcher, during a drain, that no job runs any more.
func (a *agentActor) reportIdle(c actor.Context) {
	if len(a.running) == 0 {
		c.Send(c.Parent(), &messages.AgentIdle{Queue: a.queue, Agent: a.spec.Name})
	}
}

// claim takes jobs for the free slots, in one transaction, and starts a job actor for each.
func (a *agentActor) claim(c actor.Context) {
	if a.draining || len(a.running) >= a.spec.Size {
		return
	}
	ctx, cancel := a.exec.op()
	defer cancel()
	jobs, err := a.exec.store.Claim(ctx, persistence.ClaimParams{
		Queue: a.queue, Dispatcher: a.owner.Dispatcher, Agent: a.owner.Agent, Size: a.spec.Size, Filter: a.spec.Filter,
	})
	switch {
	case errors.Is(err, persistence.ErrFull), errors.Is(err, persistence.ErrNotActivated):
		return // the store counts parked and held jobs; the dispatcher's ping reactivates
	case errors.Is(err, persistence.ErrConflict):
		c.Send(c.Self(), &messages.Claim{}) // lost to racing claimers: try again
		return
	case err != nil:
		a.exec.events.Warn("claim failed", "queue", a.queue, "agent", a.owner.String(), "error", err)
		return
	}
	for _, j := range jobs {
		pid := c.Spawn(jobProps(a.exec, j))
		a.running[j.ID] = pid
		a.byPID[pid.Id] = j.ID
	}
}

// agentProps runs an agent whose job actors are stopped, never restarted, when they fail.
func agentProps(exec *executor, queue, uuid string, spec AgentSpec) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newAgent(exec, queue, uuid, spec) },
		actor.WithSupervisor(stopOnFailure))
}
