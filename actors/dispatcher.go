package actors

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// dispatcherActor is one dispatcher: in each queue it serves it registers and activates its
// record, pings before claiming (so that slow claims never make it look dead), and lets each
// of its agents claim, at every poll and at once when a job is put. Polls run on a timer
// re-armed at each tick. At each poll it also checks its agents' runs against what the store
// lists under them (see checkRuns): it recovers the jobs an agent reports it holds without
// running them (Orphaned), and cancels a run whose job was revoked if the revoke's notice
// (messages.Revoked, from the queue actor) did not reach it. A drain interrupts the running jobs, waits for them up to the grace
// period, then deactivates its records, which cleans its agents.
//
// Takes Poll (its timer), Wake and Revoked (from its queues' actors), Orphaned and AgentIdle
// (from its agents), Drain and GraceOver; sends Claim, ListRuns (answered with Runs),
// Reconcile, Revoked and Interrupt to its agents, Supervise to its supervisor, Serve to its queues' actors (at every
// poll), Polled and RunReassigned to the historian, Drained to whoever asked for the drain.
type dispatcherActor struct {
	o    Options
	exec *executor
	// historian records the polls and runs taken away (historian.go); now is its clock.
	historian *actor.PID
	now       func() time.Time
	queues    []*queueState

	supervisor *actor.PID // judges the siblings after each ping

	sched      *scheduler.TimerScheduler
	cancelPoll scheduler.CancelFunc
	serve      *messages.Serve // what it tells its queues' actors at each poll

	draining    bool
	drainReply  *actor.PID // who asked for the drain
	idle        map[string]bool
	cancelGrace scheduler.CancelFunc
}

// queueState is what a dispatcher knows of one of its queues.
type queueState struct {
	spec      QueueSpec
	activated bool
	// twin: the record was found activated and alive, another process running with this
	// UUID; said once, then activation is tried quietly at each poll until it dies.
	twin     bool
	reported bool // the first activation's outcome was given to Options.Activated
	agents   []*actor.PID
	byName   map[string]*actor.PID // the agents by name
}

func newDispatcher(exec *executor, historian *actor.PID, now func() time.Time, o Options) *dispatcherActor {
	d := &dispatcherActor{o: o, exec: exec, historian: historian, now: now, idle: map[string]bool{}}
	for _, q := range o.Queues {
		d.queues = append(d.queues, &queueState{spec: q})
	}
	return d
}

func (d *dispatcherActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		d.started(c)
	case *messages.Poll:
		d.poll(c)
		if !d.draining {
			d.cancelPoll = d.sched.SendOnce(d.o.PollInterval, c.Self(), &messages.Poll{})
		}
	case *messages.Wake:
		if q := d.queue(m.Queue); q != nil && q.activated && !d.draining {
			for _, a := range q.agents {
				c.Send(a, &messages.Claim{})
			}
		}
	case *messages.Revoked:
		if q := d.queue(m.Ref.Queue); q != nil {
			for _, a := range q.agents {
				c.Send(a, m)
			}
		}
	case *messages.Orphaned:
		d.recover(m)
	case *messages.Drain:
		d.drain(c)
	case *messages.AgentIdle:
		d.idle[m.Queue+"/"+m.Agent] = true
		if len(d.idle) == d.agentCount() {
			d.finishDrain(c)
		}
	case *messages.GraceOver:
		d.finishDrain(c)
	case *actor.Stopping, *actor.Restarting:
		d.stopTimers()
	}
}

