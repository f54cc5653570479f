// Package storetest is the conformance suite every persistence.Store must pass. The Redis
// store runs it against miniredis and, when ZASYNC_TEST_REDIS is set, against a real Redis.
//
// The suite works at the store and job-model level: the zc.async acceptance scenarios
// that concern queues, quotas, retries, agents and dispatchers, plus concurrency, fencing and
// bad-input checks. Each test gets a store of its own (its own key prefix) and a fake clock,
// so time moves only when a test moves it and nothing depends on the speed of the machine.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zasync/zasync/internal/clock"
	"github.com/zasync/zasync/persistence"
)

// Harness builds the stores the suite runs on.
type Harness struct {
	// New returns a Store over a fresh, empty key space whose time is clock. The harness
	// closes it when the test ends.
	New func(t *testing.T, clock persistence.Clock) persistence.Store
	// Share, if not nil, returns another store over the same key space as s, New's store,
	// with connections of its own, as another process would have: racing tests put through
	// several. The harness closes it when the test ends.
	Share func(t *testing.T, s persistence.Store) persistence.Store
	// Elapse, if not nil, lets d pass for the expiry of the keys of New's store of test t (a
	// server whose clock runs by itself needs nothing: the tests wait for it). Nil skips the
	// tests of expiry.
	Elapse func(t *testing.T, d time.Duration)
}

// Run runs the whole suite against the stores h builds.
func Run(t *testing.T, h Harness) {
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.tests {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(t, h)
				})
			}
		})
	}
}

type testCase struct {
	name string
	fn   func(t *testing.T, h Harness)
}

type group struct {
	name  string
	tests []testCase
}

// groups lists the suite; each file adds its group in an init function.
var groups []group

func register(name string, tests ...testCase) { groups = append(groups, group{name, tests}) }

// Epoch is where every test's fake clock starts: 2006-08-10 15:44 UTC, the date of zc.async's
// queue doctest.
var Epoch = time.Date(2006, 8, 10, 15, 44, 0, 0, time.UTC)

// Queue is the queue name tests use unless they need several.
const Queue = "q"

// bundle is what a test works with.
type bundle struct {
	t     *testing.T
	ctx   context.Context
	s     persistence.Store
	clock *clock.Fake
}

// setup returns a fresh store with its fake clock at Epoch, and a context with a deadline.
func setup(t *testing.T, h Harness) *bundle {
	t.Helper()
	c := clock.NewFake(Epoch)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &bundle{t: t, ctx: ctx, s: h.New(t, c), clock: c}
}

// call builds a Call to handler with args marshalled to JSON.
func call(handler string, args ...any) persistence.Call {
	c := persistence.Call{Handler: handler}
	for _, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			panic(err)
		}
		c.Args = append(c.Args, b)
	}
	return c
}

// put puts a job with spec into queue q and fails the test on error.
func (b *bundle) put(q string, spec persistence.JobSpec) *persistence.Job {
	b.t.Helper()
	j, err := b.s.Put(b.ctx, q, spec)
	if err != nil {
		b.t.Fatalf("Put(%s, %s): %v", q, spec.Call.Handler, err)
	}
	return j
}

// putCall puts a job calling handler with no options into Queue.
func (b *bundle) putCall(handler string, args ...any) *persistence.Job {
	b.t.Helper()
	return b.put(Queue, persistence.JobSpec{Call: call(handler, args...)})
}

// get reads a job and fails the test on error.
func (b *bundle) get(ref persistence.Ref) *persistence.Job {
	b.t.Helper()
	j, err := b.s.Get(b.ctx, ref)
	if err != nil {
		b.t.Fatalf("Get(%s): %v", ref, err)
	}
	return j
}

// pending lists up to 1000 pending ids of q.
func (b *bundle) pending(q string) []string {
	b.t.Helper()
	ids, err := b.s.Pending(b.ctx, q, 0, 1000)
	if err != nil {
		b.t.Fatalf("Pending(%s): %v", q, err)
	}
	return ids
}

