package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/clock"
	"github.com/zasync/zasync/persistence"
)

// fixture is a store on miniredis with a fake clock and an activated dispatcher.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	m     *miniredis.Miniredis
	rdb   *redis.Client
	s     *Store
	clock *clock.Fake
	owner persistence.Owner
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	c := clock.NewFake(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	s := newStore(t, rdb, Options{Clock: c})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, m: m, rdb: rdb, s: s, clock: c, owner: persistence.Owner{Dispatcher: "d1", Agent: "main"}}
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 3}}}
	if err := s.Register(ctx, "q", "d1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(ctx, "q", "d1"); err != nil {
		t.Fatal(err)
	}
	return f
}

// running puts a job, claims it and starts it.
func (f *fixture) running() *persistence.Job {
	f.t.Helper()
	if _, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}}); err != nil {
		f.t.Fatal(err)
	}
	jobs, err := f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 3})
	if err != nil || len(jobs) != 1 {
		f.t.Fatalf("Claim: %v %v", jobs, err)
	}
	j, err := f.s.Start(f.ctx, jobs[0].Fence())
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

// A transaction that keeps losing its race gives ErrConflict after MaxTxRetries attempts, and
// writes nothing.
func TestConflictAfterBoundedRetries(t *testing.T) {
	f := newFixture(t)
	f.s.noScripts = true // the transaction, which the scripts fall back to
	j := f.running()
	var execs atomic.Int64
	f.s.beforeExec = func(op string) {
		if op == "commit" {
			execs.Add(1)
			f.m.HSet(f.s.k.job("q", j.ID), "touched", "1") // another client writes the job
		}
	}
	_, err := f.s.Commit(f.ctx, j.Fence(), persistence.Outcome{Result: json.RawMessage(`42`)})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("Commit while the job keeps changing: %v, want ErrConflict", err)
	}
	if n := execs.Load(); n != DefaultMaxTxRetries {
		t.Fatalf("Commit tried %d times, want %d", n, DefaultMaxTxRetries)
	}
	if got, _ := f.s.Get(f.ctx, j.Ref); got.Status != persistence.StatusActive || got.Result != nil {
		t.Fatalf("after the conflict: %s result %s, want ACTIVE without result", got.Status, got.Result)
	}
}

// A lost race is retried from the reads: one interfering write costs one more attempt.
func TestConflictRetriedFromReads(t *testing.T) {
	f := newFixture(t)
	f.s.noScripts = true // the transaction, which the scripts fall back to
	j := f.running()
	var execs atomic.Int64
	f.s.beforeExec = func(op string) {
		if op == "commit" && execs.Add(1) == 1 {
			f.m.HSet(f.s.k.job("q", j.ID), "touched", "1")
		}
	}
	got, err := f.s.Commit(f.ctx, j.Fence(), persistence.Outcome{Result: json.RawMessage(`42`)})
	if err != nil || got.Status != persistence.StatusCallbacks || string(got.Result) != "42" {
		t.Fatalf("Commit: %v %v, want CALLBACKS with 42", got, err)
	}
	if n := execs.Load(); n != 2 {
		t.Fatalf("Commit tried %d times, want 2", n)
	}
}

// The retry re-checks the fence: when the race was lost to a reassignment, the late commit is
// rejected with ErrReassigned instead of overwriting the new owner's run.
func TestConflictRecheckedFence(t *testing.T) {
	f := newFixture(t)
	f.s.noScripts = true // the transaction, which the scripts fall back to
	j := f.running()
	f.s.beforeExec = func(op string) {
		if op == "commit" {
			f.s.beforeExec = nil
			f.m.HSet(f.s.k.job("q", j.ID), fOwner, "d2/main", fAttempt, "2")
		}
	}
	_, err := f.s.Commit(f.ctx, j.Fence(), persistence.Outcome{Result: json.RawMessage(`42`)})
	if !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("Commit after reassignment: %v, want ErrReassigned", err)
	}
	got, _ := f.s.Get(f.ctx, j.Ref)
	if got.Owner.Dispatcher != "d2" || got.Attempt != 2 || got.Result != nil {
		t.Fatalf("new owner's run: owner %s attempt %d result %s, want d2, 2, none", got.Owner, got.Attempt, got.Result)
	}
}

// An unreachable Redis gives ErrUnavailable, with no go-redis error inside.
func TestUnavailable(t *testing.T) {
	f := newFixture(t)
	f.m.Close()
	_, err := f.s.Put(f.ctx, "q2", persistence.JobSpec{Call: persistence.Call{Handler: "h"}})
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("Put with Redis down: %v, want ErrUnavailable", err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		t.Fatalf("a go-redis error escaped: %#v", rerr)
	}
	_, err = f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 1})
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("Claim with Redis down: %v, want ErrUnavailable", err)
	}
}

