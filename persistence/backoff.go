package persistence

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"time"
)

// ErrPermanent marks a handler error that no retry can cure (Permanent wraps one): every
// built-in policy stops on it, RetryBackoff included. It is registered (RegisterError), so a
// stored failure still matches it.
var ErrPermanent = errors.New("zasync: permanent error")

func init() {
	if err := RegisterError(ErrPermanent); err != nil {
		panic(err)
	}
}

// Permanent marks err as one that no retry can cure: errors.Is(Permanent(err), ErrPermanent)
// and errors.Is(Permanent(err), err) both hold, and its text and kind are err's. Nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (p permanentError) Error() string   { return p.err.Error() }
func (p permanentError) Unwrap() []error { return []error{p.err, ErrPermanent} }

// CountErrors is the counter of handler errors RetryBackoff retries.
const CountErrors = "errors"

// Limits of RetryBackoff's parameters.
const (
	MaxBackoffRetries = 1000
	MaxBackoffDelay   = 30 * 24 * time.Hour
)

// RetryBackoff returns a policy that retries a handler's errors up to n times, the k-th
// retry after a delay drawn between half and all of min(max, base·2^(k-1)) (exponential
// backoff with jitter, so that jobs failing together do not come back together). The job
// goes back to its queue meanwhile, freeing its slot. Errors wrapping ErrPermanent or
// ErrInvalid are not retried; conflicts, an unreachable store and interruptions are answered
// as RetryCommonFourTimes answers them. Its name ("RetryBackoff(n,base,max)") says it all, so
// every process reads it from a job without registering it. n from 1 to MaxBackoffRetries,
// 0 < base <= max <= MaxBackoffDelay; anything else gives ErrInvalid.
func RetryBackoff(n int, base, max time.Duration) (RetryPolicy, error) {
	switch {
	case n < 1 || n > MaxBackoffRetries:
		return nil, invalidf("RetryBackoff: %d retries, want 1 to %d", n, MaxBackoffRetries)
	case base <= 0 || max < base || max > MaxBackoffDelay:
		return nil, invalidf("RetryBackoff: base %s and max %s: want 0 < base <= max <= %s", base, max, MaxBackoffDelay)
	}
	return backoff{n: n, base: base, max: max}, nil
}

type backoff struct {
	n         int
	base, max time.Duration
}

func (b backoff) Name() string {
	return fmt.Sprintf("RetryBackoff(%d,%s,%s)", b.n, b.base, b.max)
}

// Delay is the longest wait before retry k (from 1): min(max, base·2^(k-1)).
func (b backoff) Delay(k int) time.Duration {
	d := b.base
	for i := 1; i < k && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

func (b backoff) JobError(err error, c RetryCounts) Decision {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrConflict) {
		return fourTimes(err, c)
	}
	if errors.Is(err, ErrPermanent) || errors.Is(err, ErrInvalid) {
		return Stop()
	}
	k := c.bump(CountErrors)
	if k > b.n {
		d := Stop()
		d.Counter, d.Count = CountErrors, k
		return d
	}
	longest := b.Delay(k)
	d := RetryAfter(longest/2 + rand.N(longest/2+1))
	d.Counter, d.Count = CountErrors, k
	return d
}

func (b backoff) CommitError(err error, c RetryCounts) Decision { return fourTimes(err, c) }

func (b backoff) Interrupted(c RetryCounts) Decision { return RetryCommonFourTimes.Interrupted(c) }

// backoffName matches a RetryBackoff policy's name.
var backoffName = regexp.MustCompile(`^RetryBackoff\((\d+),([0-9a-zµ.]+),([0-9a-zµ.]+)\)$`)

// parseBackoff reads a RetryBackoff policy from its name; false if name is not one.
func parseBackoff(name string) (RetryPolicy, bool) {
	m := backoffName.FindStringSubmatch(name)
	if m == nil {
		return nil, false
	}
	n, err1 := strconv.Atoi(m[1])
	base, err2 := time.ParseDuration(m[2])
	max, err3 := time.ParseDuration(m[3])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, false
	}
	p, err := RetryBackoff(n, base, max)
	if err != nil || p.Name() != name {
		return nil, false
	}
	return p, true
}
