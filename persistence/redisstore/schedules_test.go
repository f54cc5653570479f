package redisstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// tickDecl is a declaration of schedule name in queue "q" by process.
func tickDecl(name, process string, missed persistence.Missed) persistence.ScheduleDecl {
	return persistence.ScheduleDecl{Queue: "q", Name: name, Spec: "@every 1s",
		Job: persistence.JobSpec{Call: persistence.Call{Handler: "h"}}, Missed: missed,
		Process: process, TTL: 30 * time.Second}
}

// Goroutines on several clients race for the same ticks, each tick tried by all of them and
// some tried twice by one (a put whose reply was lost, retried): each tick is put exactly once,
// and its job is in the queue once, with the derived id.
func TestPutTickExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Several stores (several processes' clients) on one prefix.
			c := b.client(t)
			first := newStore(t, c, Options{})
			stores := []*Store{first}
			for range 2 {
				s, err := New(anotherClient(t, c), Options{Prefix: first.k.prefix})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				stores = append(stores, s)
			}
			now, err := first.Now(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d := tickDecl("race", "p1", "")
			if err := first.DeclareSchedule(ctx, d); err != nil {
				t.Fatal(err)
			}
			base := now.Truncate(time.Second).Add(time.Second)
			const ticks, racers = 10, 4
			var mu sync.Mutex
			puts := map[time.Time]int{}
			var wg sync.WaitGroup
			errs := make(chan error, len(stores)*racers)
			for _, s := range stores {
				for r := range racers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range ticks {
							tick := base.Add(time.Duration(i) * time.Second)
							for range 1 + r%2 { // every other racer tries each tick twice
								res, err := s.PutTick(ctx, d, tick)
								if err != nil {
									errs <- err
									return
								}
								if res.Outcome == persistence.TickPut {
									mu.Lock()
									puts[tick]++
									mu.Unlock()
								} else if res.Outcome != persistence.TickAlreadyPut || res.LastTick.Before(tick) {
									errs <- fmt.Errorf("tick %s: %v, last %s", tick, res.Outcome, res.LastTick)
									return
								}
							}
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for i := range ticks {
				tick := base.Add(time.Duration(i) * time.Second)
				if puts[tick] != 1 {
					t.Errorf("tick %s put %d times, want once", tick.Format(time.TimeOnly), puts[tick])
				}
			}
			checkTickJobs(t, ctx, first, "race", base, ticks)
		})
	}
}

// anotherClient returns a client of its own to the server c is a client of.
func anotherClient(t *testing.T, c redis.UniversalClient) redis.UniversalClient {
	var o redis.UniversalClient
	switch c := c.(type) {
	case *redis.Client:
		o = redis.NewClient(&redis.Options{Addr: c.Options().Addr})
	case *redis.ClusterClient:
		o = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Options().Addrs})
	default:
		t.Fatalf("client %T", c)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// checkTickJobs checks that the queue holds exactly the jobs of n ticks from base, each once.
