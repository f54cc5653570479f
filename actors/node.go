package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// Node is a running dispatcher with its agents, under zasync's root actor (Options.Root) or,
// without one, in an actor system of its own. Its introspection
// methods (JobInfo, ActiveJobIDs, Statistics, Polls, PollInfo, StatusInfo) read what this
// process saw, kept in memory; they are safe for concurrent use, also after Stop.
type Node struct {
	root       *Root
	ownRoot    bool // StartNode made root: Stop stops it
	stopped    bool
	dispatcher *actor.PID
	grace      time.Duration
	cancel     context.CancelFunc // ends the executor's base context: abandons store calls
	hist       *history
	queues     []*Queue // the queue actors StartNode made, stopped with the node
	committer  *actor.PID
	historian  *actor.PID
}

// ErrStopped reports a second Stop of a node.
var ErrStopped = errors.New("zasync: node already stopped")

// StartNode starts a dispatcher with o. It returns at once; activation, pings and claims
// happen in the dispatcher's actor (an activation refused because another process runs with
// the same UUID is logged and tried again at every poll).
func StartNode(o Options) (*Node, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	exec := newExecutor(base, o)
	hist := newHistory(o.UUID, o.PollInterval, nil)
	root, own := o.Root, false
	if root == nil {
		var err error
		if root, err = StartRoot(nil, "", o.Logger); err != nil {
			cancel()
			return nil, err
		}
		own = true
	}
	var started []*actor.PID // stopped again if the node cannot start
	fail := func(err error) (*Node, error) {
		cancel()
		if own {
			root.Stop()
		} else {
			for _, pid := range slices.Backward(started) {
				root.System().Root.PoisonFuture(pid).Wait()
			}
		}
		return nil, err
	}
	o.QueueActors = maps.Clone(o.QueueActors)
	if o.QueueActors == nil {
		o.QueueActors = map[string]*actor.PID{}
	}
	var made []*Queue
	for _, q := range o.Queues {
		if o.QueueActors[q.Name] != nil {
			continue
		}
		qa, err := StartQueue(root, QueueOptions{Store: o.Store, Queue: q.Name, Logger: o.Logger})
		if err != nil {
			return fail(fmt.Errorf("start the actor of queue %q: %w", q.Name, err))
		}
		o.QueueActors[q.Name] = qa.PID()
		made = append(made, qa)
		started = append(started, qa.PID())
	}
	historian, err := startHistorian(root, "history/"+o.UUID, hist)
	if err != nil {
		return fail(fmt.Errorf("start the historian of %s: %w", o.UUID, err))
	}
	started = append(started, historian)
	commits, err := startCommitter(root, "committer/"+o.UUID, base, o.Store, exec.op, lingerMax, exec.events)
	if err != nil {
		return fail(fmt.Errorf("start the committer of %s: %w", o.UUID, err))
	}
	exec.commits = commits
	started = append(started, commits.PID())
	props := actor.PropsFromProducer(func() actor.Actor { return newDispatcher(exec, historian, hist.now, o) },
		actor.WithSupervisor(supervision(exec.events, "dispatcher")))
	pid, err := root.Spawn(props, "dispatcher/"+o.UUID)
	if err != nil {
		return fail(fmt.Errorf("start dispatcher %s: %w", o.UUID, err))
	}
	return &Node{root: root, ownRoot: own, dispatcher: pid, grace: o.ShutdownGrace, cancel: cancel, hist: hist,
		queues: made, committer: commits.PID(), historian: historian}, nil
}

func (o *Options) validate() error {
	switch {
	case o.Store == nil || o.Handlers == nil || o.Policies == nil:
		return fmt.Errorf("%w: node options need a store, handlers and retry policies", persistence.ErrInvalid)
	case o.PollInterval <= 0 || o.PingInterval <= 0 || o.PingDeathInterval <= 0 || o.ShutdownGrace < 0:
		return fmt.Errorf("%w: node intervals must be positive", persistence.ErrInvalid)
	case len(o.Queues) == 0:
		return fmt.Errorf("%w: a node serves at least one queue", persistence.ErrInvalid)
	}
	return persistence.ValidateUUID(o.UUID)
}

