package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/redisproc"
	"github.com/zasync/zasync/persistence"
)

// restartFixture is a store on a redis-server of the test's own, which the test kills and
// restarts from its append-only file. The client has go-redis's default options, as a
// process's has, but for the RESP2 protocol that zasync's commands use.
type restartFixture struct {
	t      *testing.T
	ctx    context.Context
	server *redisproc.Server
	s      *Store
}

func newRestartFixture(t *testing.T) *restartFixture {
	t.Helper()
	if err := redisproc.Available(); errors.Is(err, redisproc.ErrNoServer) {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	server, err := redisproc.Start(ctx, t.TempDir(), "--appendonly", "yes", "--appendfsync", "always")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Close)
	rdb := redis.NewClient(&redis.Options{Addr: server.Addr(), Protocol: 2})
	t.Cleanup(func() { rdb.Close() })
	s := newStore(t, rdb, Options{})
	t.Cleanup(func() { s.Close() })
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 3}}}
	if err := s.Register(ctx, "q", "d1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(ctx, "q", "d1"); err != nil {
		t.Fatal(err)
	}
	return &restartFixture{t: t, ctx: ctx, server: server, s: s}
}

// restart kills Redis and starts it again; every connection open before is then dead.
func (f *restartFixture) restart() {
	f.t.Helper()
	if err := f.server.Restart(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *restartFixture) put() *persistence.Job {
	f.t.Helper()
	j, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}})
	if err != nil {
		f.t.Fatalf("put: %v", err)
	}
	return j
}

// A Redis that was restarted since the store's last call has closed every connection the
// store had: the next put, claim and batch of commits and claims must not be sent on one of
// them (which fails with EOF, or worse, leaves the caller unsure whether it was applied),
// but on a live connection, and succeed at the first try.
func TestRestartedRedisNextWritesSucceed(t *testing.T) {
	f := newRestartFixture(t)
	f.put()

	f.restart()
	j := f.put()

	f.restart()
	jobs, err := f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 3, Max: 1, Start: true})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim after a restart: %d jobs, %v; want 1 job", len(jobs), err)
	}

	f.restart()
	done, errs, claimed, claimErrs := f.s.Batch(f.ctx,
		[]persistence.Commit{{Fence: jobs[0].Fence(), Outcome: persistence.Outcome{Result: []byte("1")}}},
		[]persistence.ClaimParams{{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 3, Start: true}})
	if errs[0] != nil || claimErrs[0] != nil {
		t.Fatalf("batch after a restart: commit %v, claim %v", errs[0], claimErrs[0])
	}
	if done[0] == nil || len(claimed[0]) != 1 {
		t.Fatalf("batch after a restart: committed %v, claimed %d; want the first job committed and the second claimed", done[0], len(claimed[0]))
	}
	if got := claimed[0][0].Ref.ID; got != j.Ref.ID {
		t.Fatalf("batch after a restart claimed %s, want %s", got, j.Ref.ID)
	}
}

// The wake-up subscription outlives a restart of Redis: once Redis is back, a put wakes the
// subscriber again.
func TestRestartedRedisSubscriptionWakesAgain(t *testing.T) {
	f := newRestartFixture(t)
	sub, err := f.s.Subscribe(f.ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	f.put()
	select {
	case <-sub.C():
	case <-f.ctx.Done():
		t.Fatal("no wake-up before the restart")
	}

	f.restart()
	// The subscriber resubscribes on its own once it has seen its connection end, at a moment
	// the test cannot know: a put published before that is not delivered, so put until one is.
	deadline := time.After(30 * time.Second)
	for {
		f.put()
		select {
		case q, ok := <-sub.C():
			if !ok {
				t.Fatal("subscription closed by the restart")
			}
			if q != "q" {
				t.Fatalf("wake-up for %q, want q", q)
			}
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no wake-up within 30 s of the restart")
		}
	}
}