func (d *dispatcherActor) started(c actor.Context) {
	d.sched = scheduler.NewTimerScheduler(c.ActorSystem().Root)
	d.serve = &messages.Serve{Dispatcher: c.Self()}
	for _, q := range d.queues {
		for _, a := range q.spec.Agents {
			pid, err := c.SpawnNamed(agentProps(d.exec, d.historian, d.now, q.spec.Name, d.o.UUID, a), "agent/"+q.spec.Name+"/"+a.Name)
			if err != nil {
				d.exec.events.Error("cannot start agent", "queue", q.spec.Name, "agent", a.Name, "error", err)
				continue
			}
			q.agents = append(q.agents, pid)
			if q.byName == nil {
				q.byName = map[string]*actor.PID{}
			}
			q.byName[a.Name] = pid
		}
	}
	sup := actor.PropsFromProducer(func() actor.Actor { return newSupervisor(d.exec, d.o.UUID, d.o.PingDeathInterval) })
	if pid, err := c.SpawnNamed(sup, "supervisor"); err != nil {
		d.exec.events.Error("cannot start the supervisor: dead siblings will not be detected by this process", "error", err)
	} else {
		d.supervisor = pid
	}
	c.Send(c.Self(), &messages.Poll{})
}

// poll activates what is not activated yet, pings, records the poll in the history, and lets
// the agents claim (after the record, so that a job claimed now is among the next poll's
// new jobs).
func (d *dispatcherActor) poll(c actor.Context) {
	if d.draining {
		return
	}
	defer d.exec.observePoll(time.Now())
	polled := make(map[string]messages.PolledQueue, len(d.queues))
	var claimers []*actor.PID
	for _, q := range d.queues {
		// Wake-ups make an idle dispatcher claim a new job within milliseconds; polls
		// remain the safety net when one is lost.
		if pid := d.o.QueueActors[q.spec.Name]; pid != nil {
			c.Send(pid, d.serve)
		}
		if !q.activated && !d.activate(q) {
			polled[q.spec.Name] = messages.PolledQueue{Unavailable: true}
			continue
		}
		ctx, cancel := d.exec.op()
		res, err := d.exec.store.Ping(ctx, q.spec.Name, d.o.UUID)
		cancel()
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			q.activated = false // the record was removed: register again at the next poll
			polled[q.spec.Name] = messages.PolledQueue{Unavailable: true}
			continue
		case err != nil:
			d.exec.events.Warn("ping failed", "queue", q.spec.Name, "uuid", d.o.UUID, "error", err)
			polled[q.spec.Name], _ = d.pollAgents(c, q, false)
			continue
		case res.Reactivated:
			d.exec.events.Log(ctx, persistence.LevelCritical, fmt.Sprintf("Dispatcher %s not activated prior to ping. This can indicate that "+
				"the dispatcher's ping_death_interval is set too short, or that some transactions in the system are taking too long "+
				"to commit. Activating.", d.o.UUID), "queue", q.spec.Name)
		}
		var unrun map[string][]persistence.Fence
		polled[q.spec.Name], unrun = d.pollAgents(c, q, true)
		for name, jobs := range unrun {
			if pid := q.byName[name]; pid != nil {
				c.Send(pid, &messages.Reconcile{Jobs: jobs})
			}
		}
		claimers = append(claimers, q.agents...)
		if d.supervisor != nil {
			c.Send(d.supervisor, &messages.Supervise{Queue: q.spec.Name})
		}
	}
	c.Send(d.historian, &messages.Polled{Queues: polled})
	for _, a := range claimers {
		c.Send(a, &messages.Claim{})
	}
}

// recover recovers the jobs an agent holds in the store and does not run, as the cleaning of
// a stopped dispatcher would: an ACTIVE job gets a handleInterrupt job (its retry policy
// counts an interruption), a job in CALLBACKS a resumeCallbacks job, an ASSIGNED one goes back
// to its queue. The store cleans each only while it is still the run its fence names, so a
// job that moved on meanwhile is left alone. A drain cleans them all anyway.
func (d *dispatcherActor) recover(m *messages.Orphaned) {
	if d.draining {
		return
	}
	ctx, cancel := d.exec.op()
	defer cancel()
	report, err := d.exec.store.CleanJobs(ctx, m.Jobs)
	if report != nil && report.Len() > 0 {
		d.exec.events.Warn("recovered jobs an agent held without running them", "queue", m.Queue, "agent", m.Agent,
			"uuid", d.o.UUID, "requeued", report.Requeued, "interrupted", report.Interrupted, "resumed", report.Resumed)
	}
	if err != nil {
		d.exec.events.Warn("cannot recover jobs an agent holds without running them; trying again at the next poll",
			"queue", m.Queue, "agent", m.Agent, "error", err)
	}
}

