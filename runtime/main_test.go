package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/persistence"
)

// TestMain checks that no test leaves a goroutine behind. One of protoactor's is let go: after
// a dead letter, an actor system made with its defaults (as the examples make the program's
// own) keeps a throttling goroutine for one second, then it ends by itself.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

// newRuntime returns a Runtime for cfg, closed when the test ends. By default it runs on the
// embedded miniredis (cfg.Redis nil); when ZASYNC_TEST_REDIS is set and cfg names no client,
// on that real Redis under a key prefix of its own, whose keys are deleted at the end (never
// a FLUSHDB: the database may not be ours).
func newRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	if addr := testredis.Addr(); addr != "" && cfg.Redis == nil {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		cfg.Redis, cfg.Prefix = c, testredis.Prefix("rt")
		testredis.DeleteAtCleanup(t, addr, cfg.Prefix)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rt
}

// testCtx returns a context that ends with the test, or after a generous deadline so that a
// broken wait fails the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runAsDispatcher does at store level what a dispatcher does with a job: it registers and
// activates a dispatcher in the job's queue, claims the job, starts it and commits o (with
// Complete, so that a job without callbacks goes straight to COMPLETED).
func runAsDispatcher(ctx context.Context, rt *Runtime, job *Job, o persistence.Outcome) error {
	q := job.Ref().Queue
	b := make([]byte, 4)
	rand.Read(b)
	uuid := "dispatcher-" + hex.EncodeToString(b)
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}}
	if err := rt.store.Register(ctx, q, uuid, cfg); err != nil {
		return err
	}
	if _, err := rt.store.Activate(ctx, q, uuid); err != nil {
		return err
	}
	claimed, err := rt.store.Claim(ctx, persistence.ClaimParams{Queue: q, Dispatcher: uuid, Agent: "main", Size: 1,
		Filter: func(j *persistence.Job) bool { return j.ID == job.ID() }})
	if err != nil {
		return err
	}
	if len(claimed) != 1 {
		return fmt.Errorf("claimed %d jobs, want 1", len(claimed))
	}
	run, err := rt.store.Start(ctx, claimed[0].Fence())
	if err != nil {
		return err
	}
	o.Complete = true
	done, err := rt.store.Commit(ctx, run.Fence(), o)
	if err != nil {
		return err
	}
	if done.Status != persistence.StatusCompleted {
		return errors.New("the job did not complete: " + done.Status.String())
	}
	return nil
}

// mustPut puts call into the default queue.
func mustPut(t *testing.T, rt *Runtime, call Call, opts ...PutOption) *Job {
	t.Helper()
	job, err := rt.Queue(DefaultQueue).Put(testCtx(t), call, opts...)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return job
}

// mustInfo reads a job's record.
func mustInfo(t *testing.T, job *Job) *JobRecord {
	t.Helper()
	rec, err := job.Info(testCtx(t))
	if err != nil {
		t.Fatalf("Info %s: %v", job, err)
	}
	return rec
}

// customPolicy is a user retry policy, registered by name.
type customPolicy struct {
	RetryPolicy
	name string
}

func (p customPolicy) Name() string { return p.name }

// sharedRedis returns a Redis client and a key prefix for several runtimes of one test, as
// several processes of one installation: miniredis, or the real Redis of ZASYNC_TEST_REDIS
// under a prefix of the test's own.
func sharedRedis(t *testing.T, tag string) (redis.UniversalClient, string) {
	t.Helper()
	addr, prefix := testredis.Shared(t, tag)
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c, prefix
}

// await waits for ch to deliver or close, failing the test when ctx ends first.
func await[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
		var zero T
		return zero
	}
}
