package persistence

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// RetryBackoff retries a handler's errors n times, each after a delay between half and all of
// the doubling bound, then stops; permanent and invalid errors stop at once; its name is read
// back as the same policy.
func TestRetryBackoff(t *testing.T) {
	p, err := RetryBackoff(4, time.Second, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "RetryBackoff(4,1s,5s)" {
		t.Fatalf("name %q", p.Name())
	}
	c := RetryCounts{}
	for k, bound := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second} {
		d := p.JobError(errors.New("flaky"), c)
		if d.Action != ActionReschedule || d.After < bound/2 || d.After > bound || d.Count != k+1 || d.Counter != CountErrors {
			t.Fatalf("retry %d: %+v, want a reschedule within [%s, %s]", k+1, d, bound/2, bound)
		}
	}
	if d := p.JobError(errors.New("flaky"), c); d.Retries() {
		t.Fatalf("the fifth error: %+v, want a stop", d)
	}
	for _, err := range []error{Permanent(errors.New("card declined")), fmt.Errorf("bad: %w", ErrInvalid)} {
		if d := p.JobError(err, RetryCounts{}); d.Retries() {
			t.Fatalf("%v: %+v, want a stop", err, d)
		}
	}
	if d := p.JobError(fmt.Errorf("x: %w", ErrConflict), RetryCounts{}); d.Action != ActionRetryNow {
		t.Fatalf("a conflict: %+v, want a retry now", d)
	}
	r := NewRetryPolicies()
	got, err := r.Lookup(p.Name())
	if err != nil || got.Name() != p.Name() {
		t.Fatalf("Lookup of its name: %v %v", got, err)
	}
	for _, bad := range []string{"RetryBackoff(0,1s,5s)", "RetryBackoff(4,5s,1s)", "RetryBackoff(4,1s,5s", "RetryBackoff(4,1000ms,5s)", "RetryBackoff(x,1s,5s)"} {
		if _, err := r.Lookup(bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Lookup(%q): %v, want ErrNotFound", bad, err)
		}
	}
	for _, args := range []struct {
		n         int
		base, max time.Duration
	}{{0, time.Second, time.Second}, {MaxBackoffRetries + 1, time.Second, time.Second}, {1, 0, time.Second}, {1, 2 * time.Second, time.Second}, {1, time.Second, MaxBackoffDelay + 1}} {
		if _, err := RetryBackoff(args.n, args.base, args.max); !errors.Is(err, ErrInvalid) {
			t.Fatalf("RetryBackoff(%d, %s, %s): %v, want ErrInvalid", args.n, args.base, args.max, err)
		}
	}
}

// Permanent keeps the error's text, kind and identity, and marks it: stored and read back,
// the failure still matches ErrPermanent.
func TestPermanent(t *testing.T) {
	inner := &TimeoutError{}
	p := Permanent(fmt.Errorf("wrapped: %w", inner))
	if !errors.Is(p, ErrPermanent) || !errors.As(p, &inner) || p.Error() != "wrapped: "+inner.Error() {
		t.Fatalf("Permanent: %v", p)
	}
	f := NewFailure(p, "")
	if f.Type != "TimeoutError" || !errors.Is(f, ErrPermanent) {
		t.Fatalf("the failure of a permanent error: %+v", f)
	}
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
}
