package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/redisstore"
)

// waitRecheck is how often Wait re-reads its job when no completion notification arrives:
// notifications may be lost (a reader that falls behind, a reconnect), never invented.
const waitRecheck = 2 * time.Second

// Runtime is zasync in one process: it puts jobs, waits for them, and (once started) serves
// queues with a dispatcher. It is safe for concurrent use. Build it with New; Close it.
type Runtime struct {
	cfg      Config // with its defaults
	store    persistence.Store
	policies *persistence.RetryPolicies
	logger   *slog.Logger

	// What New opened and Close closes: the embedded Redis and its client, when Config.Redis
	// was nil. A client the program gave is never closed.
	mini      *miniredis.Miniredis
	ownClient redis.UniversalClient
	closeOnce sync.Once
	closeErr  error

	mu          sync.RWMutex
	handlers    map[string]HandlerFunc
	middleware  []Middleware           // Use's, outermost first; under mu
	defaults    map[string][]PutOption // Handle's options by handler; under mu
	hasDefaults atomic.Bool            // some handler has defaults: puts look them up

	uuidMu sync.Mutex
	uuid   string // the dispatcher UUID once resolved; see dispatcherUUID

	rootMu sync.Mutex
	root   *actors.Root // zasync's root actor, once made (see actorRoot); guarded by rootMu
	// isClosed: Close has stopped the root. Set under rootMu, read without it by every put.
	isClosed atomic.Bool

	// queues are the queue actors this runtime puts through, by queue name (*actors.Queue),
	// made once each under queuesMu.
	queues   sync.Map
	queuesMu sync.Mutex

	// The goroutines that wait for jobs to complete, to notify actors (see Notify). Close
	// cancels watchCtx and waits for them; watchClosed refuses new ones, under watchMu.
	watchMu     sync.Mutex
	watchers    sync.WaitGroup
	watchCtx    context.Context
	watchCancel context.CancelFunc
	watchClosed bool

	// isDetached: a runtime over a handler's store alone (see detached): it owns no actors,
	// and puts go straight to the store.
	isDetached bool

	// reminders: the actor hosting each reminder target this process hosts (HostReminders).
	remindMu  sync.RWMutex
	reminders map[string]*actor.PID

	nodeMu   sync.Mutex
	node     *actors.Node // the running dispatcher, between Start and Stop
	nodeUUID string       // its UUID
	// live is node too, for introspection, which must not wait on nodeMu: Stop holds it
	// through the whole shutdown.
	live atomic.Pointer[actors.Node]

	// waitRecheck is how often Wait re-reads its job (waitRecheck; tests change it).
	waitRecheck time.Duration
	// onWaitSubscribed, if set (tests), runs once Wait is subscribed and has found its job
	// not completed yet.
	onWaitSubscribed func(persistence.Ref)
	// onPutQueued, if set (tests), runs each time a queue actor holds a put for its next
	// cohort, with how many it holds (actors.QueueOptions.Queued).
	onPutQueued func(queue string, pending int)

	// The periodic jobs Every declared, and the scheduler that ticks them while started
	// (schedule.go); schedStamp gives a declaration this process's name, set at Start.
	schedMu    sync.Mutex
	schedules  []*messages.Declare
	scheduler  *scheduleRef
	schedStamp func(*messages.Declare) *messages.Declare
	// scheduleHeartbeat replaces actors.DefaultScheduleHeartbeat (tests); onTick, if set
	// (tests), is told of each tick's put.
	scheduleHeartbeat time.Duration
	onTick            func(d persistence.ScheduleDecl, tick time.Time, res persistence.TickResult, err error)

	// metrics count what this runtime does, for Prometheus (see Metrics).
	metrics *metrics

	// waits share a completion subscription per queue among this runtime's waits.
	waits *waiters
}

// New returns a Runtime for cfg: it checks cfg, starts the embedded Redis when cfg.Redis is
// nil, and registers cfg.RetryPolicies. It does not serve any queue yet. A bad cfg gives an
// error wrapping ErrInvalid.
func New(cfg Config) (*Runtime, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	policies := persistence.NewRetryPolicies()
	for _, p := range cfg.RetryPolicies {
		if err := policies.Register(storedPolicy(p)); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	rt := &Runtime{
		cfg:         cfg,
		policies:    policies,
		logger:      cfg.Logger,
		handlers:    map[string]HandlerFunc{},
		waitRecheck: waitRecheck,
	}
	rt.watchCtx, rt.watchCancel = context.WithCancel(context.Background())
	rdb := cfg.Redis
	if rdb == nil {
		m, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("zasync: start the embedded Redis: %w", err)
		}
		rt.mini = m
		rt.ownClient = redis.NewClient(&redis.Options{Addr: m.Addr()})
		rdb = rt.ownClient
		rt.logger.Warn("zasync: no Redis configured: using an embedded in-memory Redis; nothing is kept after this process exits and no other process can reach it",
			"logger", "zasync.events", "addr", m.Addr())
	}
	store, err := redisstore.New(rdb, redisstore.Options{Prefix: cfg.Prefix, Retention: cfg.Retention, Clock: cfg.Clock})
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("zasync: %w", err)
	}
	rt.store = store
	rt.waits = newWaiters(store)
	if rt.metrics, err = newMetrics(rt, cfg.Metrics); err != nil {
		rt.Close()
		return nil, err
	}
	return rt, nil
}

