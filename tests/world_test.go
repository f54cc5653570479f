package tests

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/redisstore"
	"github.com/zasync/zasync/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// world is one Redis (miniredis, or the real one at ZASYNC_TEST_REDIS) under a key prefix
// of the test's own, shared by every runtime the test starts, as separate processes share a
// Redis; store reads the same keys, to look at queues the way an operator would.
type world struct {
	t      *testing.T
	ctx    context.Context
	client redis.UniversalClient
	prefix string
	store  persistence.Store
	mini   *miniredis.Miniredis // nil on a real Redis
}

// backends runs fn once per Redis the tests use.
func backends(t *testing.T, fn func(t *testing.T, w *world)) {
	t.Run("miniredis", func(t *testing.T) { fn(t, newWorld(t, "")) })
	if addr := os.Getenv("ZASYNC_TEST_REDIS"); addr != "" {
		t.Run("redis", func(t *testing.T) { fn(t, newWorld(t, addr)) })
	}
}

func newWorld(t *testing.T, addr string) *world {
	t.Helper()
	var c *redis.Client
	var m *miniredis.Miniredis
	if addr == "" {
		m = miniredis.RunT(t)
		c = redis.NewClient(&redis.Options{Addr: m.Addr()})
	} else {
		c = redis.NewClient(&redis.Options{Addr: addr})
	}
	t.Cleanup(func() { c.Close() })
	w := &world{t: t, client: c, prefix: testredis.Prefix("e2e"), mini: m}
	if addr != "" {
		testredis.DeleteAtCleanup(t, addr, w.prefix)
	}
	s, err := redisstore.New(c, redisstore.Options{Prefix: w.prefix})
	if err != nil {
		t.Fatal(err)
	}
	w.store = s
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	w.ctx = ctx
	return w
}

// runtime returns a runtime on the world's Redis for dispatcher uuid, serving the default
// queue with one agent of size, with handlers; it is closed at the end of the test.
func (w *world) runtime(uuid string, size int, handlers map[string]runtime.HandlerFunc) *runtime.Runtime {
	w.t.Helper()
	rt, err := runtime.New(runtime.Config{
		Redis: w.client, Prefix: w.prefix, UUID: uuid,
		Queues:       []runtime.QueueConfig{{Name: runtime.DefaultQueue, Agents: []runtime.AgentConfig{{Name: "main", Size: size}}}},
		PollInterval: 100 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute, ShutdownGrace: 10 * time.Second,
	})
	if err != nil {
		w.t.Fatalf("New: %v", err)
	}
	w.t.Cleanup(func() { rt.Close() })
	for name, h := range handlers {
		if err := rt.Handle(name, h); err != nil {
			w.t.Fatal(err)
		}
	}
	return rt
}

// runtimeWith returns a runtime on the world's Redis configured by cfg (its Redis and Prefix
// are set here), with handlers; it is closed at the end of the test.
func (w *world) runtimeWith(cfg runtime.Config, handlers map[string]runtime.HandlerFunc) *runtime.Runtime {
	w.t.Helper()
	cfg.Redis, cfg.Prefix = w.client, w.prefix
	rt, err := runtime.New(cfg)
	if err != nil {
		w.t.Fatalf("New: %v", err)
	}
	w.t.Cleanup(func() { rt.Close() })
	for name, h := range handlers {
		if err := rt.Handle(name, h); err != nil {
			w.t.Fatal(err)
		}
	}
	return rt
}

func (w *world) start(rt *runtime.Runtime) {
	w.t.Helper()
	if err := rt.Start(w.ctx); err != nil {
		w.t.Fatalf("Start: %v", err)
	}
}

func (w *world) stop(rt *runtime.Runtime) {
	w.t.Helper()
	if err := rt.Stop(w.ctx); err != nil {
		w.t.Fatalf("Stop: %v", err)
	}
}

// record reads a job's record.
func (w *world) record(id string) *persistence.Job {
	w.t.Helper()
	j, err := w.store.Get(w.ctx, persistence.Ref{Queue: runtime.DefaultQueue, ID: id})
	if err != nil {
		w.t.Fatal(err)
	}
	return j
}

// queued reads the jobs waiting in the default queue, in claim order.
func (w *world) queued() []*persistence.Job {
	w.t.Helper()
	ids, err := w.store.Pending(w.ctx, runtime.DefaultQueue, 0, 100)
	if err != nil {
		w.t.Fatal(err)
	}
	jobs, err := w.store.GetMany(w.ctx, runtime.DefaultQueue, ids)
	if err != nil {
		w.t.Fatal(err)
	}
	return jobs
}

// eventually polls cond, a condition on the stored state, until it holds (30 s at most).
func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition with a deadline
	}
}

// parts returns the sub-job ids (the composite's children) and the postprocess id of a
// composite job.
func (w *world) parts(id string) (subs []string, post string) {
	w.t.Helper()
	rec := w.record(id)
	if json.Unmarshal(rec.Call.Kwargs["postprocess"], &post) != nil {
		w.t.Fatalf("%s is not a composite: %s", id, rec.Call.String())
	}
	return rec.Children, post
}