// hostName is this machine's name as its dispatchers' records give it ("" if unknown).
var hostName, _ = os.Hostname()

// activate registers and activates the dispatcher's record in q. A record activated and
// alive means another process runs with this UUID: that is logged and tried again at every
// poll until the record dies.
func (d *dispatcherActor) activate(q *queueState) bool {
	err := d.tryActivate(q)
	if !q.reported {
		q.reported = true
		if d.o.Activated != nil {
			d.o.Activated(q.spec.Name, err)
		}
	}
	return err == nil
}

// tryActivate is activate's attempt: nil once the record is activated by this dispatcher.
func (d *dispatcherActor) tryActivate(q *queueState) error {
	ctx, cancel := d.exec.op()
	defer cancel()
	cfg := persistence.DispatcherConfig{PingInterval: d.o.PingInterval, PingDeathInterval: d.o.PingDeathInterval,
		Host: hostName, PID: os.Getpid()}
	for _, a := range q.spec.Agents {
		cfg.Agents = append(cfg.Agents, persistence.AgentSpec{Name: a.Name, Size: a.Size})
	}
	err := d.exec.store.Register(ctx, q.spec.Name, d.o.UUID, cfg)
	registered := errors.Is(err, persistence.ErrAlreadyRegistered)
	if err != nil && !registered {
		d.exec.events.Error("cannot register dispatcher", "queue", q.spec.Name, "uuid", d.o.UUID, "error", err)
		return err
	}
	// An existing record keeps the intervals it was activated with until this process has
	// taken it over: another process running with this UUID is judged by its own.
	report, err := d.exec.store.Activate(ctx, q.spec.Name, d.o.UUID)
	switch {
	case errors.Is(err, persistence.ErrAlreadyActivated):
		if !q.twin {
			q.twin = true
			d.exec.events.Error(fmt.Sprintf("UUID %s already activated in queue %s: another process?  (To stop poll attempts in this "+
				"process, stop its zasync runtime.  To stop polls permanently, don't start a zasync runtime with this UUID!)  "+
				"This process takes the queue over once that one stops pinging for %s; it says nothing more until then.",
				d.o.UUID, q.spec.Name, d.o.PingDeathInterval), "queue", q.spec.Name, "uuid", d.o.UUID)
		}
		return err
	case err != nil:
		d.exec.events.Error("cannot activate dispatcher", "queue", q.spec.Name, "uuid", d.o.UUID, "error", err)
		return err
	}
	if registered {
		if err := d.exec.store.Configure(ctx, q.spec.Name, d.o.UUID, cfg); err != nil {
			d.exec.events.Error("cannot record this dispatcher's intervals and agents", "queue", q.spec.Name, "uuid", d.o.UUID, "error", err)
		}
	}
	if n := report.Len(); n > 0 {
		d.exec.events.Warn("cleaned jobs left by an earlier run of this dispatcher", "queue", q.spec.Name, "uuid", d.o.UUID, "jobs", n)
	}
	if q.twin {
		q.twin = false
		d.exec.events.Warn(fmt.Sprintf("took over UUID %s in queue %s: the other process running with it stopped pinging", d.o.UUID, q.spec.Name),
			"queue", q.spec.Name, "uuid", d.o.UUID)
	}
	d.exec.events.Info(fmt.Sprintf("activated dispatcher %s", d.o.UUID), "queue", q.spec.Name)
	q.activated = true
	return nil
}

// drain starts a clean shutdown.
func (d *dispatcherActor) drain(c actor.Context) {
	if d.draining {
		return
	}
	d.draining, d.drainReply = true, c.Sender()
	d.stopTimers()
	for _, q := range d.queues {
		for _, a := range q.agents {
			c.Send(a, &messages.Interrupt{})
		}
	}
	if d.agentCount() == 0 {
		d.finishDrain(c)
		return
	}
	d.cancelGrace = d.sched.SendOnce(d.o.ShutdownGrace, c.Self(), &messages.GraceOver{})
}

