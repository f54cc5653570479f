package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// BenchmarkClaimPriorities measures claims from a queue holding n pending jobs spread over
// the priorities: the claims take jobs of priority 7, after reading the queues of 9 and 8,
// which hold only jobs scheduled for later, while the queues below hold due jobs they never
// reach. Claim time must not grow with n (each read is O(log n)). On a real Redis only
// (ZASYNC_TEST_REDIS): a million entries are too many for miniredis. The entries other than
// the claimed jobs are queue entries without records (the claims never reach them), so the
// queue takes tens of megabytes, not hundreds, and is deleted at the end.
func BenchmarkClaimPriorities(b *testing.B) {
	if os.Getenv("ZASYNC_TEST_REDIS") == "" {
		b.Skip("set ZASYNC_TEST_REDIS: a million pending jobs are for a real Redis")
	}
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("pending=%d", n), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			q := "bench"
			fillLevels(b, s, q, n)
			specs := make([]persistence.JobSpec, 500)
			for i := range specs {
				specs[i] = persistence.JobSpec{Call: persistence.Call{Handler: "noop"}, Priority: 7}
			}
			for put := 0; put < b.N; put += len(specs) {
				if _, err := s.PutMany(ctx, q, specs[:min(len(specs), b.N-put)]); err != nil {
					b.Fatal(err)
				}
			}
			cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Hour,
				Agents: []persistence.AgentSpec{{Name: "main", Size: 8}}}
			if err := s.Register(ctx, q, "w0", cfg); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Activate(ctx, q, "w0"); err != nil {
				b.Fatal(err)
			}
			p := persistence.ClaimParams{Queue: q, Dispatcher: "w0", Agent: "main", Size: 8, Start: true}
			b.ResetTimer()
			claims := 0
			for taken := 0; taken < b.N; claims++ {
				jobs, err := s.Claim(ctx, p)
				if err != nil {
					b.Fatal(err)
				}
				for _, j := range jobs {
					if j.Priority != 7 {
						b.Fatalf("claimed a job of priority %d", j.Priority)
					}
				}
				if len(jobs) == 0 {
					b.Fatalf("nothing claimed after %d of %d", taken, b.N)
				}
				taken += len(jobs)
				b.StopTimer() // the commits that free the slots are not the claims' cost
				if err := commitAll(ctx, s, jobs); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(claims), "µs/claim")
		})
	}
}

// commitAll commits started jobs, complete.
func commitAll(ctx context.Context, s *Store, jobs []*persistence.Job) error {
	commits := make([]persistence.Commit, len(jobs))
	for i, j := range jobs {
		commits[i] = persistence.Commit{Fence: j.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`null`), Complete: true}}
	}
	_, errs, err := s.CommitMany(ctx, commits)
	return errors.Join(append(errs, err)...)
}

// fillLevels adds n entries to q's pending queues, spread over the priorities but 7: those
// above it scheduled an hour ahead, the others due, and marks the priorities in use.
func fillLevels(b *testing.B, s *Store, q string, n int) {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	levels := []int{9, 8, 6, 5, 4, 3, 2, 1}
	const chunk = 10_000
	for done := 0; done < n; done += chunk {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, l := range levels {
				at := now.Add(-time.Hour)
				if l > 7 {
					at = now.Add(time.Hour)
				}
				var zs []redis.Z
				for i := done; i < min(done+chunk, n); i++ {
					if levels[i%len(levels)] == l {
						zs = append(zs, redis.Z{Score: float64(at.UnixMicro() + int64(i)), Member: fmt.Sprintf("f%07d", i)})
					}
				}
				if len(zs) > 0 {
					p.ZAdd(ctx, s.k.pendingAt(q, l), zs...)
				}
				if l != persistence.DefaultPriority {
					p.HSetNX(ctx, s.k.dispatchers(q), priorityField(l), "1")
					p.HSetNX(ctx, s.k.dispatchers(q), anyPriorityField, "1")
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
