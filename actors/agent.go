package actors

import (
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// agentActor claims jobs from one queue for one agent of its dispatcher, up to its size, and
// hands each to one of its job actors (job.go), which runs it. A run's end frees a slot and
// the agent claims again at once, so a busy queue does not wait for polls. After each poll it is
// told which jobs the store lists under it with no run recorded (Reconcile), and answers with
// those it holds without running them (Orphaned), for the dispatcher to recover. It handles
// its messages on their senders' goroutines (see agentProps): nothing it does may block or
// wait.
//
// Takes Claim, ListRuns (answered with Runs), Reconcile, Revoked, Interrupt (from the dispatcher),
// ClaimStarted, Claimed (a claim's outcome) and ClaimsLeft (from the committer), ClaimFreed
// (its own reminder to claim for freed slots), JobFinished (from its job actors), Adopting and
// AdoptionEnded (from its job actors' runs) and Terminated (a job actor stopped); sends
// JoinClaims, AskClaims and LeaveClaims to the committer, TakeJob, Revoked and Interrupt to
// its job actors, RunsClaimed, ClaimOutcome and JobFinished to the historian, AgentIdle and Orphaned to
// the dispatcher.
type agentActor struct {
	exec *executor
	// historian records its claims, their outcomes and its runs' ends (historian.go); now
	// is its clock.
	historian *actor.PID
	now       func() time.Time
	// claimErr is the claim outcome the historian was last told (claimUntold: none yet).
	claimErr string
	queue    string
	owner    persistence.Owner
	spec     AgentSpec
	// running: run id (its job actor's PID id) → the run. Keyed by run, not by job: a job
	// taken from this agent and claimed back while its first run still goes on runs twice.
	running map[string]run
	// jobProps make the agent's job actors; idle are those that hold no job now.
	jobProps *actor.Props
	idle     []*actor.PID
	// draining: the dispatcher is shutting down; no more claims, report when idle.
	draining bool
	// claimQueued: a claimFreed is on its way, for the slots freed meanwhile.
	claimQueued bool
	// named: job actors started so far by this agent, across its restarts; the n-th is
	// named job<n>. Never reused: a run that outlives its job actor reports its end to that
	// name, which must not reach another job actor.
	named *int
	// committer makes the agent's claims in its batches: asked with AskClaims, each
	// announced with ClaimStarted and answered with Claimed.
	committer *actor.PID
	// onWay are the numbers of the claims the committer announced (ClaimStarted) whose
	// outcome the agent has not handled yet. Two may be on their way at once, answered in
	// either order.
	onWay []uint64
	// ended are the runs ended since the committer was last told (their slots are free).
	ended []runKey
	// left: the committer has confirmed that it claims no more for the draining agent.
	left bool
	// suspects are jobs the store lists under the agent without a run here, to be reported
	// orphaned once the claims started before they were read have all been handled (those
	// of waitFor): until then, one of those claims may still bring their runs.
	suspects []persistence.Fence
	waitFor  []uint64
	// endedSince are the runs ended since the suspects were listed: their jobs left the
	// store's list, or were left for the next list.
	endedSince []runKey
	// adopted counts the jobs its runs have adopted and still work on (messages.Adopting):
	// listed under the agent with no run of their own, and no orphans.
	adopted map[persistence.Ref]int
}

func newAgent(exec *executor, historian *actor.PID, now func() time.Time, queue, uuid string, spec AgentSpec, named *int) *agentActor {
	a := &agentActor{exec: exec, historian: historian, now: now, queue: queue, owner: persistence.Owner{Dispatcher: uuid, Agent: spec.Name}, spec: spec,
		running: map[string]run{}, named: named, committer: exec.commits.PID(), claimErr: claimUntold}
	a.ended = a.newEnded()
	a.jobProps = jobProps(exec)
	return a
}

func (a *agentActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		c.Send(a.committer, &messages.JoinClaims{Agent: c.Self(), Claim: persistence.ClaimParams{
			Queue: a.queue, Dispatcher: a.owner.Dispatcher, Agent: a.owner.Agent, Size: a.spec.Size, Filter: a.spec.Filter,
			Start: true, // every job claimed is run at once: start it in the claim's transaction
		}})
	case *actor.Stopping, *actor.Restarting:
		// Its job actors stop with it, and cancel their runs.
		c.Send(a.committer, &messages.LeaveClaims{Agent: c.Self(), Stopped: true})
	case *messages.ClaimStarted:
		a.onWay = append(a.onWay, m.Claim)
	case *messages.Claimed:
		a.claimed(c, m)
	case *messages.ClaimsLeft:
		a.left = true
		a.reportIdle(c)
	case *messages.Claim:
		a.claim(c)
	case *messages.ListRuns:
		runs := make([]messages.Run, 0, len(a.running))
		for w, r := range a.running {
			runs = append(runs, messages.Run{Worker: w, Fence: persistence.Fence{
				Ref: persistence.Ref{Queue: a.queue, ID: r.key.ID}, Owner: a.owner, Attempt: r.key.Attempt}})
		}
		c.Respond(&messages.Runs{Runs: runs})
	case *messages.Reconcile:
		a.reconcile(c, m.Jobs)
	case *messages.Adopting:
		if a.adopted == nil {
			a.adopted = map[persistence.Ref]int{}
		}
		a.adopted[m.Ref]++
	case *messages.AdoptionEnded:
		// Not counted when the adoption was told to an earlier incarnation.
		if n, ok := a.adopted[m.Ref]; ok {
			if n > 1 {
				a.adopted[m.Ref] = n - 1
			} else {
				delete(a.adopted, m.Ref)
			}
		}
	case *messages.ClaimFreed:
		a.claimQueued = false
		a.claim(c)
		if len(a.ended) >= a.spec.Size {
			a.tellEnded(c)
		}
	case *messages.JobFinished:
		if r, ok := a.running[m.Worker]; ok {
			a.idle = append(a.idle, r.pid)
			a.finished(c, m)
		}
	case *actor.Terminated:
		// A job actor stopped, which only a panic makes it do. Its run, if it held a job, is
		// cancelled; the job, held with no run, is recovered at the next poll.
		a.idle = slices.DeleteFunc(a.idle, func(p *actor.PID) bool { return p.Id == m.Who.Id })
		if _, ok := a.running[m.Who.Id]; ok {
			a.finished(c, &messages.JobFinished{Worker: m.Who.Id, Ending: Interrupted.String(), Failed: true,
				Result: errJobActorStopped.Error(), At: time.Now()})
		}
	case *messages.Revoked:
		for _, r := range a.running {
			if r.key.ID == m.Ref.ID {
				c.Send(r.pid, m)
			}
		}
	case *messages.Interrupt:
		a.draining = true
		c.Send(a.committer, &messages.LeaveClaims{Agent: c.Self()})
		for _, r := range a.running {
			c.Send(r.pid, m)
		}
		a.reportIdle(c)
	}
}

