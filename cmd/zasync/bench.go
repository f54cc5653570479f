package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zasync/zasync/runtime"
)

// maxPayload is the largest --payload: Redis stores no longer string (proto-max-bulk-len's
// default), so a larger one could only fail, after filling this process's memory.
const maxPayload = 512 << 20

// benchShape is the workload of one bench run: how many jobs, how big, over how many queues,
// put by how many goroutines and run by how many slots.
type benchShape struct {
	jobs, conc, payload, queues, producers int
	batch                                  bool
	// priorities: the jobs are put at priorities 1 to 9 in turn (one job, or one batch, at
	// each), so that the drain claims from every priority's queue.
	priorities bool
}

// check reports the first value of s that makes no workload, as a usage error.
func (s benchShape) check(samples int) error {
	switch {
	case s.jobs < 1 || s.conc < 1 || samples < 0:
		return usagef("--jobs and --concurrency must be at least 1, --pickup at least 0")
	case s.payload < 0 || s.payload > maxPayload:
		return usagef("--payload must be between 0 and %d bytes, not %d", maxPayload, s.payload)
	case s.queues < 1 || s.queues > s.conc:
		return usagef("--queues must be between 1 and --concurrency (%d), not %d: the queues share the --concurrency slots", s.conc, s.queues)
	case s.producers < 1:
		return usagef("--producers must be at least 1, not %d", s.producers)
	}
	return nil
}

// queueNames names the queues the jobs spread over: "bench" alone, else bench-0, bench-1…
func (s benchShape) queueNames() []string {
	if s.queues == 1 {
		return []string{"bench"}
	}
	names := make([]string, s.queues)
	for i := range names {
		names[i] = "bench-" + strconv.Itoa(i)
	}
	return names
}

// queueConfigs gives each queue one agent, sharing the --concurrency slots among them as
// evenly as they divide: asynq's Concurrency is the number of tasks its server runs at once
// over all its queues, and this runtime must not run more.
func (s benchShape) queueConfigs() []runtime.QueueConfig {
	qs := make([]runtime.QueueConfig, s.queues)
	for i, name := range s.queueNames() {
		size := s.conc / s.queues
		if i < s.conc%s.queues {
			size++
		}
		qs[i] = runtime.QueueConfig{Name: name, Agents: []runtime.AgentConfig{{Name: "main", Size: size}}}
	}
	return qs
}

// call is the job every put makes: a no-op, with one JSON string argument of --payload bytes
// (quotes included, so at least 2) when there is a payload, as the asynq harness's body is.
func (s benchShape) call() runtime.Call {
	if s.payload == 0 {
		return runtime.NewCall("noop")
	}
	arg := make([]byte, max(2, s.payload))
	for i := range arg {
		arg[i] = 'x'
	}
	arg[0], arg[len(arg)-1] = '"', '"'
	return runtime.NewCall("noop", json.RawMessage(arg))
}

// String is the shape as the printed line gives it: the fields that are not their defaults.
func (s benchShape) String() string {
	out := fmt.Sprintf("n=%d c=%d", s.jobs, s.conc)
	if s.payload > 0 {
		out += fmt.Sprintf(" payload=%d", s.payload)
	}
	if s.queues > 1 {
		out += fmt.Sprintf(" queues=%d", s.queues)
	}
	if s.producers > 1 {
		out += fmt.Sprintf(" producers=%d", s.producers)
	}
	if s.priorities {
		out += " priorities"
	}
	return out
}

// benchHooks let the tests watch a run; nil fields do nothing.
type benchHooks struct {
	// put is called by a producer before each Put or PutMany, on its own goroutine.
	put func()
	// drained is called once every job has run and been committed, before the pickup and
	// before the keys are deleted; an error it returns ends the run.
	drained func(ctx context.Context, rt *runtime.Runtime, queues []string) error
}

// runBench enqueues --jobs no-op jobs (one by one, or in batches with --batch, from
// --producers goroutines at once, round-robin over --queues queues), then drains them with
// one dispatcher whose agents share --concurrency slots, and prints one line:
// zasync n=N c=C [payload=B queues=Q producers=P priorities] enqueue=E jobs/s drain=D jobs/s pickup p50=… p99=…
// The pickup latency is measured afterwards on the idle dispatcher: the time from a put to
// its handler starting. Its keys live under a prefix of their own, deleted at the end.
func runBench(args []string, stdout, stderr io.Writer) error {
	return bench(args, stdout, stderr, benchHooks{})
}