// Close releases what New opened: the embedded Redis and its client, if New started them
// (their data is lost). A client given in Config.Redis stays open. A runtime still started is
// stopped first, as Stop does. Close is idempotent.
func (rt *Runtime) Close() error {
	rt.closeOnce.Do(func() {
		var errs []error
		if err := rt.stopForClose(); err != nil {
			errs = append(errs, err)
		}
		rt.stopWatchers()
		if err := rt.stopRoot(); err != nil {
			errs = append(errs, err)
		}
		if err := rt.waitQueues(); err != nil {
			errs = append(errs, err)
		}
		if rt.waits != nil {
			rt.waits.close()
		}
		if rt.store != nil {
			errs = append(errs, rt.store.Close())
		}
		if rt.ownClient != nil {
			errs = append(errs, rt.ownClient.Close())
		}
		if rt.mini != nil {
			rt.mini.Close()
		}
		if err := errors.Join(errs...); err != nil {
			rt.closeErr = fmt.Errorf("zasync: close: %w", err)
		}
	})
	return rt.closeErr
}

// ErrClosed reports a use of a closed runtime that needs its actors, a put among them.
var ErrClosed = actors.ErrClosed

// actorRoot returns zasync's root actor, making it on first use in Config.ActorSystem or in an
// actor system of the runtime's own. Made lazily: a program that only reads the database
// (the queries, Job.Info) never needs an actor system, which costs milliseconds to make.
func (rt *Runtime) actorRoot() (*actors.Root, error) {
	rt.rootMu.Lock()
	defer rt.rootMu.Unlock()
	if rt.isClosed.Load() {
		return nil, ErrClosed
	}
	if rt.root == nil {
		r, err := actors.StartRoot(rt.cfg.ActorSystem, rt.cfg.ActorName, rt.logger)
		if err != nil {
			return nil, fmt.Errorf("zasync: %w", err)
		}
		rt.root = r
	}
	return rt.root, nil
}

// ActorSystem returns the actor system zasync's actors live in: Config.ActorSystem, or the
// runtime's own, made now if it was not yet. A program without an actor system of its own
// spawns there the actors it gives HostReminders or that put by message. After Close it gives
// ErrClosed.
func (rt *Runtime) ActorSystem() (*actor.ActorSystem, error) {
	r, err := rt.actorRoot()
	if err != nil {
		return nil, err
	}
	return r.System(), nil
}

// stopRoot stops the root actor and everything below it, for good.
func (rt *Runtime) stopRoot() error {
	rt.rootMu.Lock()
	defer rt.rootMu.Unlock()
	rt.isClosed.Store(true)
	if rt.root == nil {
		return nil
	}
	r := rt.root
	rt.root = nil
	return r.Stop()
}

