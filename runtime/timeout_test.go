package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A run past its timeout fails with a TimeoutError: a handler that honours its context gives
// up at the timeout; one that ignores it is abandoned after the grace, its slot freed for the
// next job, and what it returns later is dropped; RetryBackoff retries a timeout; a handler's
// default timeout applies to its puts; bad timeouts are refused.
func TestRunTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	returned := make(chan struct{})
	rt := newRuntime(t, Config{UUID: "d-" + t.Name(), ShutdownGrace: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Queues: []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 1}}}}})
	rt.Handle("polite", func(ctx context.Context, _ *Call) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, Timeout(50*time.Millisecond), Retry(NeverRetry))
	rt.Handle("deaf", func(ctx context.Context, _ *Call) (any, error) {
		<-release // ignores its context
		defer close(returned)
		return "late", nil
	})
	rt.Handle("quick", func(context.Context, *Call) (any, error) { return "ok", nil })
	ctx := testCtx(t)
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Stop(context.Background()) })
	q := rt.Queue(DefaultQueue)

	wantTimeout := func(j *Job) {
		t.Helper()
		out, err := j.Wait(ctx)
		if err != nil || out.Failure == nil || !IsKind(out.Failure, "TimeoutError") || !strings.Contains(out.Failure.Message, "took longer than its timeout") {
			t.Fatalf("%s: %+v %v, want a TimeoutError of its run", j, out, err)
		}
	}
	polite, err := q.Put(ctx, NewCall("polite"))
	if err != nil {
		t.Fatal(err)
	}
	wantTimeout(polite)
	if rec, _ := polite.Info(ctx); rec.Timeout != 50*time.Millisecond {
		t.Fatalf("the handler's default timeout was not applied: %s", rec.Timeout)
	}

	deaf, err := q.Put(ctx, NewCall("deaf"), Timeout(50*time.Millisecond), Retry(NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	after, err := q.Put(ctx, NewCall("quick"))
	if err != nil {
		t.Fatal(err)
	}
	wantTimeout(deaf)
	// The agent has one slot: the next job runs while the deaf handler still hangs.
	if out, err := after.Wait(ctx); err != nil || string(out.Result) != `"ok"` {
		t.Fatalf("the job after the abandoned one: %+v %v", out, err)
	}
	close(release)
	<-returned
	if out, err := deaf.Wait(ctx); err != nil || out.Failure == nil || out.Failure.Type != "TimeoutError" {
		t.Fatalf("the abandoned job once its handler returned: %+v %v, want its timeout kept", out, err)
	}

	backoff, err := RetryBackoff(2, 10*time.Millisecond, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	retried, err := q.Put(ctx, NewCall("polite"), Retry(backoff))
	if err != nil {
		t.Fatal(err)
	}
	wantTimeout(retried)
	if rec, _ := retried.Info(ctx); rec.Retry[CountErrors] != 3 || rec.Attempt != 3 {
		t.Fatalf("a timeout under RetryBackoff(2): %d errors counted, attempt %d; want 3 and 3", rec.Retry[CountErrors], rec.Attempt)
	}

	for _, d := range []time.Duration{-time.Second, 31 * 24 * time.Hour} {
		if _, err := q.Put(ctx, NewCall("quick"), Timeout(d)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Timeout(%s): %v, want ErrInvalid", d, err)
		}
	}
}