// bench is runBench with hooks for the tests.
func bench(args []string, stdout, stderr io.Writer, hooks benchHooks) error {
	fs := flags("bench", "[--jobs N] [--concurrency C] [--payload BYTES] [--queues Q] [--producers P] [--batch] [--priorities] [--redis URL] [--stats] [--cpuprofile FILE] [--memprofile FILE]", stderr)
	var s benchShape
	fs.IntVar(&s.jobs, "jobs", 10000, "number of no-op jobs")
	fs.IntVar(&s.conc, "concurrency", 8, "jobs run at once over all the queues, as asynq's Concurrency: the agent's size, or with --queues the sizes of the queues' agents added up")
	fs.IntVar(&s.payload, "payload", 0, "each job's argument is a JSON string of this many bytes, quotes included (0: no argument; at least 2, the quotes)")
	fs.IntVar(&s.queues, "queues", 1, "spread the jobs round-robin over this many queues, all served by this one runtime with one agent each; "+
		"the --concurrency slots are shared among those agents as evenly as they divide, so it may be at most --concurrency")
	fs.IntVar(&s.producers, "producers", 1, "goroutines putting at once, each one job (or one --batch) at a time")
	fs.BoolVar(&s.batch, "batch", false, "enqueue in batches of 1,000 (one round trip each per queue) instead of one by one")
	fs.BoolVar(&s.priorities, "priorities", false, "put the jobs at priorities 1 to 9 in turn (each job, or each --batch), to compare the drain with priorities in use with the plain one")
	rflags := addRedisFlags(fs, "Redis URL (default $"+redisEnv+", else an embedded Redis)")
	samples := fs.Int("pickup", 50, "jobs put one at a time on the idle dispatcher to measure pickup latency")
	stats := fs.Bool("stats", false, "print, on stderr, the round-trip floor (bare PING and HSET of a job's call, medians) and the cost per job of each phase: round trips, Redis commands and CPU, Go CPU and allocations")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the drain to this file")
	memprofile := fs.String("memprofile", "", "write an allocation profile of the drain to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := s.check(*samples); err != nil {
		return err
	}
	ctx := context.Background()
	rflags.url = poolFor(rflags.url, s.producers)
	conn, err := connect(ctx, rflags, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	b := make([]byte, 4)
	rand.Read(b)
	prefix := "zasyncbench-" + hex.EncodeToString(b)
	defer deleteKeys(conn, prefix)

	rt, err := runtime.New(runtime.Config{Redis: conn.client, Prefix: prefix, UUID: prefix, Queues: s.queueConfigs()})
	if err != nil {
		return err
	}
	defer rt.Close()
	var ran atomic.Int64
	started := make(chan time.Time, 1)
	rt.Handle("noop", func(context.Context, *runtime.Call) (any, error) { ran.Add(1); return nil, nil })
	rt.Handle("pickup", func(context.Context, *runtime.Call) (any, error) { started <- time.Now(); return nil, nil })
	names := s.queueNames()
	qs := make([]*runtime.Queue, len(names))
	for i, name := range names {
		qs[i] = rt.Queue(name)
	}
	// The queues' actors, and the actor system they live in, are made before the clock
	// starts, as in a program that has been putting for a while: making an actor system
	// costs a few milliseconds once, which is no put's cost.
	for _, q := range qs {
		if _, err := q.PID(); err != nil {
			return err
		}
	}
	var meter *costMeter
	if *stats {
		ping, hset, err := roundTripFloor(ctx, conn.client, prefix+":floor", s.payload)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "zasync round-trip floor: PING p50=%s, HSET of %d bytes p50=%s\n", ping, s.payload, hset)
		meter = newCostMeter(conn.client)
	}

	s0 := meter.sample(ctx)
	t0 := time.Now()
	if err := enqueue(ctx, qs, s, hooks.put); err != nil {
		return err
	}
	enq := time.Since(t0)
	s1 := meter.sample(ctx)

	if *memprofile != "" {
		goruntime.MemProfileRate = 4096 // fine enough to count the allocations of one job
	}
	if *cpuprofile != "" {
		stop, err := startCPUProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	t1 := time.Now()
	if err := rt.Start(ctx); err != nil {
		return err
	}
	defer rt.Stop(ctx)
	if err := drained(ctx, qs, &ran, int64(s.jobs)); err != nil {
		return err
	}
	drain := time.Since(t1)
	s2 := meter.sample(ctx)
	if *memprofile != "" {
		if err := writeAllocProfile(*memprofile); err != nil {
			return err
		}
	}
	if meter != nil {
		fmt.Fprintf(stderr, "zasync cost per job: enqueue %s | drain %s\n", s1.minus(s0, s.jobs), s2.minus(s1, s.jobs))
	}
	if hooks.drained != nil {
		if err := hooks.drained(ctx, rt, names); err != nil {
			return err
		}
	}

	lat, err := pickup(ctx, qs[0], started, *samples)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "zasync %s enqueue=%.0f jobs/s drain=%.0f jobs/s pickup p50=%s p99=%s\n", s,
		float64(s.jobs)/enq.Seconds(), float64(s.jobs)/drain.Seconds(), percentile(lat, 50), percentile(lat, 99))
	return nil
}