// finishDrain deactivates the dispatcher's records, which cleans its agents (assigned jobs
// back to the queue, active ones to handleInterrupt jobs, jobs in callbacks to
// resumeCallbacks jobs), and answers the drain.
func (d *dispatcherActor) finishDrain(c actor.Context) {
	if d.drainReply == nil {
		return
	}
	d.stopTimers()
	var errs []error
	for _, q := range d.queues {
		if !q.activated {
			continue
		}
		ctx, cancel := d.exec.op()
		report, err := d.exec.store.Deactivate(ctx, q.spec.Name, d.o.UUID)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("deactivate %s in queue %s: %w", d.o.UUID, q.spec.Name, err))
			continue
		}
		q.activated = false
		d.exec.events.Info(fmt.Sprintf("deactivated dispatcher %s", d.o.UUID), "queue", q.spec.Name,
			"requeued", len(report.Requeued), "interrupted", len(report.Interrupted), "resumed", len(report.Resumed))
	}
	c.Send(d.drainReply, &messages.Drained{Err: errors.Join(errs...)})
	d.drainReply = nil
}

func (d *dispatcherActor) stopTimers() {
	if d.cancelPoll != nil {
		d.cancelPoll()
		d.cancelPoll = nil
	}
	if d.cancelGrace != nil {
		d.cancelGrace()
		d.cancelGrace = nil
	}
}

func (d *dispatcherActor) queue(name string) *queueState {
	for _, q := range d.queues {
		if q.spec.Name == name {
			return q
		}
	}
	return nil
}

func (d *dispatcherActor) agentCount() int {
	n := 0
	for _, q := range d.queues {
		n += len(q.agents)
	}
	return n
}

// At each poll the dispatcher describes its agents for the history, and checks their runs
// against what the store lists under them.

// pollAgents describes q's agents for a poll. With check, it also reads what the store lists
// under each agent, marks the runs whose jobs were taken away, and returns, by agent, the jobs
// the store lists with no run recorded, for the agents to reconcile (checkRuns).
func (d *dispatcherActor) pollAgents(c actor.Context, q *queueState, check bool) (messages.PolledQueue, map[string][]persistence.Fence) {
	out := messages.PolledQueue{Agents: make(map[string]messages.PolledAgent, len(q.spec.Agents))}
	var unrun map[string][]persistence.Fence
	for _, a := range q.spec.Agents {
		held := -1
		if check {
			var fences []persistence.Fence
			held, fences = d.checkRuns(c, q, a.Name)
			if len(fences) > 0 {
				if unrun == nil {
					unrun = map[string][]persistence.Fence{}
				}
				unrun[a.Name] = fences
			}
		}
		out.Agents[a.Name] = messages.PolledAgent{Size: a.Size, Len: held}
	}
	return out, unrun
}