// DefaultConfig is the dispatcher config tests use: ping every 30 s, dead after 60 s, one
// agent "main" of size 3 (zc.async's defaults).
func DefaultConfig() persistence.DispatcherConfig {
	return persistence.DispatcherConfig{
		PingInterval:      30 * time.Second,
		PingDeathInterval: 60 * time.Second,
		Agents:            []persistence.AgentSpec{{Name: "main", Size: 3}},
	}
}

var uuidSeq atomic.Int64

// newUUID returns a dispatcher UUID unique in this test binary; later ones sort after earlier
// ones.
func newUUID() string { return fmt.Sprintf("d%05d", uuidSeq.Add(1)) }

// activate registers and activates dispatcher uuid in q with config c, failing on error.
func (b *bundle) activate(q, uuid string, c persistence.DispatcherConfig) {
	b.t.Helper()
	if err := b.s.Register(b.ctx, q, uuid, c); err != nil {
		b.t.Fatalf("Register(%s, %s): %v", q, uuid, err)
	}
	if _, err := b.s.Activate(b.ctx, q, uuid); err != nil {
		b.t.Fatalf("Activate(%s, %s): %v", q, uuid, err)
	}
}

// dispatcher registers and activates a fresh dispatcher with DefaultConfig in Queue and
// returns the owner of its agent "main".
func (b *bundle) dispatcher() persistence.Owner {
	b.t.Helper()
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	return persistence.Owner{Dispatcher: u, Agent: "main"}
}

// claim claims for agent o (size size) in Queue with an optional filter, failing on error.
func (b *bundle) claim(o persistence.Owner, size int, filter func(*persistence.Job) bool) []*persistence.Job {
	b.t.Helper()
	jobs, err := b.s.Claim(b.ctx, persistence.ClaimParams{
		Queue: Queue, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: size, Filter: filter,
	})
	if err != nil {
		b.t.Fatalf("Claim(%s): %v", o, err)
	}
	return jobs
}

// claimOne claims at most one job for o, or returns nil.
func (b *bundle) claimOne(o persistence.Owner, filter func(*persistence.Job) bool) *persistence.Job {
	b.t.Helper()
	jobs, err := b.s.Claim(b.ctx, persistence.ClaimParams{
		Queue: Queue, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: 1000, Max: 1, Filter: filter,
	})
	if err != nil {
		b.t.Fatalf("Claim(%s): %v", o, err)
	}
	if len(jobs) == 0 {
		return nil
	}
	return jobs[0]
}

// start starts the run f and checks that the job is ACTIVE with its start stamped.
func (b *bundle) start(f persistence.Fence) *persistence.Job {
	b.t.Helper()
	j, err := b.s.Start(b.ctx, f)
	if err != nil {
		b.t.Fatalf("Start(%s): %v", f.Ref, err)
	}
	if j.Status != persistence.StatusActive || j.ActiveStart.IsZero() {
		b.t.Fatalf("Start(%s): %s, start %v; want ACTIVE with its start stamped", f.Ref, j.Status, j.ActiveStart)
	}
	return j
}

// commit stores result (JSON) as the outcome of run f and checks that the job is in
// CALLBACKS with that result.
func (b *bundle) commit(f persistence.Fence, result string) *persistence.Job {
	b.t.Helper()
	j, err := b.s.Commit(b.ctx, f, persistence.Outcome{Result: json.RawMessage(result)})
	if err != nil {
		b.t.Fatalf("Commit(%s, %s): %v", f.Ref, result, err)
	}
	if j.Status != persistence.StatusCallbacks || string(j.Result) != result {
		b.t.Fatalf("Commit(%s, %s): %s with %s; want CALLBACKS with %s", f.Ref, result, j.Status, j.Result, result)
	}
	return j
}

// complete completes run f after seen callbacks and checks that the job is COMPLETED.
func (b *bundle) complete(f persistence.Fence, seen int) *persistence.Job {
	b.t.Helper()
	j, err := b.s.Complete(b.ctx, f, seen)
	if err != nil {
		b.t.Fatalf("Complete(%s, %d): %v", f.Ref, seen, err)
	}
	if j.Status != persistence.StatusCompleted {
		b.t.Fatalf("Complete(%s, %d): %s, want COMPLETED", f.Ref, seen, j.Status)
	}
	return j
}

// ids returns the ids of jobs.
func ids(jobs []*persistence.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}