// poolFor returns the Redis URL raw (or $ZASYNC_REDIS) with a connection pool big enough for
// the producers, as the asynq harness sizes its own, unless the URL sets one or go-redis's
// default (10 per processor) is enough. An embedded Redis keeps the default.
func poolFor(raw string, producers int) string {
	if raw == "" {
		raw = os.Getenv(redisEnv)
	}
	need := producers + 4 // the runtime's own connections: wake-ups, pings, claims
	u, err := url.Parse(raw)
	if raw == "" || err != nil || need <= 10*goruntime.GOMAXPROCS(0) || u.Query().Has("pool_size") {
		return raw // a malformed URL is for connect to report
	}
	q := u.Query()
	q.Set("pool_size", strconv.Itoa(need))
	u.RawQuery = q.Encode()
	return u.String()
}

// enqueue puts the shape's jobs from its producers, each taking the next job (or the next
// 1,000 with --batch) until none is left. Job i goes to queue i mod len(qs), as asynq's
// harness spreads its tasks. The first error stops every producer.
func enqueue(ctx context.Context, qs []*runtime.Queue, s benchShape, before func()) error {
	chunk := 1
	if s.batch {
		chunk = 1000
	}
	calls := make([]runtime.Call, min(chunk, s.jobs))
	call := s.call()
	for i := range calls {
		calls[i] = call
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range s.producers {
		wg.Go(func() {
			for ctx.Err() == nil {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= s.jobs {
					return
				}
				var opts []runtime.PutOption
				if s.priorities {
					opts = append(opts, runtime.Priority(runtime.MinPriority+(lo/chunk)%runtime.MaxPriority))
				}
				if err := putChunk(ctx, qs, calls, lo, min(lo+chunk, s.jobs), before, opts...); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx) // the first producer's error, or the caller's
}

// putChunk puts jobs lo to hi-1: one Put for one job, else one PutMany per queue for the
// chunk's jobs that fall to it.
func putChunk(ctx context.Context, qs []*runtime.Queue, calls []runtime.Call, lo, hi int, before func(), opts ...runtime.PutOption) error {
	if hi-lo == 1 {
		if before != nil {
			before()
		}
		_, err := qs[lo%len(qs)].Put(ctx, calls[0], opts...)
		return err
	}
	for k, q := range qs {
		// Jobs lo..hi-1 whose index is k mod len(qs): the first is lo+((k-lo)%n+n)%n.
		first := lo + ((k-lo)%len(qs)+len(qs))%len(qs)
		if first >= hi {
			continue
		}
		if before != nil {
			before()
		}
		if _, err := q.PutMany(ctx, calls[:(hi-first+len(qs)-1)/len(qs)], opts...); err != nil {
			return err
		}
	}
	return nil
}

// drained waits until every job has run and no queue holds anything: no job due, scheduled
// or held by an agent (so every outcome is committed).
func drained(ctx context.Context, qs []*runtime.Queue, ran *atomic.Int64, n int64) error {
	for ran.Load() < n {
		time.Sleep(time.Millisecond)
	}
	for _, q := range qs {
		for {
			st, err := q.Stats(ctx)
			if err != nil {
				return err
			}
			if st.Due+st.Scheduled+st.Held == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// pickup puts n jobs one at a time on the idle dispatcher and returns, for each, the time
// from the put to its handler starting.
func pickup(ctx context.Context, q *runtime.Queue, started <-chan time.Time, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		put := time.Now()
		if _, err := q.Put(ctx, runtime.NewCall("pickup")); err != nil {
			return nil, err
		}
		select {
		case at := <-started:
			out = append(out, at.Sub(put))
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("a job put on the idle dispatcher did not start within 30s")
		}
	}
	return out, nil
}

// percentile returns the p-th percentile of ds (nearest rank), rounded for printing.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))].Round(10 * time.Microsecond)
}

// deleteKeys deletes the keys under prefix (never a FLUSHDB: the database may not be ours).
func deleteKeys(conn *connection, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iter := conn.client.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 500 {
			conn.client.Del(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		conn.client.Del(ctx, batch...)
	}
}