// checkRuns marks as reassigned the runs of an agent whose jobs the store no longer lists
// under the agent (a sibling presumed this dispatcher dead and cleaned it). It returns how
// many jobs the store lists, or -1 when that read failed.
//
// A run that has just completed or rescheduled its job also leaves the agent's list before
// its run reports the end, so such a job is read once more: it was taken away when it
// is gone, when another claim or adoption has given it a new attempt, or when its owner is no
// longer this agent while it is not back in its queue (a run's own reschedule clears the
// owner and leaves the job PENDING with its attempt, as cleaning an ASSIGNED job does; that
// one run is left to its fenced start, which ends it as reassigned).
//
// The other way round, it returns the fences of the jobs the store lists under the agent, held
// and owned by it and not parked, while no run of theirs is recorded: their claims' replies
// may still be on their way, or they are orphans, which the agent tells apart (see
// agentActor.reconcile).
func (d *dispatcherActor) checkRuns(c actor.Context, q *queueState, agent string) (int, []persistence.Fence) {
	queue := q.spec.Name
	// The agent's runs before the store's list: a run claimed later is listed.
	runs, err := d.agentRuns(c, q, agent)
	if err != nil {
		d.exec.events.Warn("cannot list an agent's runs", "queue", queue, "agent", agent, "error", err)
		return -1, nil
	}
	ctx, cancel := d.exec.op()
	defer cancel()
	o := persistence.Owner{Dispatcher: d.o.UUID, Agent: agent}
	held, err := d.exec.store.AgentJobs(ctx, queue, o)
	if err != nil {
		d.exec.events.Warn("cannot read an agent's jobs", "queue", queue, "agent", agent, "error", err)
		return -1, nil
	}
	var suspects []messages.Run
	for _, r := range runs {
		if !slices.Contains(held, r.Fence.ID) {
			suspects = append(suspects, r)
		}
	}
	var unrun []string
	if len(held) > 0 {
		recorded := make(map[string]bool, len(runs))
		for _, r := range runs {
			recorded[r.Fence.ID] = true
		}
		for _, id := range held {
			if !recorded[id] {
				unrun = append(unrun, id)
			}
		}
	}
	if len(suspects) == 0 && len(unrun) == 0 {
		return len(held), nil
	}
	ids := make([]string, 0, len(suspects)+len(unrun))
	for _, r := range suspects {
		ids = append(ids, r.Fence.ID)
	}
	ids = append(ids, unrun...)
	jobs, err := d.exec.store.GetMany(ctx, queue, ids)
	if err != nil {
		d.exec.events.Warn("cannot read jobs missing from an agent", "queue", queue, "agent", agent, "error", err)
		return len(held), nil
	}
	for i, r := range suspects {
		switch j := jobs[i]; {
		case revokedFrom(j, r.Fence):
			// Its run missed the revoke's notice (it came while the queue's actor was not
			// subscribed yet): the run is cancelled now.
			if a := q.byName[agent]; a != nil {
				c.Send(a, &messages.Revoked{Ref: j.Ref})
			}
		case lost(j, r.Fence):
			c.Send(d.historian, &messages.RunReassigned{Worker: r.Worker})
		}
	}
	var fences []persistence.Fence
	for _, j := range jobs[len(suspects):] {
		// A job a run adopted is left out by its agent (see agentActor.reconcile).
		if j != nil && j.Owner == o && j.Holder == o && !j.Parked {
			fences = append(fences, j.Fence())
		}
	}
	return len(held), fences
}

// revokedFrom tells whether job j, as stored, was cancelled by a revoke while the run of
// fence f held it.
func revokedFrom(j *persistence.Job, f persistence.Fence) bool {
	return j != nil && j.Owner != f.Owner && j.HasResult() && errors.Is(j.Failure, persistence.ErrCancelled)
}

// lost tells whether job j, as stored, was taken from the run that claimed it with fence f.
func lost(j *persistence.Job, f persistence.Fence) bool {
	switch {
	case j == nil || j.Attempt != f.Attempt:
		return true
	case j.Owner == f.Owner:
		return false
	default:
		return j.Status != persistence.StatusPending
	}
}

// agentRuns asks an agent of q for its runs going on.
func (d *dispatcherActor) agentRuns(c actor.Context, q *queueState, agent string) ([]messages.Run, error) {
	pid := q.byName[agent]
	if pid == nil {
		return nil, fmt.Errorf("agent %q did not start", agent)
	}
	res, err := c.RequestFuture(pid, listRuns, agentAnswerTimeout).Result()
	if err != nil {
		return nil, err
	}
	return res.(*messages.Runs).Runs, nil
}

// listRuns asks an agent for its runs; one value serves every request.
var listRuns = &messages.ListRuns{}

// agentAnswerTimeout bounds the wait for an agent's answer. An agent never blocks, so it
// answers at once unless the process is starved: the check is then skipped until the next poll.
const agentAnswerTimeout = 10 * time.Second
