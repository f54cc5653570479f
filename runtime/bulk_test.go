package runtime

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// txLog records the length of the longest MULTI … EXEC sent to Redis.
type txLog struct {
	mu      sync.Mutex
	longest int
}

func (l *txLog) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (l *txLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (l *txLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && strings.EqualFold(cmds[0].Name(), "multi") {
			l.mu.Lock()
			l.longest = max(l.longest, len(cmds))
			l.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

func (l *txLog) reset() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.longest
	l.longest = 0
	return n
}

// Ten thousand failed jobs whose handler matches a glob are retried in one call, in
// transactions of one job each; a failed job of another handler is left failed.
func TestBulkRetryTenThousand(t *testing.T) {
	t.Parallel()
	n := 10_000
	if raceDetector {
		n = 2_000 // the same path, in the time the detector allows; the full size runs without it
	}
	rt, _ := loggedRuntime(t, servedQueue(32)...)
	tx := &txLog{}
	rt.cfg.Redis.AddHook(tx)
	rt.Handle("email.send", func(ctx context.Context, _ *Call) (any, error) {
		if a, _ := Attempt(ctx); a == 1 {
			return nil, errors.New("smtp down")
		}
		return "sent", nil
	})
	rt.Handle("other", func(context.Context, *Call) (any, error) { return nil, errors.New("no") })
	// Ten thousand jobs run twice and are counted as they go: on a machine busy with the
	// other packages' tests that can take longer than the usual 30 seconds.
	ctx, cancel := context.WithTimeout(t.Context(), bulkLimit)
	defer cancel()
	q := rt.Queue(DefaultQueue)
	calls := make([]Call, n)
	for i := range calls {
		calls[i] = NewCall("email.send")
	}
	if _, err := q.PutMany(ctx, calls, Retry(NeverRetry)); err != nil {
		t.Fatal(err)
	}
	other, err := q.Put(ctx, NewCall("other"), Retry(NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	start(t, rt)
	failed := Query{States: states(StateFailed), Callable: "email.*"}
	countIs := func(q Query, want int) func() bool {
		return func() bool { c, err := rt.Count(ctx, q); return err == nil && c == want }
	}
	eventuallyWithin(t, bulkLimit, "every job to fail once", countIs(Query{States: states(StateFailed)}, n+1))

	// Paused, the queue runs nothing while the retry is measured: what Redis gets is the
	// retry's alone.
	if _, err := rt.PauseQueue(ctx, DefaultQueue); err != nil {
		t.Fatal(err)
	}
	waitPolls(t, rt, 2) // a claim on its way when the pause came has ended
	tx.reset()
	r, err := rt.RetryMatching(ctx, failed)
	if err != nil || r.Matched != n || r.Done != n || r.Refused != 0 || r.More {
		t.Fatalf("RetryMatching: %+v %v, want %d retried", r, err, n)
	}
	if longest := tx.reset(); longest > 12 {
		t.Fatalf("the bulk retry sent a transaction of %d commands, want one job's", longest)
	}
	if _, err := rt.ResumeQueue(ctx, DefaultQueue); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, bulkLimit, "every retried job to succeed", countIs(Query{States: states(StateSucceeded), Callable: "email.*"}, n))
	if st := mustInfo(t, other); st.Status != StatusCompleted || st.Failure == nil {
		t.Fatalf("the other handler's job: %s %v, want still failed", st.Status, st.Failure)
	}
	if c, _ := rt.Count(ctx, failed); c != 0 {
		t.Fatalf("%d email jobs still failed", c)
	}
}

// bulkLimit bounds TestBulkRetryTenThousand's waits.
const bulkLimit = 3 * time.Minute

// servedQueue is the config of a runtime serving DefaultQueue with one agent of size.
func servedQueue(size int) []func(*Config) {
	return []func(*Config){func(c *Config) {
		c.Queues = []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: size}}}}
		c.PollInterval = 50 * time.Millisecond
	}}
}

// start starts rt's dispatcher, stopped at the end of the test.
func start(t *testing.T, rt *Runtime) {
	t.Helper()
	if err := rt.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Stop(context.Background()) })
}