// finished records how run worker ended, frees its slot and claims again, once the messages
// already queued are handled: jobs that finish together free their slots for one claim.
func (a *agentActor) finished(c actor.Context, m *messages.JobFinished) {
	r, ok := a.running[m.Worker]
	if !ok {
		return
	}
	// The job actor's message, passed on as it is: one message a run, nothing made.
	c.Send(a.historian, m)
	a.exec.observeEnding(a.queue, a.spec.Name, m.Ending)
	delete(a.running, m.Worker)
	a.ended = append(a.ended, r.key)
	if a.suspects != nil {
		a.endedSince = append(a.endedSince, r.key)
	}
	if a.draining {
		a.reportIdle(c)
		return
	}
	if !a.claimQueued {
		a.claimQueued = true
		c.Send(c.Self(), claimFreed)
	}
}

// claimUntold is an agent's claimErr before it has told the historian of any claim: the
// first outcome is always told (a restarted agent's history may hold an old error).
const claimUntold = "\x00"

// claimOutcome tells the historian how the last claim went, when that changed.
func (a *agentActor) claimOutcome(c actor.Context, err error) {
	text := ""
	if err != nil {
		text = err.Error()
	}
	if text != a.claimErr {
		a.claimErr = text
		c.Send(a.historian, &messages.ClaimOutcome{Queue: a.queue, Agent: a.spec.Name, Err: text})
	}
}

// run is a run going on in an agent: its job actor, and its job and attempt as claimed.
type run struct {
	pid *actor.PID
	key runKey
}

