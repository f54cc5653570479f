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

	mu       sync.RWMutex
	handlers map[string]HandlerFunc

	uuidMu sync.Mutex
	uuid   string // the dispatcher UUID once resolved; see dispatcherUUID

	rootMu sync.Mutex
	root   *actors.Root // zasync's root actor, once made (see actorRoot); guarded by rootMu
	closed bool         // Close has stopped the root; guarded by rootMu

	// reminders: the actor hosting each reminder target this process hosts (HostReminders).
	remindMu  sync.RWMutex
	reminders map[string]*actor.PID

	nodeMu sync.Mutex
	node   *actors.Node // the running dispatcher, between Start and Stop
	// live is node too, for introspection, which must not wait on nodeMu: Stop holds it
	// through the whole shutdown.
	live atomic.Pointer[actors.Node]

	// waitRecheck is how often Wait re-reads its job (waitRecheck; tests change it).
	waitRecheck time.Duration
	// onWaitSubscribed, if set (tests), runs once Wait is subscribed and has found its job
	// not completed yet.
	onWaitSubscribed func(persistence.Ref)

	// metrics count what this runtime does, for Prometheus (see Metrics).
	metrics *metrics
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
		if err := policies.Register(p); err != nil {
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
	store, err := redisstore.New(rdb, redisstore.Options{Prefix: cfg.Prefix, Retention: cfg.Retention})
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("zasync: %w", err)
	}
	rt.store = store
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
		if err := rt.stopRoot(); err != nil {
			errs = append(errs, err)
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

// ErrClosed reports a use of a closed runtime that needs its actors.
var ErrClosed = errors.New("zasync: runtime closed")

// actorRoot returns zasync's root actor, making it on first use in Config.ActorSystem or in an
// actor system of the runtime's own. Made lazily: a program that only puts and waits never
// needs an actor system.
func (rt *Runtime) actorRoot() (*actors.Root, error) {
	rt.rootMu.Lock()
	defer rt.rootMu.Unlock()
	if rt.closed {
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

// stopRoot stops the root actor and everything below it, for good.
func (rt *Runtime) stopRoot() error {
	rt.rootMu.Lock()
	defer rt.rootMu.Unlock()
	rt.closed = true
	if rt.root == nil {
		return nil
	}
	r := rt.root
	rt.root = nil
	return r.Stop()
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
			agents[j] = actors.AgentSpec{Name: a.Name, Size: a.Size, Filter: a.Filter}
		}
		queues[i] = actors.QueueSpec{Name: q.Name, Agents: agents}
	}
	queues = append(queues, rt.reminderQueues()...)
	return actors.Options{
		Store:             rt.store,
		Handlers:          rt,
		Policies:          rt.policies,
		Logger:            rt.logger,
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