// Stop shuts the node down cleanly: no more claims, the running handlers' contexts are
// cancelled, their jobs are waited for up to the grace period, then the dispatcher's records
// are deactivated and its agents cleaned (interrupted jobs get handleInterrupt jobs). A
// handler still running after that is abandoned: if it later tries to commit, the fence
// refuses it. ctx bounds the whole wait.
func (n *Node) Stop(ctx context.Context) error {
	if n.stopped {
		return ErrStopped
	}
	n.stopped = true
	sys := n.root.System()
	// From now on it polls no more: its status reads STOPPED.
	n.hist.stop()
	wait := n.grace + time.Minute // the grace period, then the cleaning's store calls
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	var err error
	res, ferr := sys.Root.RequestFuture(n.dispatcher, &messages.Drain{}, max(wait, time.Millisecond)).Result()
	switch {
	case ferr != nil:
		err = fmt.Errorf("stop dispatcher: %w", ferr)
	default:
		if d, ok := res.(*messages.Drained); ok {
			err = d.Err
		}
	}
	if perr := sys.Root.PoisonFuture(n.dispatcher).Wait(); perr != nil && err == nil {
		err = fmt.Errorf("stop dispatcher: %w", perr)
	}
	n.cancel()
	// The actors it made stop with it: with its own root, or here. The runs left have their
	// commits refused since the context ended; the history stays readable (the Node reads
	// it, not the historian); the queue actors' wake-up listeners close their subscriptions
	// before the store is closed. Queue actors it was given are their maker's to stop.
	if n.ownRoot {
		if rerr := n.root.Stop(); rerr != nil && err == nil {
			err = rerr
		}
	} else {
		for _, pid := range []*actor.PID{n.committer, n.historian} {
			if perr := sys.Root.PoisonFuture(pid).Wait(); perr != nil && err == nil {
				err = fmt.Errorf("stop %s: %w", pid.Id, perr)
			}
		}
		for _, q := range n.queues {
			sys.Root.Poison(q.PID())
		}
	}
	for _, q := range n.queues {
		select {
		case <-q.Done():
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
	return err
}

// JobInfo describes the newest run of job id by this node (zc.async's getJobInfo), if
// the node remembers it: the JobHistorySize runs claimed last, and every run still going.
func (n *Node) JobInfo(id string) (JobInfo, bool) { return n.hist.jobInfo(id) }

// ActiveJobIDs lists the jobs whose runs go on in this node right now, in claim order,
// in queue and agent (an empty string matches all). It says what runs here, not what the
// store says: a job taken away from this node is listed until its run ends.
func (n *Node) ActiveJobIDs(queue, agent string) []string { return n.hist.activeJobIDs(queue, agent) }

// Statistics sums up the runs this node's agents claimed in [since, before) (a zero time
// leaves that end open), in queue and agent (an empty string matches all), from what the
// node remembers.
func (n *Node) Statistics(since, before time.Time, queue, agent string) Statistics {
	return n.hist.statistics(since, before, queue, agent)
}

// Polls returns the polls recorded in [since, before) (a zero time leaves that end open),
// newest first, at most count of them (count <= 0: all the node remembers, PollHistorySize
// at most).
func (n *Node) Polls(since, before time.Time, count int) []PollInfo {
	return n.hist.pollsIn(since, before, count)
}

// PollInfo returns poll id, if the node still remembers it.
func (n *Node) PollInfo(id int64) (PollInfo, bool) { return n.hist.poll(id) }

// StatusInfo describes the node's dispatcher: RUNNING, STARTING, STUCK or STOPPED.
func (n *Node) StatusInfo() StatusInfo { return n.hist.status() }
