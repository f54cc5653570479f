package actors

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// agentActor claims jobs from one queue for one agent of its dispatcher, up to its size, and
// runs each in a job actor. A finished job frees a slot and the agent claims again at once,
// so a busy queue does not wait for polls.
type agentActor struct {
	exec  *executor
	hist  *history
	queue string
	owner persistence.Owner
	spec  AgentSpec
	// running: job actor id → job actor. Keyed by job actor, not by job: a job taken from
	// this agent and claimed back while its first run still goes on runs twice.
	running map[string]*actor.PID
	// draining: the dispatcher is shutting down; no more claims, report when idle.
	draining bool
	// claimQueued: a claimFreed is on its way, for the slots freed meanwhile.
	claimQueued bool
	// freeNames are names of job actors that have terminated, for the next job actors: the
	// actor system's registry keeps memory for every name it has seen, so recycling a few
	// names keeps a long-running agent's memory flat.
	freeNames []string
	named     int // names made so far
}

func newAgent(exec *executor, hist *history, queue, uuid string, spec AgentSpec) *agentActor {
	return &agentActor{exec: exec, hist: hist, queue: queue, owner: persistence.Owner{Dispatcher: uuid, Agent: spec.Name}, spec: spec,
		running: map[string]*actor.PID{}}
}

func (a *agentActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *messages.Claim:
		a.claim(c)
	case *claimFreed:
		a.claimQueued = false
		a.claim(c)
	case *messages.JobFinished:
		a.hist.ended(m.Worker, m.Ending, m.Failed, m.Result, m.At)
		a.exec.observeEnding(a.queue, a.spec.Name, m.Ending)
		a.finished(c, m.Worker)
	case *actor.Terminated:
		// Terminated is a system message, handled before the JobFinished the job actor sent
		// just before it stopped: look again after the messages already queued.
		name, _ := strings.CutPrefix(m.Who.Id, c.Self().Id+"/")
		c.Send(c.Self(), &workerGone{worker: m.Who.Id, name: name})
	case *workerGone:
		// Gone from the registry too (it is removed before Terminated is sent): its name
		// can be used again.
		a.freeNames = append(a.freeNames, m.name)
		if _, ok := a.running[m.worker]; ok { // a job actor that stopped without reporting
			failed, text := runText(Result{Ending: Failed, Err: errRunUnreported})
			a.hist.ended(m.worker, Failed.String(), failed, text, time.Now())
			a.finished(c, m.worker)
		}
	case *messages.Interrupt:
		a.draining = true
		for _, pid := range a.running {
			c.Send(pid, &messages.CancelJob{})
		}
		a.reportIdle(c)
	}
}

// workerGone is a job actor's termination, looked at after the messages it sent.
type workerGone struct{ worker, name string }

// finished frees the slot of job actor worker and claims again, once the messages already
// queued are handled: jobs that finish together free their slots for one claim.
func (a *agentActor) finished(c actor.Context, worker string) {
	if _, ok := a.running[worker]; !ok {
		return
	}
	delete(a.running, worker)
	if a.draining {
		a.reportIdle(c)
		return
	}
	if !a.claimQueued {
		a.claimQueued = true
		c.Send(c.Self(), &claimFreed{})
	}
}

// claimFreed claims for the slots freed since it was sent.
type claimFreed struct{}

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
		// Runs taken from this agent by a sibling (it was presumed dead) no longer count in
		// the store but still take a slot here until their handlers return.
		Max:   a.spec.Size - len(a.running),
		Start: true, // every job claimed is run at once: start it in the claim's transaction
	})
	switch {
	case errors.Is(err, persistence.ErrFull):
		return // the store counts parked and held jobs
	case errors.Is(err, persistence.ErrNotActivated):
		a.hist.claimError(a.queue, a.spec.Name, err) // the dispatcher's ping reactivates
		return
	case errors.Is(err, persistence.ErrConflict):
		c.Send(c.Self(), &messages.Claim{}) // lost to racing claimers: try again
		return
	case err != nil:
		a.hist.claimError(a.queue, a.spec.Name, err)
		a.exec.events.Warn("claim failed", "queue", a.queue, "agent", a.owner.String(), "error", err)
		return
	}
	a.hist.claimError(a.queue, a.spec.Name, nil)
	a.exec.observe(Event{Kind: EventClaimed, Queue: a.queue, Agent: a.spec.Name, N: len(jobs)})
	for _, j := range jobs {
		at := a.hist.now()
		pid, err := c.SpawnNamed(jobProps(a.exec, j), a.workerName())
		if err != nil { // a name still registered: never expected, as names are freed after Terminated
			pid = c.Spawn(jobProps(a.exec, j))
		}
		a.running[pid.Id] = pid
		a.hist.claimed(a.queue, a.spec.Name, j, pid.Id, at)
	}
}

// workerName returns a name for a new job actor: a freed one when there is one.
func (a *agentActor) workerName() string {
	if n := len(a.freeNames); n > 0 {
		name := a.freeNames[n-1]
		a.freeNames = a.freeNames[:n-1]
		return name
	}
	a.named++
	return "job" + strconv.Itoa(a.named)
}

// agentProps runs an agent whose job actors are stopped, never restarted, when they fail.
func agentProps(exec *executor, hist *history, queue, uuid string, spec AgentSpec) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newAgent(exec, hist, queue, uuid, spec) },
		actor.WithSupervisor(stopOnFailure))
}
