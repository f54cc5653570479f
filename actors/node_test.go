package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// nodeOptions returns options for a node of dispatcher uuid on f's store, serving queue "q"
// with one agent "main" of size.
func (f *execFixture) nodeOptions(uuid string, size int, poll time.Duration) Options {
	return Options{
		Store: f.store, Handlers: f.h, Policies: f.exec.policies, Logger: slog.New(f.logs), UUID: uuid,
		Queues:       []QueueSpec{{Name: "q", Agents: []AgentSpec{{Name: "main", Size: size}}}},
		PollInterval: poll, PingInterval: time.Second, PingDeathInterval: time.Minute, ShutdownGrace: 5 * time.Second,
	}
}

func (f *execFixture) startNode(o Options) *Node {
	f.t.Helper()
	n, err := StartNode(o)
	if err != nil {
		f.t.Fatalf("StartNode: %v", err)
	}
	return n
}

func (f *execFixture) stopNode(n *Node) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		f.t.Fatalf("Stop: %v", err)
	}
}

// waitDone waits until every id has completed, from a subscription opened before the jobs
// could complete, re-reading the jobs when notifications are quiet.
func (f *execFixture) waitDone(sub persistence.Subscription, ids ...string) map[string]*persistence.Job {
	f.t.Helper()
	left := map[string]bool{}
	for _, id := range ids {
		left[id] = true
	}
	out := map[string]*persistence.Job{}
	check := func(id string) {
		if j, err := f.store.Get(f.ctx, persistence.Ref{Queue: "q", ID: id}); err == nil && j.Status == persistence.StatusCompleted {
			out[id] = j
			delete(left, id)
		}
	}
	deadline := time.After(60 * time.Second)
	for len(left) > 0 {
		select {
		case id := <-sub.C():
			if left[id] {
				check(id)
			}
		case <-time.After(time.Second): // notifications may be lost: look
			for id := range left {
				check(id)
			}
		case <-deadline:
			f.dump()
			f.t.Fatalf("%d jobs not completed within a minute", len(left))
		}
	}
	return out
}

func (f *execFixture) completions() persistence.Subscription {
	f.t.Helper()
	sub, err := f.store.Completions(f.ctx, "q")
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { sub.Close() })
	return sub
}

// A node runs jobs put after it started, well before its next poll: the wake-up makes it
// claim at once.
func TestNodeRunsJobsOnWakeUp(t *testing.T) {
	f := newExecFixture(t)
	f.h["double"] = func(_ context.Context, c *persistence.Call) (any, error) {
		var n int
		json.Unmarshal(c.Args[0], &n)
		return 2 * n, nil
	}
	const poll = 20 * time.Second
	n := f.startNode(f.nodeOptions("n1", 3, poll))
	defer f.stopNode(n)
	sub := f.completions()
	// Let the first poll activate the dispatcher (it claims nothing), then put.
	f.waitActivated("n1")
	put := time.Now()
	var ids []string
	for i := range 5 {
		ids = append(ids, f.put("double", i).ID)
	}
	done := f.waitDone(sub, ids...)
	if took := time.Since(put); took > poll/4 {
		t.Fatalf("5 jobs took %s after the put, want well under the %s poll interval", took, poll)
	}
	for i, id := range ids {
		if got := string(done[id].Result); got != fmt.Sprint(2*i) {
			t.Fatalf("job %d: %s, want %d", i, got, 2*i)
		}
	}
}

// waitActivated waits (polling the store, bounded) until dispatcher uuid's record is activated.
func (f *execFixture) waitActivated(uuid string) {
	f.t.Helper()
	f.eventually("dispatcher "+uuid+" activated", func() bool {
		d, err := f.store.Dispatcher(f.ctx, "q", uuid)
		return err == nil && d.IsActivated()
	})
}

// 1,000 jobs put by 4 goroutines all run exactly once.
func TestNodeRunsEachJobOnce(t *testing.T) {
	f := newExecFixture(t)
	var mu sync.Mutex
	runs := map[string]int{}
	f.h["count"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		r, _ := RunningFrom(ctx)
		mu.Lock()
		runs[r.Job.ID]++
		mu.Unlock()
		return nil, nil
	}
	sub := f.completions()
	n := f.startNode(f.nodeOptions("n1", 8, 100*time.Millisecond))
	defer f.stopNode(n)
	var ids []string
	var idsMu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 250 {
				j := f.put("count")
				idsMu.Lock()
				ids = append(ids, j.ID)
				idsMu.Unlock()
			}
		})
	}
	wg.Wait()
	f.waitDone(sub, ids...)
	mu.Lock()
	defer mu.Unlock()
	if len(runs) != 1000 {
		t.Fatalf("%d jobs ran, want 1000", len(runs))
	}
	for id, n := range runs {
		if n != 1 {
			t.Fatalf("job %s ran %d times, want once", id, n)
		}
	}
}