// A server error reply (here: the server refuses commands) is ErrUnavailable too.
func TestServerErrorIsUnavailable(t *testing.T) {
	f := newFixture(t)
	f.m.SetError("LOADING Redis is loading the dataset in memory")
	_, err := f.s.Get(f.ctx, persistence.Ref{Queue: "q", ID: "x"})
	if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "LOADING") {
		t.Fatalf("Get while the server refuses: %v, want ErrUnavailable with its message", err)
	}
}

// Without an injected clock the store uses Redis TIME.
func TestServerClock(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := newStore(t, rdb, Options{})
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	m.SetTime(at)
	ctx := context.Background()
	now, err := s.Now(ctx)
	if err != nil || !now.Equal(at) {
		t.Fatalf("Now: %s %v, want the server's %s", now, err, at)
	}
	// Puts use the offset measured from TIME, not the local clock.
	j, err := s.Put(ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := j.BeginAfter.Sub(at); d < 0 || d > time.Minute {
		t.Fatalf("BeginAfter %s is not the server's time %s", j.BeginAfter, at)
	}
}

// crc16 is CRC16/XMODEM, the checksum Redis Cluster maps keys to slots with.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slot is the Redis Cluster slot of key, hash tags included.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16([]byte(key)) % 16384
}

// Every key of a queue lands in one cluster slot, so every transaction is single-slot.
func TestKeysOfAQueueShareOneSlot(t *testing.T) {
	if got := slot("123456789"); got != 0x31C3%16384 {
		t.Fatalf("crc16 self-check: %#x", got)
	}
	k := keys{"zasync"}
	o := persistence.Owner{Dispatcher: "d1", Agent: "main"}
	for _, q := range []string{"default", "emails", "a.b-c_d"} {
		all := []string{k.job(q, "id"), k.annotations(q, "id"), k.pending(q), k.putback(q), k.agent(q, o),
			k.parked(q, o), k.agents(q), k.dispatchers(q), k.ping(q, "d1"), k.quotas(q), k.quota(q, "x"),
			k.completed(q, o), k.wake(q)}
		want := slot(all[0])
		for _, key := range all {
			if slot(key) != want {
				t.Fatalf("key %s is in slot %d, want %d like %s", key, slot(key), want, all[0])
			}
		}
	}
	if slot(k.pending("a")) == slot(k.pending("b")) {
		t.Fatalf("queues a and b share a slot: the check above would prove nothing")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(nil, Options{}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("New(nil): %v, want ErrInvalid", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := New(rdb, Options{Prefix: "a{b}"}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("New with prefix a{b}: %v, want ErrInvalid", err)
	}
}

// A ping that only rewrites the ping key leaves the dispatcher record alone: claims watch the
// record, and rewriting it at each ping would make every sibling's concurrent claim lose its
// race.
func TestPingDoesNotChurnTheRecord(t *testing.T) {
	f := newFixture(t)
	f.s.noScripts = true // the transaction, which the scripts fall back to
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Hour,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}}
	if err := f.s.Register(f.ctx, "q", "d2", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Activate(f.ctx, "q", "d2"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}}); err != nil {
		t.Fatal(err)
	}
	var execs atomic.Int64
	f.s.beforeExec = func(op string) {
		if op == "claim" && execs.Add(1) == 1 {
			f.clock.Advance(2 * time.Second) // past d1's 1 s ping interval
			if res, err := f.s.Ping(f.ctx, "q", "d1"); err != nil || !res.Wrote {
				t.Errorf("d1's ping during d2's claim: %+v %v, want a written ping", res, err)
			}
		}
	}
	jobs, err := f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d2", Agent: "main", Size: 1})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Claim: %v %v", jobs, err)
	}
	if n := execs.Load(); n != 1 {
		t.Fatalf("d2's claim ran %d times, want 1: d1's ping made it conflict", n)
	}
}

