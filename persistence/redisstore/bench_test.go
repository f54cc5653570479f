package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// benchStore returns a store on the real Redis at ZASYNC_TEST_REDIS, else on miniredis (whose
// figures say little about Redis, but keep the benchmark runnable anywhere).
func benchStore(b *testing.B) *Store {
	b.Helper()
	var c redis.UniversalClient
	if addr := os.Getenv("ZASYNC_TEST_REDIS"); addr != "" {
		c = redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
	} else {
		m := miniredis.RunT(b)
		c = redis.NewClient(&redis.Options{Addr: m.Addr(), PoolSize: 64})
	}
	b.Cleanup(func() { c.Close() })
	return newStore(b, c, Options{})
}

// BenchmarkPut measures puts one by one.
func BenchmarkPut(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	spec := persistence.JobSpec{Call: persistence.Call{Handler: "noop"}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Put(ctx, "bench", spec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// fillBench puts b.N no-op jobs in the queue "bench", in batches, and activates dispatchers
// w0, w1, … (workers of them), each with an agent "main" of size.
func fillBench(b *testing.B, s *Store, size, workers int) {
	b.Helper()
	ctx := context.Background()
	specs := make([]persistence.JobSpec, 500)
	for i := range specs {
		specs[i] = persistence.JobSpec{Call: persistence.Call{Handler: "noop"}}
		if os.Getenv("BENCH_PRIORITIES") != "" { // the jobs at priorities 1 to 9 in turn
			specs[i].Priority = persistence.MinPriority + i%persistence.MaxPriority
		}
	}
	for put := 0; put < b.N; put += len(specs) {
		if _, err := s.PutMany(ctx, "bench", specs[:min(len(specs), b.N-put)]); err != nil {
			b.Fatal(err)
		}
	}
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Hour,
		Agents: []persistence.AgentSpec{{Name: "main", Size: size}}}
	for w := range workers {
		uuid := fmt.Sprintf("w%d", w)
		if err := s.Register(ctx, "bench", uuid, cfg); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Activate(ctx, "bench", uuid); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDrain measures the store's share of running jobs: b.N jobs put in batches, then
// drained by workers (one agent of size 8 each) that claim, start, and commit-and-complete,
// one job at a time or each claimed batch at once.
func BenchmarkDrain(b *testing.B) {
	for _, bc := range []struct {
		workers int
		batched bool
	}{{1, false}, {8, false}, {1, true}, {8, true}} {
		workers := bc.workers
		b.Run(fmt.Sprintf("workers=%d/batched=%v", workers, bc.batched), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			fillBench(b, s, 8, workers)
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					p := persistence.ClaimParams{Queue: "bench", Dispatcher: fmt.Sprintf("w%d", w), Agent: "main", Size: 8}
					for {
						jobs, err := s.Claim(ctx, p)
						if errors.Is(err, persistence.ErrConflict) {
							continue
						}
						if err != nil {
							b.Error(err)
							return
						}
						if len(jobs) == 0 {
							return
						}
						if bc.batched {
							err = drainBatch(ctx, s, jobs)
						} else {
							err = drainOneByOne(ctx, s, jobs)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

func drainOneByOne(ctx context.Context, s *Store, jobs []*persistence.Job) error {
	for _, j := range jobs {
		j, err := s.Start(ctx, j.Fence())
		if err == nil {
			_, err = s.Commit(ctx, j.Fence(), persistence.Outcome{Result: json.RawMessage(`null`), Complete: true})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func drainBatch(ctx context.Context, s *Store, jobs []*persistence.Job) error {
	fences := make([]persistence.Fence, len(jobs))
	for i, j := range jobs {
		fences[i] = j.Fence()
	}
	started, errs, err := s.StartMany(ctx, fences)
	if err = errors.Join(append(errs, err)...); err != nil {
		return err
	}
	commits := make([]persistence.Commit, len(started))
	for i, j := range started {
		commits[i] = persistence.Commit{Fence: j.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`null`), Complete: true}}
	}
	_, errs, err = s.CommitMany(ctx, commits)
	return errors.Join(append(errs, err)...)
}

// BenchmarkBatchCycle measures the node's hot path as the committer drives it: each Batch
// commits the jobs the previous one claimed (started) and claims as many again, 8 at a time
// or CYCLE_SIZE (comparing sizes separates per-batch from per-job costs), of jobs at
// priorities 1 to 9 in turn when BENCH_PRIORITIES is set (as BenchmarkDrain's). On a real Redis it
// also reports the server's own time in scripts per job (INFO commandstats); for figures
// that machine noise does not move, count the server's instructions (callgrind).
func BenchmarkBatchCycle(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	size := 8
	if v, err := strconv.Atoi(os.Getenv("CYCLE_SIZE")); err == nil && v > 0 {
		size = v
	}
	fillBench(b, s, size, 1)
	p := persistence.ClaimParams{Queue: "bench", Dispatcher: "w0", Agent: "main", Size: size, Start: true}
	before := scriptMicros(ctx, s)
	b.ResetTimer()
	var held []*persistence.Job
	done := 0
	for done < b.N && os.Getenv("PUTONLY") == "" {
		commits := make([]persistence.Commit, len(held))
		for i, j := range held {
			// As the executor commits: the counters it had (none) to keep.
			commits[i] = persistence.Commit{Fence: j.Fence(), Known: j,
				Outcome: persistence.Outcome{Result: json.RawMessage(`null`), Complete: true, Retry: persistence.RetryCounts{}}}
		}
		p.Max = size
		_, errs, claimed, claimErrs := s.Batch(ctx, commits, []persistence.ClaimParams{p})
		if err := errors.Join(append(errs, claimErrs...)...); err != nil {
			b.Fatal(err)
		}
		done += len(held)
		held = claimed[0]
		if len(held) == 0 && done < b.N {
			b.Fatalf("the queue ran dry after %d of %d jobs", done, b.N)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	if after := scriptMicros(ctx, s); after > before {
		b.ReportMetric(float64(after-before)/float64(b.N), "script-µs/job")
	}
}

// scriptMicros is the server's total time in EVAL and EVALSHA so far, in µs; 0 on miniredis,
// which does not count.
func scriptMicros(ctx context.Context, s *Store) int64 {
	info, err := s.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_eval") {
			continue
		}
		for _, f := range strings.Split(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]), ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}