// A clean stop interrupts a running job: it stays ACTIVE with a handleInterrupt job waiting;
// a node restarted with the same UUID runs that, then the job again, which completes; its
// callback runs and its interruption is counted (scenario 45).
func TestNodeCleanStopAndRestart(t *testing.T) {
	f := newExecFixture(t)
	var first atomic.Bool
	first.Store(true)
	started := make(chan struct{}, 1)
	f.h["work"] = func(ctx context.Context, _ *persistence.Call) (any, error) {
		if first.Swap(false) {
			started <- struct{}{}
			<-ctx.Done() // a handler that honours cancellation
			return nil, ctx.Err()
		}
		return 42, nil
	}
	var callbackGot atomic.Value
	f.h["report"] = func(_ context.Context, c *persistence.Call) (any, error) {
		callbackGot.Store(string(c.Args[0]))
		return nil, nil
	}
	j := f.put("work")
	if _, _, err := f.store.AddCallback(f.ctx, j.Ref, persistence.JobSpec{Call: callTo("report")}); err != nil {
		t.Fatal(err)
	}
	n := f.startNode(f.nodeOptions("n1", 3, 100*time.Millisecond))
	<-started
	f.stopNode(n)
	got := f.get(j.Ref)
	pending, _ := f.store.Pending(f.ctx, "q", 0, 10)
	sys, _ := f.store.GetMany(f.ctx, "q", pending)
	if got.Status != persistence.StatusActive || len(sys) != 1 || sys[0].Call.Handler != persistence.HandlerHandleInterrupt || sys[0].Target != j.ID {
		t.Fatalf("after the stop: job %s, queue %v, want ACTIVE with one handleInterrupt job for it", got.Status, pending)
	}
	if _, ok := f.logs.Find(slog.LevelInfo, "deactivated dispatcher n1"); !ok {
		t.Fatalf("no deactivation log")
	}

	sub := f.completions()
	n = f.startNode(f.nodeOptions("n1", 3, 100*time.Millisecond))
	defer f.stopNode(n)
	done := f.waitDone(sub, j.ID)[j.ID]
	if string(done.Result) != "42" || done.Retry[persistence.CountInterruptions] != 1 {
		t.Fatalf("after the restart: %s with counters %v, want 42 and one interruption", done.Result, done.Retry)
	}
	if callbackGot.Load() != "42" {
		t.Fatalf("the callback got %v, want 42", callbackGot.Load())
	}
}

// A second process with the same UUID refuses to take over a record that is alive, logging
// zc.async's "another process?" ERROR, and keeps trying.
func TestNodeRefusesALiveUUID(t *testing.T) {
	f := newExecFixture(t) // d1 is activated and alive
	n := f.startNode(f.nodeOptions("d1", 3, 50*time.Millisecond))
	defer f.stopNode(n)
	f.eventually("the 'another process?' ERROR", func() bool {
		_, ok := f.logs.Find(slog.LevelError, "UUID d1 already activated in queue q: another process?")
		return ok
	})
	j := f.put("never")
	if held, _ := f.store.AgentJobs(f.ctx, "q", persistence.Owner{Dispatcher: "d1", Agent: "main"}); slices.Contains(held, j.ID) {
		t.Fatalf("the refused node claimed %s", j.ID)
	}
}

// dump logs what the test recorded and every job of the queue, to explain a timeout.
func (f *execFixture) dump() {
	for _, r := range f.logs.Records() {
		attrs := ""
		r.Attrs(func(a slog.Attr) bool { attrs += " " + a.String(); return true })
		f.t.Logf("log %s %s%s", r.Level, r.Message, attrs)
	}
	ids, _ := f.store.Pending(f.ctx, "q", 0, 100)
	f.t.Logf("pending: %v", ids)
}

// eventually polls cond (a condition on the store, not a timing) until it holds, for at most
// 30 seconds.
func (f *execFixture) eventually(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.dump()
			f.t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition with a deadline
	}
}
