package runtime_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zasync/zasync/runtime"
	"github.com/zasync/zasync/zasynctest"
)

// A handler's default RetryBackoff retries its errors on the doubling schedule, the job
// waiting in its queue meanwhile, with a clock the test moves; a permanent error stops at
// once, and a put's own policy wins over the default.
func TestRetryBackoffSchedule(t *testing.T) {
	k := zasynctest.New(t, runtime.Config{})
	backoff, err := runtime.RetryBackoff(3, time.Minute, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	flaky, err := runtime.Register(k.Runtime, "flaky", func(_ context.Context, fail int) (int, error) {
		n := int(runs.Add(1))
		switch {
		case fail < 0:
			return 0, runtime.Permanent(errors.New("card declined"))
		case n <= fail:
			return 0, errors.New("smtp down")
		}
		return n, nil
	}, runtime.Retry(backoff))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	j, err := flaky.Put(ctx, runtime.DefaultQueue, 2)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := j.Info(ctx)
	if err != nil || rec.RetryPolicy != "RetryBackoff(3,1m0s,10m0s)" {
		t.Fatalf("the job's policy, the handler's default: %q %v", rec.RetryPolicy, err)
	}
	for k2, bound := range []time.Duration{time.Minute, 2 * time.Minute} {
		k.RunDue()
		if n := runs.Load(); n != int32(k2+1) {
			t.Fatalf("runs after failure %d: %d", k2+1, n)
		}
		rec, err := j.Info(ctx)
		if err != nil || rec.Status != runtime.StatusPending || rec.Retry[runtime.CountErrors] != k2+1 {
			t.Fatalf("after failure %d: %+v %v, want pending with %d errors counted", k2+1, rec, err, k2+1)
		}
		wait := rec.BeginAfter.Sub(k.Now())
		if wait < bound/2-time.Second || wait > bound {
			t.Fatalf("retry %d is due in %s, want between %s and %s", k2+1, wait, bound/2, bound)
		}
		k.Advance(bound)
	}
	k.RunDue()
	if n, err := j.Wait(ctx); err != nil || n != 3 {
		t.Fatalf("the third run: %d %v", n, err)
	}

	runs.Store(0)
	p, err := flaky.Put(ctx, runtime.DefaultQueue, -1)
	if err != nil {
		t.Fatal(err)
	}
	k.RunDue()
	if _, err := p.Wait(ctx); !errors.Is(err, runtime.ErrPermanent) || runs.Load() != 1 {
		t.Fatalf("a permanent error: %v after %d runs, want it kept after one", err, runs.Load())
	}

	// The put's own policy wins over the handler's default.
	never, err := flaky.Put(ctx, runtime.DefaultQueue, 5, runtime.Retry(runtime.NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := never.Info(ctx); err != nil || rec.RetryPolicy != runtime.NeverRetry.Name() {
		t.Fatalf("a put's own policy: %q %v", rec.RetryPolicy, err)
	}
}

// A policy's name, as a job record shows it, reads back as that policy: built in, backoff
// or registered; anything else is refused.
func TestRetryPolicyNamed(t *testing.T) {
	k := zasynctest.New(t, runtime.Config{})
	backoff, err := runtime.RetryBackoff(4, time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []runtime.RetryPolicy{runtime.NeverRetry, runtime.RetryCommonFourTimes, runtime.RetryCommonForever, backoff} {
		got, err := k.Runtime.RetryPolicyNamed(p.Name())
		if err != nil || got.Name() != p.Name() {
			t.Errorf("RetryPolicyNamed(%q) = %v, %v", p.Name(), got, err)
		}
	}
	for _, bad := range []string{"", "Sometimes", "RetryBackoff(0,1s,1m0s)"} {
		if _, err := k.Runtime.RetryPolicyNamed(bad); !errors.Is(err, runtime.ErrInvalid) {
			t.Errorf("RetryPolicyNamed(%q): %v, want ErrInvalid", bad, err)
		}
	}
}
