package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/runtime"
)

// Completed jobs leave Redis whole once the retention has passed, whatever became of the
// agents that completed them: their records, their annotations and their entries in the
// agents' completed histories. Two dispatchers drain the jobs; then one stops and the other
// stays up, idle, so that no completion trims either agent's history. Within a bounded time
// after the retention (the supervisor's sweep runs once per death interval) the queue holds
// only its dispatchers' records, pings and agents' names: nothing that grows with the jobs.
// ZASYNC_TEST_HISTORY_JOBS sets the number of jobs (1,000 by default); the test logs the
// queue's keys, and on a real Redis their memory, after the drain and after the retention.
func TestHistoryLeavesWithRecords(t *testing.T) {
	many := 1000
	if v := os.Getenv("ZASYNC_TEST_HISTORY_JOBS"); v != "" {
		var err error
		if many, err = strconv.Atoi(v); err != nil || many < 1 {
			t.Fatalf("ZASYNC_TEST_HISTORY_JOBS=%q: want a positive number of jobs", v)
		}
	}
	backends(t, func(t *testing.T, w *world) {
		n := many
		if w.mini != nil {
			n = min(n, 1000) // miniredis slows down with the size of its sorted sets
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(n)*time.Millisecond)
		defer cancel()
		w.ctx = ctx
		// Long enough for the drain, and the count after it, to end before the first records
		// expire, so that the count shows every job.
		retention := 2*time.Second + time.Duration(n)*400*time.Microsecond
		var ran atomic.Int64
		handlers := map[string]runtime.HandlerFunc{"noop": func(ctx context.Context, c *runtime.Call) (any, error) {
			var i int
			if err := c.Arg(0, &i); err != nil {
				return nil, err
			}
			if i%10 == 0 {
				j, _ := runtime.JobFrom(ctx)
				if err := j.SetAnnotation(ctx, "progress", 1.0); err != nil {
					return nil, err
				}
			}
			ran.Add(1)
			return nil, nil
		}}
		rt := func(uuid string) *runtime.Runtime {
			return w.runtimeWith(runtime.Config{UUID: uuid,
				Queues:       []runtime.QueueConfig{{Name: runtime.DefaultQueue, Agents: []runtime.AgentConfig{{Name: "main", Size: 8}}}},
				PollInterval: 50 * time.Millisecond, PingInterval: 100 * time.Millisecond, PingDeathInterval: 500 * time.Millisecond,
				ShutdownGrace: 5 * time.Second, Retention: retention}, handlers)
		}
		idle, stopped := rt("history-idle"), rt("history-stopped")
		w.start(idle)
		defer w.stop(idle)
		w.start(stopped)
		q := idle.Queue(runtime.DefaultQueue)
		calls := make([]runtime.Call, 0, 1000)
		for put := 0; put < n; put += len(calls) {
			calls = calls[:0]
			for i := put; i < min(n, put+cap(calls)); i++ {
				calls = append(calls, runtime.NewCall("noop", i))
			}
			if _, err := q.PutMany(w.ctx, calls); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(time.Minute)
		for {
			st, err := q.Stats(w.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ran.Load() >= int64(n) && st.Due+st.Scheduled+st.Held == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d jobs ran within a minute", ran.Load(), n)
			}
			time.Sleep(20 * time.Millisecond) // polling the queue's counts, with a deadline
		}
		drained := w.census()
		t.Logf("after %d jobs: %s", n, drained)
		if drained.keys["job"] == 0 || drained.keys["job:ann"] == 0 || drained.entries == 0 {
			t.Fatalf("after %d jobs: %s; want records, annotations and completed histories", n, drained)
		}
		w.stop(stopped)

		// On miniredis, keys expire only when the test moves its clock: by the time that
		// has passed, as a real Redis does.
		last, drainedAt := time.Now(), time.Now()
		expire := func() {
			if w.mini != nil {
				now := time.Now()
				w.mini.FastForward(now.Sub(last))
				last = now
			}
		}
		var left census
		deadline = time.Now().Add(retention + 30*time.Second)
		for {
			expire()
			left = w.census()
			if left.keys["job"]+left.keys["job:ann"]+left.keys["completed"] == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s after the drain, with a retention of %s: %s; want no records, annotations or completed histories",
					time.Since(drainedAt).Round(time.Second), retention, left)
			}
			time.Sleep(20 * time.Millisecond) // polling the stored state, with a deadline
		}
		t.Logf("after the retention: %s", left)
		for kind := range left.keys {
			// The log of dispatcher events stays too: it is bounded (MaxDispatcherEvents).
			if !slices.Contains([]string{"dispatchers", "ping", "agents", "queues", "events"}, kind) {
				t.Fatalf("after the retention: %s; want only dispatchers' records and events, pings and agents' names", left)
			}
		}
	})
}

// census is what a world's keys hold: how many keys of each kind (the key's name after the
// queue's prefix, up to the next ':'; "job:ann" for annotations), how many entries the
// completed histories hold, and, on a real Redis, the memory all the keys take.
type census struct {
	keys    map[string]int
	entries int64
	bytes   int64            // -1 on miniredis, which does not measure it
	bytesOf map[string]int64 // kind of key → memory
}

func (c census) String() string {
	kinds := make([]string, 0, len(c.keys))
	for k := range c.keys {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "%d %s", c.keys[k], k)
		if c.bytes >= 0 {
			fmt.Fprintf(&b, " (%d bytes)", c.bytesOf[k])
		}
		b.WriteString(", ")
	}
	fmt.Fprintf(&b, "%d completed-history entries", c.entries)
	if c.bytes >= 0 {
		fmt.Fprintf(&b, ", %d bytes of Redis memory (%.1f MiB)", c.bytes, float64(c.bytes)/(1<<20))
	}
	return b.String()
}

// census counts the world's keys.
func (w *world) census() census {
	w.t.Helper()
	c := census{keys: map[string]int{}, bytesOf: map[string]int64{}}
	if w.mini != nil {
		c.bytes = -1
	}
	queue := w.prefix + ":{" + runtime.DefaultQueue + "}:"
	var keys []string
	iter := w.client.Scan(w.ctx, 0, w.prefix+":*", 1000).Iterator()
	for iter.Next(w.ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		w.t.Fatal(err)
	}
	for batch := range slices.Chunk(keys, 1000) {
		var cards, sizes []*redis.IntCmd
		var kinds []string
		_, err := w.client.Pipelined(w.ctx, func(p redis.Pipeliner) error {
			for _, key := range batch {
				kind, ok := strings.CutPrefix(key, queue)
				if !ok {
					kind = strings.TrimPrefix(key, w.prefix+":")
				}
				if k, rest, ok := strings.Cut(kind, ":"); ok {
					kind = k
					if k == "job" && strings.HasSuffix(rest, ":ann") {
						kind = "job:ann"
					}
				}
				c.keys[kind]++
				if kind == "completed" {
					cards = append(cards, p.ZCard(w.ctx, key))
				}
				if c.bytes >= 0 {
					sizes = append(sizes, p.MemoryUsage(w.ctx, key, 0))
					kinds = append(kinds, kind)
				}
			}
			return nil
		})
		// redis.Nil: MEMORY USAGE of a key that expired since the scan.
		if err != nil && !errors.Is(err, redis.Nil) {
			w.t.Fatal(err)
		}
		for _, n := range cards {
			c.entries += n.Val()
		}
		for i, b := range sizes {
			c.bytes += b.Val()
			c.bytesOf[kinds[i]] += b.Val()
		}
	}
	return c
}
