package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	goruntime "runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zasync/zasync/runtime"
)

// runBench enqueues --jobs no-op jobs (one by one, or in batches with --batch), then drains
// them with one dispatcher whose agent has --concurrency slots, and prints one line:
// zasync n=N c=C enqueue=E jobs/s drain=D jobs/s pickup p50=… p99=…
// The pickup latency is measured afterwards on the idle dispatcher: the time from a put to
// its handler starting. Its keys live under a prefix of their own, deleted at the end.
func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flags("bench", "[--jobs N] [--concurrency C] [--batch] [--redis URL] [--stats] [--cpuprofile FILE] [--memprofile FILE]", stderr)
	jobs := fs.Int("jobs", 10000, "number of no-op jobs")
	conc := fs.Int("concurrency", 8, "the agent's size: jobs run at once")
	batch := fs.Bool("batch", false, "enqueue in batches of 1,000 (one round trip each) instead of one by one")
	rflags := addRedisFlags(fs, "Redis URL (default $"+redisEnv+", else an embedded Redis)")
	samples := fs.Int("pickup", 50, "jobs put one at a time on the idle dispatcher to measure pickup latency")
	stats := fs.Bool("stats", false, "print, on stderr, the cost per job of each phase: round trips, Redis commands and CPU, Go CPU and allocations")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the drain to this file")
	memprofile := fs.String("memprofile", "", "write an allocation profile of the drain to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *jobs < 1 || *conc < 1 || *samples < 0 {
		return usagef("--jobs and --concurrency must be at least 1, --pickup at least 0")
	}
	ctx := context.Background()
	conn, err := connect(ctx, rflags, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	b := make([]byte, 4)
	rand.Read(b)
	prefix := "zasyncbench-" + hex.EncodeToString(b)
	defer deleteKeys(conn, prefix)

	rt, err := runtime.New(runtime.Config{
		Redis: conn.client, Prefix: prefix, UUID: prefix,
		Queues: []runtime.QueueConfig{{Name: "bench", Agents: []runtime.AgentConfig{{Name: "main", Size: *conc}}}},
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	var ran atomic.Int64
	started := make(chan time.Time, 1)
	rt.Handle("noop", func(context.Context, *runtime.Call) (any, error) { ran.Add(1); return nil, nil })
	rt.Handle("pickup", func(context.Context, *runtime.Call) (any, error) { started <- time.Now(); return nil, nil })
	q := rt.Queue("bench")
	var meter *costMeter
	if *stats {
		meter = newCostMeter(conn.client)
	}

	s0 := meter.sample(ctx)
	t0 := time.Now()
	if err := enqueue(ctx, q, *jobs, *batch); err != nil {
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
	if err := drained(ctx, q, &ran, int64(*jobs)); err != nil {
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
		fmt.Fprintf(stderr, "zasync cost per job: enqueue %s | drain %s\n", s1.minus(s0, *jobs), s2.minus(s1, *jobs))
	}

	lat, err := pickup(ctx, q, started, *samples)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "zasync n=%d c=%d enqueue=%.0f jobs/s drain=%.0f jobs/s pickup p50=%s p99=%s\n", *jobs, *conc,
		float64(*jobs)/enq.Seconds(), float64(*jobs)/drain.Seconds(), percentile(lat, 50), percentile(lat, 99))
	return nil
}

// enqueue puts n no-op jobs, one by one or in batches of 1,000.
func enqueue(ctx context.Context, q *runtime.Queue, n int, batch bool) error {
	if !batch {
		for range n {
			if _, err := q.Put(ctx, runtime.NewCall("noop")); err != nil {
				return err
			}
		}
		return nil
	}
	calls := make([]runtime.Call, 1000)
	for i := range calls {
		calls[i] = runtime.NewCall("noop")
	}
	for put := 0; put < n; put += len(calls) {
		if _, err := q.PutMany(ctx, calls[:min(len(calls), n-put)]); err != nil {
			return err
		}
	}
	return nil
}

// drained waits until every job has run and the queue holds nothing: no job due, scheduled
// or held by an agent (so every outcome is committed).
func drained(ctx context.Context, q *runtime.Queue, ran *atomic.Int64, n int64) error {
	for ran.Load() < n {
		time.Sleep(time.Millisecond)
	}
	for {
		st, err := q.Stats(ctx)
		if err != nil {
			return err
		}
		if st.Due+st.Scheduled+st.Held == 0 {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
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
