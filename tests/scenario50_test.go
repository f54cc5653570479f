package tests

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/runtime"
)

// Scenario 50: a job already COMPLETED found in the queue. zasync's transitions change a
// job's status and its queue membership together, so only something outside zasync can make
// this happen; here the test plants it. The claim drops the stale entry, never runs the job
// again, and the other jobs go on.
func TestScenario50CompletedJobInTheQueue(t *testing.T) {
	backends(t, func(t *testing.T, w *world) {
		runs := make(chan string, 4)
		rt := w.runtime("s50", 3, map[string]runtime.HandlerFunc{
			"work": runtime.Func1(func(_ context.Context, name string) (string, error) { runs <- name; return name, nil }),
		})
		q := rt.Queue(runtime.DefaultQueue)
		done, _ := q.Put(w.ctx, runtime.NewCall("work", "done"))
		w.start(rt)
		waitFor[string](t, w, done)
		if <-runs != "done" {
			t.Fatal("the first job did not run")
		}
		w.stop(rt)
		// Something outside zasync puts the completed job's id back into the queue.
		key := w.prefix + ":{" + runtime.DefaultQueue + "}:pending"
		if err := w.client.ZAdd(w.ctx, key, redis.Z{Score: 0, Member: done.ID()}).Err(); err != nil {
			t.Fatal(err)
		}
		other, _ := q.Put(w.ctx, runtime.NewCall("work", "other"))
		rt = w.runtime("s50", 3, nil)
		rt.Handle("work", runtime.Func1(func(_ context.Context, name string) (string, error) { runs <- name; return name, nil }))
		w.start(rt)
		defer w.stop(rt)
		if got, _ := waitFor[string](t, w, other); got != "other" || <-runs != "other" {
			t.Fatalf("the other job: %q", got)
		}
		if n, _ := w.client.ZCard(w.ctx, key).Result(); n != 0 {
			t.Fatalf("%d entries left in the queue, want the stale one dropped", n)
		}
		select {
		case r := <-runs:
			t.Fatalf("%q ran again", r)
		default:
		}
	})
}