// Bulk cancel and delete act on what their query selects, count the jobs that changed
// meanwhile as refused, and refuse states they do not apply to.
func TestBulkCancelDeletePurge(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{UUID: "bulk", PollInterval: 50 * time.Millisecond,
		Queues: []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 4}}}}})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	var jobs []*Job
	for _, h := range []string{"a.one", "a.two", "b.one"} {
		j, err := q.Put(ctx, NewCall(h))
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	for i, bad := range []func() (BulkReport, error){
		func() (BulkReport, error) { return rt.CancelMatching(ctx, Query{States: states(StateFailed)}) },
		func() (BulkReport, error) { return rt.RetryMatching(ctx, Query{States: states(StatePending)}) },
		func() (BulkReport, error) { return rt.RetryMatching(ctx, Query{States: states(StateCompleted)}) },
		func() (BulkReport, error) { return rt.DeleteMatching(ctx, Query{States: states(StateActive)}) },
		func() (BulkReport, error) { return rt.DeleteMatching(ctx, Query{}) },
		func() (BulkReport, error) { return rt.Purge(ctx, StatePending, "", 0, 0) },
		func() (BulkReport, error) { return rt.Purge(ctx, StateFailed, "", -time.Second, 0) },
	} {
		if r, err := bad(); !errors.Is(err, ErrInvalid) || r.Done != 0 {
			t.Errorf("bad bulk action #%d: %+v %v, want ErrInvalid", i, r, err)
		}
	}
	if c, _ := rt.Count(ctx, Query{States: states(StatePending)}); c != 3 {
		t.Fatalf("the refused actions changed the queue: %d pending", c)
	}

	r, err := rt.CancelMatching(ctx, Query{States: states(StatePending), Callable: "a.*"}, DryRun())
	if err != nil || r.Matched != 2 || r.Done != 0 || len(r.Jobs) != 2 || r.Jobs[0] != jobs[0].Ref() {
		t.Fatalf("CancelMatching dry run: %+v %v, want the two a.* jobs listed", r, err)
	}
	if c, _ := rt.Count(ctx, Query{States: states(StatePending)}); c != 3 {
		t.Fatalf("the dry run changed the queue: %d pending", c)
	}
	r, err = rt.CancelMatching(ctx, Query{States: states(StatePending), Callable: "a.*"})
	if err != nil || r.Matched != 2 || r.Done != 2 {
		t.Fatalf("CancelMatching: %+v %v, want the two a.* jobs", r, err)
	}
	// Cancelled, the two are in CALLBACKS until a dispatcher runs their resumeCallbacks
	// jobs; the b job is still pending.
	start(t, rt)
	for _, j := range jobs[:2] {
		wantCancelled(t, j)
	}
	r, err = rt.DeleteMatching(ctx, Query{States: states(StateFailed), Callable: "a.*"})
	if err != nil || r.Matched != 2 || r.Done != 2 {
		t.Fatalf("DeleteMatching: %+v %v, want the two cancelled jobs", r, err)
	}
	for _, j := range jobs[:2] {
		if _, err := j.Info(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after DeleteMatching: %v", j, err)
		}
	}
	// Purge: the b job completes (no handler: it fails), then is purged when older than 0.
	wantFailed := func() bool { c, _ := rt.Count(ctx, Query{States: states(StateFailed)}); return c == 1 }
	eventually(t, "the b job to fail", wantFailed)
	// (Succeeded are only zasync's own jobs that ran the callbacks of the cancelled ones.)
	if r, err := rt.Purge(ctx, StateSucceeded, "", 0, 0); err != nil || r.Done != r.Matched {
		t.Fatalf("Purge of succeeded jobs: %+v %v", r, err)
	}
	if c, _ := rt.Count(ctx, Query{States: states(StateFailed)}); c != 1 {
		t.Fatalf("purging succeeded jobs left %d failed ones, want 1", c)
	}
	if r, err := rt.Purge(ctx, StateFailed, "", time.Hour, 0); err != nil || r.Matched != 0 {
		t.Fatalf("Purge older than an hour: %+v %v, want none", r, err)
	}
	r, err = rt.Purge(ctx, StateFailed, "def*", 0, 0)
	if err != nil || r.Done < 1 {
		t.Fatalf("Purge: %+v %v, want the failed b job (and the zasync jobs that failed it, if any)", r, err)
	}
	if _, err := jobs[2].Info(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the purged job: %v", err)
	}
}