// queueActor returns the actor that puts this runtime's jobs into queue, starting it below
// zasync's root on first use.
func (rt *Runtime) queueActor(queue string) (*actors.Queue, error) {
	if rt.isClosed.Load() {
		return nil, ErrClosed
	}
	if rt.isDetached {
		return nil, errNotifyDetached
	}
	if qa, ok := rt.queues.Load(queue); ok {
		return qa.(*actors.Queue), nil
	}
	rt.queuesMu.Lock()
	defer rt.queuesMu.Unlock()
	if qa, ok := rt.queues.Load(queue); ok {
		return qa.(*actors.Queue), nil
	}
	// Checked before the root is made: a bad name must not start an actor system.
	if err := persistence.ValidateName("queue", queue); err != nil {
		return nil, err
	}
	root, err := rt.actorRoot()
	if err != nil {
		return nil, err
	}
	sys := root.System()
	var queued func(int)
	if f := rt.onPutQueued; f != nil {
		queued = func(n int) { f(queue, n) }
	}
	qa, err := actors.StartQueue(root, actors.QueueOptions{Store: rt.store, Queue: queue, Logger: rt.logger, Queued: queued,
		OnPut: func(jobs []*persistence.Job, notify *actor.PID) {
			rt.metrics.puts(queue, len(jobs))
			if notify != nil {
				for _, j := range jobs {
					rt.notifyOnCompletion(sys, j.Ref, notify)
				}
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("zasync: %w", err)
	}
	rt.queues.Store(queue, qa)
	return qa, nil
}

// notifyOnCompletion sends pid, from sys, a messages.JobCompleted once job ref completes, waiting
// for it on a goroutine of its own as Job.Wait does. Close ends the wait, and then nothing
// is sent: the notification is lost with the process, the outcome is not.
func (rt *Runtime) notifyOnCompletion(sys *actor.ActorSystem, ref persistence.Ref, pid *actor.PID) {
	rt.watchMu.Lock()
	defer rt.watchMu.Unlock()
	if rt.watchClosed {
		return
	}
	rt.watchers.Add(1)
	go func() {
		defer rt.watchers.Done()
		out, err := rt.job(ref).Wait(rt.watchCtx)
		if rt.watchCtx.Err() != nil {
			return
		}
		m := &messages.JobCompleted{Job: ref, Err: err}
		if err == nil {
			m.Status, m.Result, m.Failure = persistence.StatusCompleted, out.Result, out.Failure.stored()
		}
		sys.Root.Send(pid, m)
	}()
}

// queueDrainTimeout bounds how long Close waits for the puts its queue actors sent to the
// store: longer than a store call ever lasts unless its caller set a longer deadline.
const queueDrainTimeout = time.Minute

// waitQueues waits, once the root has stopped, until the puts the queue actors had sent to
// the store are answered, so that the store is closed after them.
func (rt *Runtime) waitQueues() error {
	timeout := time.NewTimer(queueDrainTimeout)
	defer timeout.Stop()
	var err error
	rt.queues.Range(func(name, qa any) bool {
		select {
		case <-qa.(*actors.Queue).Done():
			return true
		case <-timeout.C:
			err = fmt.Errorf("puts into %q still on their way after %s", name, queueDrainTimeout)
			return false
		}
	})
	return err
}

// stopWatchers ends the waits for notifications, and refuses new ones, before the actor
// system they send from may be shut down.
func (rt *Runtime) stopWatchers() {
	rt.watchMu.Lock()
	rt.watchClosed = true
	rt.watchMu.Unlock()
	if rt.watchCancel != nil {
		rt.watchCancel()
	}
	rt.watchers.Wait()
}

// dispatcherUUID returns this process's dispatcher UUID, resolving it on first use as
// Config.UUID documents (which may create uuid.txt). A failure is not remembered: the next
// call tries again. Start calls it before nodeOptions, so that its error is reported.
func (rt *Runtime) dispatcherUUID() (string, error) {
	rt.uuidMu.Lock()
	defer rt.uuidMu.Unlock()
	if rt.uuid != "" {
		return rt.uuid, nil
	}
	id, err := resolveUUID(rt.cfg.UUID, rt.cfg.uuidDir)
	if err != nil {
		return "", err
	}
	rt.uuid = id
	return id, nil
}

// assigner returns the dispatcher UUID if it has been resolved (this process has started
// serving), for the Assigner of the jobs it puts; else "". It never creates uuid.txt.
func (rt *Runtime) assigner() string {
	rt.uuidMu.Lock()
	defer rt.uuidMu.Unlock()
	return rt.uuid
}

// nodeOptions builds the options of this process's actors node from the Config: the store,
// the runtime itself as the handler registry, the retry policies, the logger, the UUID and
// the queues with their agents and filters (and the reminder queues of the targets it
// hosts), and the intervals. The UUID is resolved here if it was not before; Start calls
// dispatcherUUID first to report a failure, which leaves it empty here.
func (rt *Runtime) nodeOptions(root *actors.Root) actors.Options {
	id, _ := rt.dispatcherUUID()
	queues := make([]actors.QueueSpec, len(rt.cfg.Queues))
	for i, q := range rt.cfg.Queues {
		agents := make([]actors.AgentSpec, len(q.Agents))
		for j, a := range q.Agents {
			agents[j] = actors.AgentSpec{Name: a.Name, Size: a.Size, Filter: storedFilter(a.Filter)}
		}
		queues[i] = actors.QueueSpec{Name: q.Name, Agents: agents}
	}
	queues = append(queues, rt.reminderQueues()...)
	return actors.Options{
		Store:             rt.store,
		Handlers:          rt,
		Policies:          rt.policies,
		Logger:            rt.logger,
		LogArguments:      rt.cfg.LogArguments,
		OnCommit:          rt.commitHook(),
		UUID:              id,
		Queues:            queues,
		PollInterval:      rt.cfg.PollInterval,
		PingInterval:      rt.cfg.PingInterval,
		PingDeathInterval: rt.cfg.PingDeathInterval,
		ShutdownGrace:     rt.cfg.ShutdownGrace,
		Observer:          rt.metrics.observer(),
		Root:              root,
	}
}

// retryPolicy returns the name of p, checking that this runtime knows it: a job whose policy
// no process can look up could never be retried, or even failed, as it should.
func (rt *Runtime) retryPolicy(p RetryPolicy) (string, error) {
	if p == nil {
		return "", invalidf("nil retry policy")
	}
	if _, err := rt.policies.Lookup(p.Name()); err != nil {
		return "", invalidf("retry policy %q is not registered (see Config.RetryPolicies)", p.Name())
	}
	return p.Name(), nil
}

// stopForClose stops a runtime still started when it is closed, within its grace period and
// a minute for the cleaning.
func (rt *Runtime) stopForClose() error {
	rt.nodeMu.Lock()
	started := rt.node != nil
	rt.nodeMu.Unlock()
	if !started {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownGrace+time.Minute)
	defer cancel()
	return rt.Stop(ctx)
}