// A record that cannot be read back gives ErrCorrupt, not a panic. A fenced write of a job
// whose fence cannot be read is refused; one whose fence can be read goes on, and leaves the
// field it could not read as stored.
func TestCorruptRecord(t *testing.T) {
	for field, value := range map[string]string{fStatus: "sideways", fAttempt: "x", fCall: "{nope"} {
		t.Run(field, func(t *testing.T) {
			f := newFixture(t)
			j := f.running()
			f.m.HSet(f.s.k.job("q", j.ID), field, value)
			got, err := f.s.Get(f.ctx, j.Ref)
			var corrupt *persistence.CorruptError
			if !errors.Is(err, persistence.ErrCorrupt) || !errors.As(err, &corrupt) || got == nil || got.Corrupt == nil ||
				len(corrupt.Fields) != 1 || corrupt.Fields[0] != field {
				t.Fatalf("Get with %s=%q: %v %v, want the job read in part and a CorruptError naming %s", field, value, got, err, field)
			}
			_, err = f.s.Commit(f.ctx, j.Fence(), persistence.Outcome{Failure: persistence.NewFailure(got.Corrupt, "")})
			if field != fCall {
				if !errors.Is(err, persistence.ErrCorrupt) {
					t.Fatalf("Commit with %s=%q: %v, want ErrCorrupt", field, value, err)
				}
				if f.m.HGet(f.s.k.job("q", j.ID), fFailure) != "" {
					t.Fatal("a commit of a job whose fence cannot be read wrote its failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("Commit with %s=%q: %v, want it committed", field, value, err)
			}
			if v := f.m.HGet(f.s.k.job("q", j.ID), fCall); v != value {
				t.Fatalf("the commit rewrote the field it could not read: %q", v)
			}
		})
	}
	f := newFixture(t)
	f.m.HSet(f.s.k.dispatchers("q"), "d1", "{nope")
	if _, err := f.s.Dispatcher(f.ctx, "q", "d1"); !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("Dispatcher with a corrupt record: %v, want ErrCorrupt", err)
	}
}

// A batch that keeps losing its race falls back to one transaction per run, and every run
// still gets its transition.
func TestBatchFallsBackToOneByOne(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		if _, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}}); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 3})
	if err != nil || len(jobs) != 3 {
		t.Fatalf("Claim: %v %v", jobs, err)
	}
	var execs atomic.Int64
	busy := jobs[1]
	f.s.beforeExec = func(op string) {
		if op == "start" && execs.Add(1) <= batchTries {
			f.m.HSet(f.s.k.job("q", busy.ID), "touched", "1") // one busy job
		}
	}
	fences := []persistence.Fence{jobs[0].Fence(), jobs[1].Fence(), jobs[2].Fence()}
	started, errs, err := f.s.StartMany(f.ctx, fences)
	if err != nil || errors.Join(errs...) != nil {
		t.Fatalf("StartMany: %v %v", errs, err)
	}
	for i, j := range started {
		if j.Status != persistence.StatusActive {
			t.Fatalf("run %d: %s, want ACTIVE", i, j.Status)
		}
	}
	if n := execs.Load(); n != batchTries+3 {
		t.Fatalf("%d EXECs, want %d batch attempts then one per run", n, batchTries+3)
	}
}

// The fence holds when the job is taken away between a commit's read and its EXEC: cleaning
// the dispatcher (it was presumed dead) while its commit is in flight makes the commit lose
// its race, re-read, and fail with ErrReassigned. Cleaning an ACTIVE job only clears fields
// of its record, and miniredis does not count HDEL as a change to a watched key, so every
// write of a record must also HSET something (writeJob re-sets the status).
func TestFenceHoldsWhenCleanedMidCommit(t *testing.T) {
	f := newFixture(t)
	f.s.noScripts = true // the transaction, which the scripts fall back to
	j := f.running()
	f.s.beforeExec = func(op string) {
		if op == "commit" {
			f.s.beforeExec = nil
			if _, err := f.s.Deactivate(f.ctx, "q", "d1"); err != nil {
				t.Errorf("Deactivate: %v", err)
			}
		}
	}
	_, err := f.s.Commit(f.ctx, j.Fence(), persistence.Outcome{Result: json.RawMessage(`42`)})
	if !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("commit of a job cleaned meanwhile: %v, want ErrReassigned", err)
	}
	got, err := f.s.Get(f.ctx, j.Ref)
	if err != nil || got.Status != persistence.StatusActive || got.Result != nil || !got.Owner.IsZero() {
		t.Fatalf("cleaned job after the late commit: %+v %v, want ACTIVE, no result, no owner", got, err)
	}
}