// claimFreed is the agent's reminder to itself; one value serves every agent.
var claimFreed = &messages.ClaimFreed{}

// reportIdle tells the dispatcher, during a drain, that no job runs any more (nor will: the
// committer claims no more for it, and no claim is on its way).
func (a *agentActor) reportIdle(c actor.Context) {
	if a.left && len(a.running) == 0 && len(a.onWay) == 0 {
		c.Send(c.Parent(), &messages.AgentIdle{Queue: a.queue, Agent: a.spec.Name})
	}
}

// claim asks the committer to claim for the free slots, telling it of the runs ended since
// it last did; the jobs come back as a claimed message. The committer learns of most ends
// sooner, from the runs' commits, and often claims for the freed slots in the batch that
// commits them: the ends are told along with the next ask (or once they are as many as the
// agent's slots), so that they free the slots of runs that ended with no commit, not in a
// message of their own per cohort.
func (a *agentActor) claim(c actor.Context) {
	if a.draining || len(a.running) >= a.spec.Size {
		return
	}
	c.Send(a.committer, &messages.AskClaims{Agent: c.Self(), Want: true, Ended: a.takeEnded()})
}

// tellEnded tells the committer of the runs ended since it last heard of them.
func (a *agentActor) tellEnded(c actor.Context) {
	if len(a.ended) > 0 {
		c.Send(a.committer, &messages.AskClaims{Agent: c.Self(), Ended: a.takeEnded()})
	}
}

// takeEnded returns the runs ended since the committer was last told, and forgets them.
func (a *agentActor) takeEnded() []runKey {
	if len(a.ended) == 0 {
		return nil
	}
	ended := a.ended
	a.ended = a.newEnded() // the committer keeps ended
	return ended
}

// newEnded is an empty list of ended runs, with room for a cohort's.
func (a *agentActor) newEnded() []runKey { return make([]runKey, 0, min(a.spec.Size, 64)) }

// claimed starts a run for each job claimed for the agent. Jobs claimed while the
// agent drains were on their way when it was interrupted: they start, and are cancelled at
// once, as the jobs it was running.
func (a *agentActor) claimed(c actor.Context, m *messages.Claimed) {
	// A claim started for the agent's former incarnation, before a restart, was never
	// announced to this one: it is in neither list.
	a.onWay = slices.DeleteFunc(a.onWay, func(n uint64) bool { return n == m.Claim })
	a.waitFor = slices.DeleteFunc(a.waitFor, func(n uint64) bool { return n == m.Claim })
	if a.suspects != nil {
		defer a.reportOrphans(c)
	}
	if m.Retried { // asked again already
		if a.draining {
			a.reportIdle(c)
		}
		return
	}
	jobs, err := m.Jobs, m.Err
	switch {
	case errors.Is(err, persistence.ErrFull):
		// the store counts parked and held jobs
	case errors.Is(err, persistence.ErrNotActivated):
		a.claimOutcome(c, err) // the dispatcher's ping reactivates
	case err != nil:
		a.claimOutcome(c, err)
		a.exec.events.Warn("claim failed", "queue", a.queue, "agent", a.owner.String(), "error", err)
	}
	if err != nil {
		if a.draining {
			a.reportIdle(c)
		}
		return
	}
	a.claimOutcome(c, nil)
	a.exec.observe(Event{Kind: EventClaimed, Queue: a.queue, Agent: a.spec.Name, N: len(jobs)})
	runs := make([]messages.ClaimedRun, 0, len(jobs))
	for _, j := range jobs {
		at := a.now()
		pid := a.jobActor(c)
		if pid == nil { // the job is recovered at the next poll; its slot is free
			a.ended = append(a.ended, runKey{ID: j.ID, Attempt: j.Attempt})
			continue
		}
		a.running[pid.Id] = run{pid: pid, key: runKey{ID: j.ID, Attempt: j.Attempt}}
		c.Send(pid, &messages.TakeJob{Job: j})
		if a.draining {
			c.Send(pid, interrupt)
		}
		runs = append(runs, messages.ClaimedRun{Job: j, Worker: pid.Id, Started: at})
	}
	// The history last: the runs start sooner, and their ends, reported to this agent, reach
	// the historian after this message all the same.
	if len(runs) > 0 {
		c.Send(a.historian, &messages.RunsClaimed{Queue: a.queue, Agent: a.spec.Name, Runs: runs})
	}
	if a.draining {
		a.reportIdle(c)
	}
}

