package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// Defaults applied by New to the zero fields of a Config.
const (
	DefaultPrefix            = "zasync"
	DefaultQueue             = "default"
	DefaultAgent             = "main"
	DefaultAgentSize         = 3
	DefaultPollInterval      = time.Second
	DefaultPingInterval      = 5 * time.Second
	DefaultPingDeathInterval = 15 * time.Second
	DefaultShutdownGrace     = 10 * time.Second
	DefaultRetention         = 7 * 24 * time.Hour
)

// UUIDEnv is the environment variable a dispatcher's UUID is read from when Config.UUID is
// empty.
const UUIDEnv = "ZASYNC_UUID"

// UUIDFile is the file, in the working directory, a dispatcher's UUID is read from when
// neither Config.UUID nor ZASYNC_UUID gives one; it is created with a new UUID on first use.
const UUIDFile = "uuid.txt"

// Config configures a Runtime. The zero value is ready to use: an embedded Redis, one queue
// "default" served by one agent "main" of size 3, and the intervals below.
type Config struct {
	// Redis is the client of the Redis that holds every queue and job: a single node,
	// Sentinel or Cluster client. The Runtime never closes it.
	//
	// Default: nil, which starts an embedded in-memory Redis (miniredis) on a loopback port,
	// for a program on one machine, tests and demos. Nothing is kept after the process exits,
	// and only this process can reach it; New logs a warning saying so. Close stops it.
	Redis redis.UniversalClient

	// Prefix starts every Redis key, so that several zasync installations can share a
	// database. It may not contain braces or spaces. Default "zasync".
	Prefix string

	// Queues are the queues this process serves once started, each with its agents. Any
	// queue can be put into whether it is listed here or not. Names starting with "zasync."
	// are zasync's own (see HostReminders).
	//
	// Default: one queue "default" with one agent "main" of size 3. A queue listed with no
	// agents gets that agent.
	Queues []QueueConfig

	// PollInterval is how often an idle dispatcher looks for work when no wake-up arrives
	// (puts publish one, so this is the safety net, not the latency). Default 1s.
	PollInterval time.Duration

	// PingInterval is how often a dispatcher records that it is alive. Default 5s.
	PingInterval time.Duration

	// PingDeathInterval is how long a dispatcher may go without a ping before its siblings
	// declare it dead and reassign its jobs. It must be longer than PingInterval. Default 15s.
	PingDeathInterval time.Duration

	// ShutdownGrace is how long a clean stop waits for running handlers, whose contexts are
	// cancelled, before it abandons them and hands their jobs back. Default 10s.
	ShutdownGrace time.Duration

	// UUID identifies this process's dispatcher in every queue it serves; it must stay the
	// same across restarts of one installation, and differ between processes running at the
	// same time.
	//
	// Default: the environment variable ZASYNC_UUID, else the first line of ./uuid.txt,
	// which is created with a new random UUID the first time a dispatcher starts (in a test
	// binary, a new random UUID for each runtime, and no file). A UUID set
	// here wins over both, which is what several dispatchers in one process (tests) need.
	// It is resolved when the dispatcher starts, so a program that only puts jobs and waits
	// for results never creates uuid.txt.
	UUID string

	// Tracer, if set, is told of every put, wait, handler run and commit of this runtime's
	// jobs, to trace them (package zasyncotel traces them with OpenTelemetry). Default: nil.
	Tracer Tracer

	// Clock, for tests, replaces Redis's clock as the time jobs are scheduled, claimed and
	// judged by (begin_after, deadlines, deaths), so that a test can move time forward
	// (zasynctest does). Every runtime sharing the Redis must use the same clock. Default:
	// nil, Redis's TIME, which is what production uses.
	Clock interface{ Now() time.Time }

	// WaitForTakeover lets Start go on when another process runs a dispatcher with this
	// UUID (its record activated and alive): this one then says so once and takes the
	// queues over when that process stops pinging for PingDeathInterval, for a rolling
	// restart that starts the new process before the old one stops. Default false: Start
	// refuses with ErrAlreadyActivated, saying which process holds the UUID, since two
	// processes sharing a uuid.txt is usually a mistake.
	WaitForTakeover bool

	// LogArguments puts calls' arguments and results in the log records about jobs. Default
	// false: a record names the job (job, queue, handler, attempt, dispatcher and agent
	// attributes) but not what it was called with or returned, which may be personal data.
	// Failures are logged with their messages and tracebacks either way.
	LogArguments bool

	// Logger receives zasync's logs (job successes and failures, retries, dispatcher life).
	// Default: nil, which discards them.
	Logger *slog.Logger

	// RetryPolicies are user retry policies, registered by name next to the built-in
	// RetryCommonFourTimes, RetryCommonForever and NeverRetry; a name may be registered only
	// once. Jobs store their policy's name, so every process serving a queue must register
	// the policies its jobs use. Default: none.
	RetryPolicies []RetryPolicy

	// Retention is how long completed jobs, with their results, are kept in Redis, and how long
	// a stopped dispatcher's record and histories are. Default 7 days; negative keeps them
	// forever.
	Retention time.Duration

	// Metrics is where the runtime registers its Prometheus metrics (zasync_jobs_put_total,
	// zasync_poll_duration_seconds, the queue gauges read from Redis at each gathering…; see
	// Runtime.Metrics). Two runtimes sharing one Registerer clash: give each its own labels
	// with prometheus.WrapRegistererWith. A registration that fails makes New fail.
	//
	// Default: nil, a registry of the runtime's own, with the Go and process collectors
	// added, which Runtime.Metrics returns for serving (the monitor package does).
	Metrics prometheus.Registerer

	// ActorSystem is a protoactor-go actor system of the program's own for zasync's actors.
	// They all run below one root actor named ActorName, which Close stops, children first;
	// the system itself keeps running, as do the program's actors in it.
	//
	// Default: nil, an actor system of zasync's own, made when first needed (the first put,
	// Start, or Queue.PID) and shut down by Close.
	ActorSystem *actor.ActorSystem

	// ActorName names zasync's root actor in its actor system: 1 to 100 ASCII letters,
	// digits, '.', '_' and '-'. Two runtimes sharing one ActorSystem need two names.
	// Default "zasync".
	ActorName string

	// uuidDir is the directory uuid.txt is read from and created in: "" is the working
	// directory. Tests set it so as not to change the process's working directory.
	uuidDir string
}

