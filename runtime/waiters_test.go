package runtime

import (
	"context"
	"sync"
	"testing"

	"github.com/zasync/zasync/persistence"
)

// Many jobs waited for at once share one subscription (one connection to Redis) per queue,
// and each wait still ends with its own job's outcome.
func TestWaitsShareOneSubscription(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, Config{UUID: "shared-waits"})
	release := make(chan struct{})
	if err := rt.Handle("held", Func1(func(ctx context.Context, n int) (int, error) {
		<-release
		return n * 2, nil
	})); err != nil {
		t.Fatal(err)
	}
	const n = 20
	jobs := make([]*Job, n)
	for i := range jobs {
		j, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("held", i))
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = j
	}
	subscribed := make(chan struct{}, n)
	rt.onWaitSubscribed = func(persistence.Ref) { subscribed <- struct{}{} }
	var wg sync.WaitGroup
	got, errs := make([]int, n), make([]error, n)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := j.Wait(ctx)
			if err == nil {
				err = out.Decode(&got[i])
			}
			errs[i] = err
		}()
	}
	for range n {
		await(t, ctx, subscribed, "a wait to subscribe")
	}
	rt.waits.mu.Lock()
	queues, q := len(rt.waits.queues), rt.waits.queues[DefaultQueue]
	rt.waits.mu.Unlock()
	q.mu.Lock()
	watched := len(q.jobs)
	q.mu.Unlock()
	if queues != 1 || watched != n {
		t.Fatalf("%d subscriptions for %d jobs watched, want 1 for %d", queues, watched, n)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	close(release)
	wg.Wait()
	for i, v := range got {
		if errs[i] != nil || v != 2*i {
			t.Errorf("job %d: %d, %v; want %d", i, v, errs[i], 2*i)
		}
	}
	q.mu.Lock()
	left := len(q.jobs)
	q.mu.Unlock()
	if left != 0 {
		t.Errorf("%d jobs still watched after their waits ended", left)
	}
}