// A late commit refused inside a Batch (the path a node's committer takes) is noted on the
// job as one through CommitMany is: the stale run's attempt carries when.
func TestBatchNotesARefusedLateCommit(t *testing.T) {
	f := newFixture(t)
	j := f.running()
	if _, err := f.s.Deactivate(f.ctx, "q", "d1"); err != nil {
		t.Fatal(err)
	}
	_, errs, _, _ := f.s.Batch(f.ctx, []persistence.Commit{{Fence: j.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`42`)}}}, nil)
	if !errors.Is(errs[0], persistence.ErrReassigned) {
		t.Fatalf("Batch's late commit: %v, want ErrReassigned", errs[0])
	}
	got, err := f.s.Get(f.ctx, j.Ref)
	if err != nil || len(got.Attempts) != 1 || got.Attempts[0].Owner != j.Owner.String() || got.Attempts[0].LateCommit.IsZero() {
		t.Fatalf("the job after a late commit in a batch: %+v %v, want its interrupted run noted", got.Attempts, err)
	}
	if got.Result != nil || got.Status != persistence.StatusActive {
		t.Fatalf("the late commit changed the job: %s %s", got.Status, got.Result)
	}
}

// A read that hit its socket deadline is a passed deadline for the caller, as well as the
// store being unavailable: the socket deadline comes from the context's, and the read can
// time out a moment before the context says it is done.
func TestSocketDeadlineIsAContextDeadline(t *testing.T) {
	s := &Store{}
	err := s.fail("get", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("fail(i/o timeout) = %v, want DeadlineExceeded and ErrUnavailable", err)
	}
	if err := s.fail("get", errors.New("ERR something")); errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fail(server error) = %v, want no deadline in it", err)
	}
}

// The store's own connection is kept from call to call, and given back to the pool and taken
// again once it has been kept for ownFor (see ownConn): the pool then has it, not a new one.
func TestOwnConnectionIsGivenBack(t *testing.T) {
	f := newFixture(t)
	put := func() {
		t.Helper()
		if _, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}}); err != nil {
			t.Fatal(err)
		}
	}
	f.s.ownIdle = time.Hour // a busy machine may leave more than ownConnIdle between two puts
	put()
	first := f.s.own.conn
	put()
	if first == nil || f.s.own.conn != first {
		t.Fatalf("own connection %p, then %p: want it kept", first, f.s.own.conn)
	}
	f.s.ownFor = 0
	put()
	if f.s.own.conn == first {
		t.Fatal("own connection kept past ownFor: want it given back and another taken")
	}
	second := f.s.own.conn
	f.s.ownFor, f.s.ownIdle = time.Hour, 0
	put()
	if f.s.own.conn == second {
		t.Fatal("own connection kept though unused for ownIdle: want it given back and another taken")
	}
	if n := f.rdb.PoolStats().TotalConns; n > 2 {
		t.Fatalf("%d connections in the pool: want the one given back reused", n)
	}
}

// BeginIn schedules a job by the store's clock at the put; given with BeginAfter, or
// negative, it is refused and nothing is written.
func TestPutBeginIn(t *testing.T) {
	f := newFixture(t)
	j, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}, BeginIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clock.Now().Add(time.Hour); !j.BeginAfter.Equal(want) {
		t.Fatalf("BeginAfter %v, want the store's time plus an hour, %v", j.BeginAfter, want)
	}
	got, err := f.s.Get(f.ctx, j.Ref)
	if err != nil || !got.BeginAfter.Equal(j.BeginAfter) {
		t.Fatalf("stored BeginAfter %v, %v; want %v", got, err, j.BeginAfter)
	}
	for name, spec := range map[string]persistence.JobSpec{
		"negative": {Call: persistence.Call{Handler: "h"}, BeginIn: -time.Second},
		"both":     {Call: persistence.Call{Handler: "h"}, BeginIn: time.Hour, BeginAfter: f.clock.Now()},
	} {
		if _, err := f.s.Put(f.ctx, "q", spec); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if n, _ := f.m.ZMembers(f.s.k.pending("q")); len(n) != 1 {
		t.Fatalf("pending after the refused puts: %v, want the first job only", n)
	}
}

// Stats is one snapshot: a job claimed by a new agent between the read of the queue's agents
// and the counts still counts, as held, not as nothing (which made a busy queue look idle).
func TestStatsIsOneSnapshot(t *testing.T) {
	f := newFixture(t)
	if _, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: "h"}}); err != nil {
		t.Fatal(err)
	}
	f.s.beforeExec = func(op string) {
		if op == "stats" {
			f.s.beforeExec = nil
			if _, err := f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "new", Size: 1}); err != nil {
				t.Errorf("Claim: %v", err)
			}
		}
	}
	st, err := f.s.Stats(f.ctx, "q")
	if err != nil || st.Due != 0 || st.Held != 1 {
		t.Fatalf("Stats while a new agent claims the only job: %+v %v, want it held", st, err)
	}
}
