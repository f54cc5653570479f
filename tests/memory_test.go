package tests

import (
	"context"
	"os"
	goruntime "runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zasync/zasync/runtime"
)

// A dispatcher's memory stays flat however many jobs it has run: its histories are bounded
// (400 polls, 200 job runs) and nothing else grows with the jobs. The live heap after 100,000
// jobs is within 25% of the live heap after 1,000. On a real Redis only, whose data is not in
// this process's heap (miniredis's would be).
func TestMemoryFlat(t *testing.T) {
	addr := os.Getenv("ZASYNC_TEST_REDIS")
	if addr == "" || testing.Short() {
		t.Skip("needs a real Redis (ZASYNC_TEST_REDIS) and a long run")
	}
	w := newWorld(t, addr)
	var ran atomic.Int64
	rt := w.runtimeWith(runtime.Config{UUID: "memory-flat",
		Queues:    []runtime.QueueConfig{{Name: runtime.DefaultQueue, Agents: []runtime.AgentConfig{{Name: "main", Size: 8}}}},
		Retention: time.Minute},
		map[string]runtime.HandlerFunc{"noop": func(context.Context, *runtime.Call) (any, error) { ran.Add(1); return nil, nil }})
	w.start(rt)
	defer w.stop(rt)
	q := rt.Queue(runtime.DefaultQueue)
	calls := make([]runtime.Call, 1000)
	for i := range calls {
		calls[i] = runtime.NewCall("noop")
	}
	runJobs := func(n int) {
		t.Helper()
		want := ran.Load() + int64(n)
		for put := 0; put < n; put += len(calls) {
			if _, err := q.PutMany(w.ctx, calls[:min(len(calls), n-put)]); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(3 * time.Minute)
		for {
			st, err := q.Stats(w.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ran.Load() >= want && st.Due+st.Scheduled+st.Held == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d jobs ran within 3 minutes", ran.Load(), want)
			}
			time.Sleep(20 * time.Millisecond) // polling the queue's counts, with a deadline
		}
	}
	heap := func() uint64 {
		var m goruntime.MemStats
		goruntime.GC()
		goruntime.GC()
		goruntime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	runJobs(1000)
	after1k := heap()
	runJobs(99_000)
	after100k := heap()
	t.Logf("live heap after 1,000 jobs: %d KiB; after 100,000: %d KiB (%+.1f%%)",
		after1k/1024, after100k/1024, 100*(float64(after100k)/float64(after1k)-1))
	if float64(after100k) > 1.25*float64(after1k) {
		t.Fatalf("the live heap grew from %d KiB after 1,000 jobs to %d KiB after 100,000: more than 25%%", after1k/1024, after100k/1024)
	}
}