func checkTickJobs(t *testing.T, ctx context.Context, s *Store, name string, base time.Time, n int) {
	t.Helper()
	ids, err := s.Pending(ctx, "q", 0, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	if len(ids) != n {
		t.Errorf("queue holds %d jobs, want %d: %v", len(ids), n, ids)
	}
	for i := range n {
		id := persistence.TickJobID(name, base.Add(time.Duration(i)*time.Second))
		if seen[id] != 1 {
			t.Errorf("job %s in the queue %d times, want once", id, seen[id])
		}
		j, err := s.Get(ctx, persistence.Ref{Queue: "q", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if want := base.Add(time.Duration(i) * time.Second); !j.BeginAfter.Equal(want) || j.Status != persistence.StatusPending {
			t.Errorf("job %s: begin_after %s, status %v; want %s, pending", id, j.BeginAfter, j.Status, want)
		}
	}
}

// tickHelperEnv carries, to TestPutTickHelperProcess run as a process of its own, the Redis
// address, the key prefix, the first tick (Unix seconds) and how many ticks to put.
const tickHelperEnv = "ZASYNC_TICK_HELPER"

// Processes of their own, each with its own client, race for the same ticks: each tick is
// put exactly once. On miniredis (its port is reachable from other processes) and on the
// real Redis of ZASYNC_TEST_REDIS.
func TestPutTickExactlyOnceAcrossProcesses(t *testing.T) {
	t.Parallel()
	addr := os.Getenv("ZASYNC_TEST_REDIS")
	if addr == "" {
		addr = miniredis.RunT(t).Addr()
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	s := newStore(t, c, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.DeclareSchedule(ctx, tickDecl("procs", "p1", "")); err != nil {
		t.Fatal(err)
	}
	now, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := now.Truncate(time.Second).Add(time.Second)
	const ticks, procs = 20, 3
	var cmds []*exec.Cmd
	var outs []*bufio.Scanner
	for range procs {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPutTickHelperProcess$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d,%d", tickHelperEnv, addr, s.k.prefix, base.Unix(), ticks))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		cmds = append(cmds, cmd)
		outs = append(outs, bufio.NewScanner(out))
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	puts := map[string]int{}
	for i, out := range outs {
		for out.Scan() {
			if id, ok := strings.CutPrefix(out.Text(), "put "); ok {
				puts[id]++
			}
		}
		if err := cmds[i].Wait(); err != nil {
			t.Fatalf("helper process %d: %v", i, err)
		}
	}
	for i := range ticks {
		id := persistence.TickJobID("procs", base.Add(time.Duration(i)*time.Second))
		if puts[id] != 1 {
			t.Errorf("%s put %d times, want once", id, puts[id])
		}
	}
	checkTickJobs(t, ctx, s, "procs", base, ticks)
}

// TestPutTickHelperProcess is one of the processes of TestPutTickExactlyOnceAcrossProcesses:
// it puts every tick, printing "put <id>" for each it put.
func TestPutTickHelperProcess(t *testing.T) {
	v := os.Getenv(tickHelperEnv)
	if v == "" {
		t.Skip("run by TestPutTickExactlyOnceAcrossProcesses")
	}
	parts := strings.Split(v, ",")
	first, _ := strconv.ParseInt(parts[2], 10, 64)
	n, _ := strconv.Atoi(parts[3])
	c := redis.NewClient(&redis.Options{Addr: parts[0]})
	defer c.Close()
	s, err := New(c, Options{Prefix: parts[1]})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := tickDecl("procs", "p"+strconv.Itoa(os.Getpid()), "")
	for i := range n {
		tick := time.Unix(first+int64(i), 0)
		res, err := s.PutTick(ctx, d, tick)
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome == persistence.TickPut {
			fmt.Printf("put %s\n", res.LastJob)
		}
	}
}

// A tick missed (put later than the grace) is put with run-once and not with skip; ticks at
// or before the schedule's creation are never its own; an older tick after a newer one is
// already put; a tick whose job exists (its record lost) is not put again.
func TestPutTickMissed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		missed persistence.Missed
		want   persistence.TickOutcome
	}{
		{persistence.MissedRunOnce, persistence.TickPut},
		{"", persistence.TickPut},
		{persistence.MissedSkip, persistence.TickMissed},
	} {
		t.Run(string(tc.missed), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			start := f.clock.Now()
			d := tickDecl("m", "p1", tc.missed)
			d.Spec = "@every 1m"
			if err := f.s.DeclareSchedule(f.ctx, d); err != nil {
				t.Fatal(err)
			}
			put := func(tick time.Time) persistence.TickResult {
				t.Helper()
				res, err := f.s.PutTick(f.ctx, d, tick)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			if res := put(start); res.Outcome != persistence.TickBeforeSchedule {
				t.Errorf("tick at creation: %v, want before the schedule", res.Outcome)
			}
			f.clock.Advance(time.Minute + time.Second)
			if res := put(start.Add(time.Minute)); res.Outcome != persistence.TickPut {
				t.Errorf("tick on time: %v, want put", res.Outcome)
			}
			// Every process down for ten minutes: the newest tick is five minutes late.
			f.clock.Advance(10 * time.Minute)
			late := start.Add(6 * time.Minute)
			if res := put(late); res.Outcome != tc.want {
				t.Errorf("late tick: %v, want %v", res.Outcome, tc.want)
			}
			// The next tick on time is put whatever the policy.
			next := f.clock.Now().Truncate(time.Minute).Add(time.Minute)
			f.clock.Set(next.Add(time.Second))
			if res := put(next); res.Outcome != persistence.TickPut {
				t.Errorf("next tick: %v, want put", res.Outcome)
			}
			if res := put(late); res.Outcome != persistence.TickAlreadyPut {
				t.Errorf("older tick after a newer: %v, want already put", res.Outcome)
			}
			// The record lost (a Redis restarted empty, say) while the job stayed: the
			// job's id fences the tick.
			if err := f.rdb.Del(f.ctx, f.s.k.schedule("q", "m")).Err(); err != nil {
				t.Fatal(err)
			}
			if res := put(next); res.Outcome != persistence.TickAlreadyPut {
				t.Errorf("tick whose job exists: %v, want already put", res.Outcome)
			}
		})
	}
}

// Declarations are listed while they live, and a schedule with none is still listed with its
// last tick until it is forgotten.
func TestScheduleRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d1, d2 := tickDecl("list", "p1", ""), tickDecl("list", "p2", persistence.MissedSkip)
	d2.TTL = time.Minute
	for _, d := range []persistence.ScheduleDecl{d1, d2} {
		if err := f.s.DeclareSchedule(f.ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	tick := f.clock.Now().Truncate(time.Second).Add(time.Second)
	f.clock.Set(tick)
	if _, err := f.s.PutTick(f.ctx, d1, tick); err != nil {
		t.Fatal(err)
	}
	rs, err := f.s.ScheduleRecords(f.ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d schedules listed, want 1", len(rs))
	}
	r := rs[0]
	if r.Name != "list" || r.Spec != "@every 1s" || r.Handler != "h" || r.Missed != persistence.MissedSkip ||
		!r.LastTick.Equal(tick) || r.LastJob != persistence.TickJobID("list", tick) || len(r.Declarers) != 2 || r.Corrupt != nil {
		t.Errorf("record: %+v", r)
	}
	f.clock.Advance(45 * time.Second) // p1's declaration has expired, not p2's
	if rs, err = f.s.ScheduleRecords(f.ctx, "q"); err != nil || len(rs) != 1 || len(rs[0].Declarers) != 1 || rs[0].Declarers[0].Process != "p2" {
		t.Fatalf("after p1 expired: %+v, %v", rs, err)
	}
	if err := f.s.UndeclareSchedule(f.ctx, "q", "list", "p2"); err != nil {
		t.Fatal(err)
	}
	if rs, err = f.s.ScheduleRecords(f.ctx, "q"); err != nil || len(rs) != 1 || len(rs[0].Declarers) != 0 {
		t.Fatalf("undeclared: %+v, %v", rs, err)
	}
	// Forgotten: the record expires in Redis, and the next declaration drops it from the index.
	f.m.FastForward(persistence.ScheduleForgetAfter + time.Hour)
	f.clock.Advance(persistence.ScheduleForgetAfter + time.Hour)
	if err := f.s.DeclareSchedule(f.ctx, tickDecl("other", "p1", "")); err != nil {
		t.Fatal(err)
	}
	if rs, err = f.s.ScheduleRecords(f.ctx, "q"); err != nil || len(rs) != 1 || rs[0].Name != "other" {
		t.Fatalf("after forgetting: %+v, %v", rs, err)
	}
	if n, err := f.rdb.ZCard(f.ctx, f.s.k.schedules("q")).Result(); err != nil || n != 1 {
		t.Errorf("index holds %d names, want 1 (%v)", n, err)
	}
}

// Bad declarations and ticks are refused with ErrInvalid and write nothing.
func TestPutTickBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := tickDecl("bad", "p1", "")
	for _, tc := range []struct {
		name string
		edit func(*persistence.ScheduleDecl)
	}{
		{"empty name", func(d *persistence.ScheduleDecl) { d.Name = "" }},
		{"name with a colon", func(d *persistence.ScheduleDecl) { d.Name = "a:b" }},
		{"long name", func(d *persistence.ScheduleDecl) { d.Name = strings.Repeat("n", 65) }},
		{"bad spec", func(d *persistence.ScheduleDecl) { d.Spec = "* * *" }},
		{"bad missed", func(d *persistence.ScheduleDecl) { d.Missed = "twice" }},
		{"no handler", func(d *persistence.ScheduleDecl) { d.Job.Call.Handler = "" }},
		{"no ttl", func(d *persistence.ScheduleDecl) { d.TTL = 0 }},
		{"bad process", func(d *persistence.ScheduleDecl) { d.Process = "a b" }},
	} {
		d := good
		tc.edit(&d)
		if err := f.s.DeclareSchedule(f.ctx, d); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("%s: declare gave %v, want ErrInvalid", tc.name, err)
		}
		if _, err := f.s.PutTick(f.ctx, d, f.clock.Now().Truncate(time.Second)); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("%s: put tick gave %v, want ErrInvalid", tc.name, err)
		}
	}
	if _, err := f.s.PutTick(f.ctx, good, f.clock.Now().Add(time.Millisecond)); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("tick not a whole second: %v, want ErrInvalid", err)
	}
	if keys := f.m.Keys(); len(keys) != len(f.m.Keys()) || strings.Contains(strings.Join(keys, " "), "schedule") {
		t.Errorf("bad input wrote %v", keys)
	}
}

// A schedule's keys are in its queue's slot, with the jobs its ticks put: PutTick's
// transaction is single-slot.
func TestScheduleKeysShareTheQueueSlot(t *testing.T) {
	t.Parallel()
	k := keys{"zasync"}
	for _, q := range []string{"default", "a.b-c_d"} {
		want := slot(k.job(q, persistence.TickJobID("s", time.Unix(0, 0))))
		for _, key := range []string{k.schedule(q, "s"), k.schedules(q), k.pending(q), k.wake(q)} {
			if slot(key) != want {
				t.Errorf("key %s is in slot %d, want %d", key, slot(key), want)
			}
		}
	}
}

// A tick's job of a priority other than the default is queued at its priority, as a put's,
// and claimed before the default's.
func TestPutTickPriority(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	plain, urgent := tickDecl("plain", "p1", ""), tickDecl("urgent", "p1", "")
	urgent.Job.Priority = persistence.MaxPriority
	for _, d := range []persistence.ScheduleDecl{plain, urgent} {
		if err := f.s.DeclareSchedule(f.ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	tick := f.clock.Now().Truncate(time.Second).Add(time.Second)
	f.clock.Set(tick)
	for _, d := range []persistence.ScheduleDecl{plain, urgent} {
		if res, err := f.s.PutTick(f.ctx, d, tick); err != nil || res.Outcome != persistence.TickPut {
			t.Fatalf("%s: %+v %v", d.Name, res, err)
		}
	}
	jobs, err := f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 1})
	if err != nil || len(jobs) != 1 || jobs[0].ID != persistence.TickJobID("urgent", tick) || jobs[0].Priority != persistence.MaxPriority {
		t.Fatalf("claimed %v, %v: want the urgent tick first", jobs, err)
	}
}
