package runtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A callback with CallbackBeginBy that has not started by its deadline fails with a
// TimeoutError instead of running; one whose deadline is not reached runs; a negative one is
// refused.
func TestCallbackBeginBy(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ran := make(chan string, 2)
	rt := startedRuntime(t, 3, func(rt *Runtime) {
		rt.Handle("slow", Func0(func(ctx context.Context) (int, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return 7, nil
		}))
		rt.Handle("report", Func2(func(_ context.Context, name string, n int) (int, error) { ran <- name; return n, nil }))
	})
	ctx := testCtx(t)
	parent, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("slow"))
	if err != nil {
		t.Fatal(err)
	}
	if job, err := parent.AddCallback(ctx, NewCall("report", "negative"), CallbackBeginBy(-time.Second)); !errors.Is(err, ErrInvalid) || job != nil {
		t.Fatalf("AddCallback with a negative CallbackBeginBy: %v, %v; want ErrInvalid", job, err)
	}
	const deadline = 20 * time.Millisecond
	late, err := parent.AddCallback(ctx, NewCall("report", "late"), CallbackBeginBy(deadline))
	if err != nil {
		t.Fatal(err)
	}
	s, err := late.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.BeginBy != deadline {
		t.Fatalf("the callback's begin_by is %s, want %s", s.BeginBy, deadline)
	}
	timely, err := parent.AddCallbacks(ctx, new(NewCall("report", "timely")), nil, CallbackBeginBy(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The parent completes once Redis's clock, which judges deadlines, is past the late one's.
	for end := time.Now().Add(30 * time.Second); ; {
		now, err := rt.store.Now(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if now.After(s.BeginAfter.Add(deadline)) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("Redis's clock did not pass %s within 30s", s.BeginAfter.Add(deadline))
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	close(release)

	out, err := late.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out.Failure == nil || !IsKind(out.Failure, "TimeoutError") {
		t.Errorf("the late callback's outcome: %+v, want a TimeoutError failure", out)
	}
	if n := waitInt(t, timely); n != 7 {
		t.Errorf("the timely callback's result: %d, want 7", n)
	}
	if name := <-ran; name != "timely" {
		t.Errorf("handler ran for %q, want only the timely callback", name)
	}
	select {
	case name := <-ran:
		t.Errorf("handler ran for %q too", name)
	default:
	}
}
