package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// ErrStarted reports a Start of a runtime already started.
var ErrStarted = errors.New("zasync: runtime already started")

// ErrNotStarted reports a Stop of a runtime not started.
var ErrNotStarted = errors.New("zasync: runtime not started")

// Start starts this runtime's dispatcher, with an agent per configured agent in each
// configured queue: it activates its record in each queue, pings, and claims and runs jobs
// until Stop. It returns once the first activation in each queue has been tried (a store out
// of reach is tried again at each poll, and does not fail Start); a program that only puts
// jobs never calls it. When another live process runs with the same UUID, Start fails with
// ErrAlreadyActivated, saying which, unless Config.WaitForTakeover. ctx bounds that wait. The
// handlers must be registered before.
func (rt *Runtime) Start(ctx context.Context) error {
	rt.nodeMu.Lock()
	defer rt.nodeMu.Unlock()
	if rt.node != nil {
		return ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	id, err := rt.dispatcherUUID()
	if err != nil {
		return err
	}
	if !rt.cfg.WaitForTakeover {
		if err := rt.checkUUIDFree(ctx, id); err != nil {
			return err
		}
	}
	root, err := rt.actorRoot()
	if err != nil {
		return err
	}
	o := rt.nodeOptions(root)
	// The queues' actors are the runtime's, shared with its puts: they wake the dispatcher.
	o.QueueActors = make(map[string]*actor.PID, len(o.Queues))
	for _, q := range o.Queues {
		qa, err := rt.queueActor(q.Name)
		if err != nil {
			return fmt.Errorf("zasync: start: %w", err)
		}
		o.QueueActors[q.Name] = qa.PID()
	}
	// The first activation in each queue is waited for: a live process holding the UUID,
	// which the check above may have missed (it started a moment before this one), is
	// refused here, where the record's activation decides. (The check above still comes
	// first: it refuses the common case without starting a node, whose failed activation
	// logs an ERROR, so the refusal stays one line.)
	activated := make(chan error, len(o.Queues))
	o.Activated = func(_ string, err error) { activated <- err }
	n, err := actors.StartNode(o)
	if err != nil {
		return fmt.Errorf("zasync: start: %w", err)
	}
	for range o.Queues {
		var aerr error
		select {
		case aerr = <-activated:
		case <-ctx.Done():
			aerr = ctx.Err()
		}
		refuse := aerr != nil && errors.Is(aerr, ErrAlreadyActivated) && !rt.cfg.WaitForTakeover
		if refuse {
			if cerr := rt.checkUUIDFree(ctx, id); cerr != nil {
				aerr = cerr
			} else {
				refuse = false // its process is gone: take it over once its record dies
			}
		}
		if refuse || errors.Is(aerr, ctx.Err()) && ctx.Err() != nil {
			stop, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownGrace+time.Minute)
			serr := n.Stop(stop)
			cancel()
			if refuse {
				return errors.Join(aerr, serr)
			}
			return fmt.Errorf("zasync: start: %w", errors.Join(aerr, serr))
		}
	}
	if err := rt.startScheduler(root, id); err != nil {
		stop, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownGrace+time.Minute)
		defer cancel()
		return errors.Join(err, n.Stop(stop))
	}
	rt.node, rt.nodeUUID = n, id
	rt.live.Store(n)
	running.add(id)
	return nil
}

// Stop shuts the dispatcher down cleanly: it stops claiming, cancels the running handlers'
// contexts, waits for them up to Config.ShutdownGrace, then deactivates its records, which
// hands what did not finish to recovery jobs (an interrupted job runs again after a restart,
// or on another dispatcher). A handler still running after that is abandoned; if it later
// tries to commit, the commit is refused. ctx bounds the whole wait.
func (rt *Runtime) Stop(ctx context.Context) error {
	rt.nodeMu.Lock()
	defer rt.nodeMu.Unlock()
	if rt.node == nil {
		return ErrNotStarted
	}
	rt.stopScheduler() // first: a stopping process puts no more ticks, and says so
	err := rt.node.Stop(ctx)
	running.remove(rt.nodeUUID)
	rt.node = nil
	rt.live.Store(nil)
	if err != nil {
		return fmt.Errorf("zasync: stop: %w", err)
	}
	return nil
}

// checkUUIDFree refuses to start when a dispatcher record of this UUID is activated and alive
// in a queue this process would serve, held by a process that still runs: two processes
// with one UUID. A record left by a process of this host that is gone (it crashed, and this
// is its restart) is no refusal: the dispatcher takes it over once it dies, as it always did.
// A store out of reach is no reason to refuse either; the dispatcher tries again at each
// poll. (Two processes starting at once may both pass it: Start then refuses the one whose
// first activation loses.)
func (rt *Runtime) checkUUIDFree(ctx context.Context, id string) error {
	for _, q := range rt.cfg.Queues {
		d, err := rt.store.Dispatcher(ctx, q.Name, id)
		if err != nil || !d.IsActivated() || d.Dead || predecessorGone(d) {
			continue
		}
		where := "another process"
		if d.Host != "" || d.PID != 0 {
			where = fmt.Sprintf("process %d on %s", d.PID, d.Host)
		}
		since := "never pinged"
		if now, err := rt.store.Now(ctx); err == nil && !d.LastPing.IsZero() {
			since = "last ping " + now.Sub(d.LastPing).Round(time.Millisecond).String() + " ago"
		}
		return fmt.Errorf("zasync: start: %w: UUID %s is in use in queue %s by %s (%s): two processes sharing %s? "+
			"Give this one its own UUID (Config.UUID, $%s, or a %s in another folder), or let it wait for the takeover "+
			"(Config.WaitForTakeover; serve --wait-for-takeover)",
			ErrAlreadyActivated, id, q.Name, where, since, UUIDFile, UUIDEnv, UUIDFile)
	}
	return nil
}

// predecessorGone reports whether d was recorded by a process of this host that no longer
// runs, or by this very process id with no runtime of this process running with its UUID
// now (a container restarted, where every run is the same pid).
func predecessorGone(d *persistence.DispatcherRecord) bool {
	host, _ := os.Hostname()
	if d.Host == "" || d.Host != host || d.PID <= 0 {
		return false
	}
	if d.PID == os.Getpid() {
		return !running.has(d.UUID)
	}
	return !processRuns(d.PID)
}

// running counts the started runtimes of this process by dispatcher UUID: a record of this
// process's pid is a live twin when one of them runs with its UUID, else left by an earlier
// run of the same pid.
var running = uuidCounts{n: map[string]int{}}

type uuidCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *uuidCounts) add(id string) {
	c.mu.Lock()
	c.n[id]++
	c.mu.Unlock()
}

func (c *uuidCounts) remove(id string) {
	c.mu.Lock()
	if c.n[id]--; c.n[id] <= 0 {
		delete(c.n, id)
	}
	c.mu.Unlock()
}

func (c *uuidCounts) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id] > 0
}

// processRuns reports whether a process with this id runs on this host. Where that cannot
// be told (no signal 0), it is taken to run: the safe answer, a refusal.
func processRuns(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || !(errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH))
}
