package runtime

import (
	"context"
	"fmt"
	"time"
)

// QueueStats counts a queue's jobs by where they wait: due (put-back ones included),
// scheduled for later, put back after an interruption, and held by agents. Each count is read
// in O(1) or O(log n).
type QueueStats struct {
	// Due counts the pending jobs that may be claimed now (put-back ones included).
	Due int64
	// Scheduled counts the pending jobs whose begin_after is still ahead.
	Scheduled int64
	// PutBack counts the interrupted jobs waiting at the front of the queue.
	PutBack int64
	// Held counts the jobs held by agents (assigned, active, running their callbacks, or
	// parked waiting for an inner job).
	Held int64
	// Paused: no dispatcher claims from the queue (Runtime.PauseQueue).
	Paused bool
}

// Stats counts the queue's jobs, in a few Redis commands whatever the queue's size.
func (q *Queue) Stats(ctx context.Context) (QueueStats, error) {
	st, err := q.rt.store.Stats(ctx, q.name)
	if err != nil {
		return QueueStats{}, fmt.Errorf("stats of %q: %w", q.name, err)
	}
	return QueueStats(st), nil
}

// ThroughputPoint is one window of Queue.Throughput: the jobs completed in [Start,
// Start+step), and how many of them failed.
type ThroughputPoint struct {
	Start     time.Time
	Completed int64
	Failed    int64
}

// Throughput counts the queue's completions (every agent's, of every process), and its
// failures, in windows of
// step over the last span, oldest first, the last window ending now by Redis's clock (so at
// most persistence.MaxThroughputWindows windows: span/step of them, rounded up). It reads
// only counters of the agents' completed histories, in one round trip, however many jobs
// they hold.
func (q *Queue) Throughput(ctx context.Context, span, step time.Duration) ([]ThroughputPoint, error) {
	if step <= 0 || span < step {
		return nil, invalidf("throughput of %q: span %s and step %s: want 0 < step ≤ span", q.name, span, step)
	}
	n := int((span + step - 1) / step)
	now, err := q.rt.store.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("throughput of %q: %w", q.name, err)
	}
	since := now.Add(-time.Duration(n) * step)
	counts, failed, err := q.rt.store.Throughput(ctx, q.name, since, step, n)
	if err != nil {
		return nil, fmt.Errorf("throughput of %q: %w", q.name, err)
	}
	out := make([]ThroughputPoint, n)
	for i, c := range counts {
		out[i] = ThroughputPoint{Start: since.Add(time.Duration(i) * step), Completed: c, Failed: failed[i]}
	}
	return out, nil
}