// jobActor returns an idle job actor of the agent, or a new one.
func (a *agentActor) jobActor(c actor.Context) *actor.PID {
	if n := len(a.idle); n > 0 {
		pid := a.idle[n-1]
		a.idle = a.idle[:n-1]
		return pid
	}
	*a.named++
	pid, err := c.SpawnNamed(a.jobProps, "job"+strconv.Itoa(*a.named))
	if err != nil { // names are never reused: a bug
		a.exec.events.Error("cannot start a job actor", "agent", a.owner.String(), "error", err)
		return nil
	}
	return pid
}

// reconcile takes the jobs the store listed under the agent at the last poll without a run
// recorded for them, and reports those that are orphaned: no run of theirs goes on here, nor
// will one, once every claim started by now has been handled. A job whose claim's reply was
// lost is one; a job listed while its claim's reply is on its way is not. A newer list
// replaces an older one.
func (a *agentActor) reconcile(c actor.Context, jobs []persistence.Fence) {
	if a.draining {
		return // the drain's cleaning takes everything the agent holds
	}
	// A job adopted when the store was read is adopted still, or its adopting run is over
	// and the fence read is stale, which the recovery's own fence then tells.
	a.suspects, a.waitFor = slices.DeleteFunc(jobs, a.isAdopted), slices.Clone(a.onWay)
	a.endedSince = a.endedSince[:0]
	a.reportOrphans(c)
}

// reportOrphans tells the dispatcher which suspects are orphaned, once the claims that could
// still bring their runs have been handled.
func (a *agentActor) reportOrphans(c actor.Context) {
	if len(a.waitFor) > 0 || a.draining {
		return
	}
	jobs := a.suspects
	a.suspects = nil
	known := make(map[runKey]bool, len(a.running)+len(a.endedSince))
	for _, r := range a.running {
		known[r.key] = true
	}
	for _, k := range a.endedSince {
		known[k] = true
	}
	a.endedSince = a.endedSince[:0]
	jobs = slices.DeleteFunc(jobs, func(f persistence.Fence) bool { return known[runKey{ID: f.ID, Attempt: f.Attempt}] || a.isAdopted(f) })
	if len(jobs) > 0 {
		c.Send(c.Parent(), &messages.Orphaned{Queue: a.queue, Agent: a.spec.Name, Jobs: jobs})
	}
}

// isAdopted tells whether a run of the agent has adopted job f and works on it still.
func (a *agentActor) isAdopted(f persistence.Fence) bool {
	return a.adopted[f.Ref] > 0
}

// agentProps runs an agent. Its messages are handled on the sender's goroutine (one at a
// time all the same: the mailbox sees to it), not on a goroutine started for each wake-up:
// an agent only keeps books and hands runs out, never waits, and is woken several times
// per job (the committer's claims, the runs' ends). Starting and waking a goroutine for each
// cost a busy node about a tenth of its throughput.
func agentProps(exec *executor, historian *actor.PID, now func() time.Time, queue, uuid string, spec AgentSpec) *actor.Props {
	opts := []actor.PropsOption{
		actor.WithDispatcher(actor.NewSynchronizedDispatcher(agentThroughput)),
		actor.WithSupervisor(jobSupervision(exec.events, "agent/"+queue+"/"+spec.Name)),
	}
	if agentMiddleware != nil {
		opts = append(opts, actor.WithReceiverMiddleware(agentMiddleware))
	}
	named := new(int) // one count for the agent's every incarnation
	return actor.PropsFromProducer(func() actor.Actor { return newAgent(exec, historian, now, queue, uuid, spec, named) }, opts...)
}

// agentMiddleware, when set (by tests, before a node starts), sees every message of the
// agents: how a test makes one fail.
var agentMiddleware actor.ReceiverMiddleware

// interrupt is the Interrupt an agent passes on to its job actors.
var interrupt = &messages.Interrupt{}

// agentThroughput is how many messages an agent handles before it lets other goroutines
// run: protoactor's default.
const agentThroughput = 300