// QueueConfig is a queue a process serves, with its agents.
type QueueConfig struct {
	// Name is the queue's name: 1 to 100 ASCII letters, digits, '.', '_' and '-'. Required.
	Name string
	// Agents claim and run the queue's jobs. Default: one agent "main" of size 3.
	Agents []AgentConfig
}

// AgentConfig is one agent of a queue: a named pool of job slots with an optional filter.
type AgentConfig struct {
	// Name is the agent's name, unique in its queue, with the rules of queue names. Required.
	Name string
	// Size is how many jobs the agent runs at once. Default 3 (when 0).
	Size int
	// Filter, if not nil, chooses the jobs this agent may claim: it sees each candidate's
	// record and must be fast and pure (it runs inside the claim). Default: nil, every job.
	Filter func(*JobRecord) bool
}

// storedFilter adapts an agent's filter to the records the store claims: each candidate is
// shown to it as a JobRecord. Nil stays nil, so that an agent without a filter claims with
// the store's script and makes no record at all.
func storedFilter(f func(*JobRecord) bool) func(*persistence.Job) bool {
	if f == nil {
		return nil
	}
	return func(j *persistence.Job) bool { return f(recordFrom(j)) }
}

// withDefaults returns a copy of c whose zero fields hold their defaults. The queue and agent
// slices are copied, so the caller's Config is never changed.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if len(c.Queues) == 0 {
		c.Queues = []QueueConfig{{Name: DefaultQueue}}
	}
	queues := make([]QueueConfig, len(c.Queues))
	for i, q := range c.Queues {
		if len(q.Agents) == 0 {
			q.Agents = []AgentConfig{{Name: DefaultAgent}}
		}
		agents := make([]AgentConfig, len(q.Agents))
		for j, a := range q.Agents {
			if a.Size == 0 {
				a.Size = DefaultAgentSize
			}
			agents[j] = a
		}
		q.Agents = agents
		queues[i] = q
	}
	c.Queues = queues
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PingDeathInterval == 0 {
		c.PingDeathInterval = DefaultPingDeathInterval
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.ActorName == "" {
		c.ActorName = actors.DefaultRootName
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a Config that has its defaults.
func (c *Config) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PollInterval", c.PollInterval},
		{"PingInterval", c.PingInterval},
		{"PingDeathInterval", c.PingDeathInterval},
		{"ShutdownGrace", c.ShutdownGrace},
	} {
		if d.v <= 0 {
			return invalidf("config: %s %s must be positive", d.name, d.v)
		}
	}
	if c.PingDeathInterval <= c.PingInterval {
		return invalidf("config: PingDeathInterval %s must be longer than PingInterval %s", c.PingDeathInterval, c.PingInterval)
	}
	if strings.ContainsAny(c.Prefix, "{} \t\r\n") {
		return invalidf("config: Prefix %q may not contain braces or spaces", c.Prefix)
	}
	if c.UUID != "" {
		if err := persistence.ValidateUUID(c.UUID); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if err := persistence.ValidateName("actor", c.ActorName); err != nil {
		return fmt.Errorf("config: ActorName: %w", err)
	}
	queues := make(map[string]bool, len(c.Queues))
	for _, q := range c.Queues {
		if err := persistence.ValidateName("queue", q.Name); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if strings.HasPrefix(q.Name, persistence.SystemPrefix) {
			// zasync's own queues (a reminder target's) are served by the processes that
			// host their target: any other would claim what it cannot deliver.
			return invalidf("config: queue %q: names starting with %q are reserved for zasync", q.Name, persistence.SystemPrefix)
		}
		if queues[q.Name] {
			return invalidf("config: queue %q listed twice", q.Name)
		}
		queues[q.Name] = true
		agents := make(map[string]bool, len(q.Agents))
		for _, a := range q.Agents {
			if err := persistence.ValidateName("agent", a.Name); err != nil {
				return fmt.Errorf("config: queue %q: %w", q.Name, err)
			}
			if agents[a.Name] {
				return invalidf("config: queue %q: agent %q listed twice", q.Name, a.Name)
			}
			agents[a.Name] = true
			if a.Size < 1 {
				return invalidf("config: queue %q: agent %q has size %d, below 1", q.Name, a.Name, a.Size)
			}
		}
	}
	for i, p := range c.RetryPolicies {
		if p == nil {
			return invalidf("config: RetryPolicies[%d] is nil", i)
		}
	}
	return nil
}

// resolveUUID finds the dispatcher UUID: the Config's, else ZASYNC_UUID, else uuid.txt in
// dir ("" is the working directory), created with a new UUID if it does not exist. The file
// is created exclusively, so that an existing UUID is never overwritten: losing it would
// orphan the jobs its agents hold until they are swept as a dead dispatcher's.
func resolveUUID(explicit, dir string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if id := strings.TrimSpace(os.Getenv(UUIDEnv)); id != "" {
		if err := persistence.ValidateUUID(id); err != nil {
			return "", fmt.Errorf("%s: %w", UUIDEnv, err)
		}
		return id, nil
	}
	if dir == "" && testing.Testing() {
		// A test binary runs in its package's folder: a uuid.txt left there would be
		// committed by mistake, and shared by every test that forgot Config.UUID.
		return uuid.NewString(), nil
	}
	path := filepath.Join(dir, UUIDFile)
	for range 2 { // a file removed between the failed create and the read is created again
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			id := uuid.NewString()
			_, werr := f.WriteString(id + "\n")
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				return "", fmt.Errorf("zasync: write dispatcher UUID to %s: %w", path, werr)
			}
			return id, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("zasync: create %s for the dispatcher UUID: %w", path, err)
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("zasync: read dispatcher UUID: %w", err)
		}
		id, _, _ := strings.Cut(string(b), "\n")
		id = strings.TrimSpace(id)
		if err := persistence.ValidateUUID(id); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return id, nil
	}
	return "", fmt.Errorf("zasync: %s keeps disappearing", path)
}
