package runtime

import (
	"time"

	"github.com/zasync/zasync/persistence"
)

// RetryPolicy decides what happens when a job fails, when storing its outcome fails and
// when it is interrupted. A job keeps its policy's name; the policy must be known (built in,
// or listed in Config.RetryPolicies) to every process that serves the queue. Implementations
// must be safe for concurrent use and keep all their state in the counts they are given,
// which persist in the job record.
type RetryPolicy = persistence.RetryPolicy

// Decision is a retry policy's answer; build it with StopRetrying, RetryNow, RetryInPlace,
// RetryAt or RetryAfter.
type Decision = persistence.Decision

// RetryCounts are a job's retry counters by name, kept in its record across processes.
type RetryCounts = persistence.RetryCounts

// The built-in retry policies, always registered.
var (
	// RetryCommonFourTimes is the default policy of queued jobs: a conflict is retried until
	// it has happened five times, an unreachable Redis forever with a 5 to 60 second backoff,
	// any other error not at all; the tenth interruption aborts the job.
	RetryCommonFourTimes = persistence.RetryCommonFourTimes
	// RetryCommonForever is the default policy of callbacks: conflicts, an unreachable Redis,
	// interruptions and commit errors are retried forever; other handler errors are not.
	RetryCommonForever = persistence.RetryCommonForever
	// NeverRetry never retries, for work that must not run twice; an interruption aborts the
	// job at once.
	NeverRetry = persistence.NeverRetry
)

// LevelCritical is the log level of what zc.async logged CRITICAL: failures of callbacks and
// system jobs, among others. Use it with FailureLevel.
const LevelCritical = persistence.LevelCritical

// StopRetrying keeps the error as the job's result (for an interruption: an AbortedError).
func StopRetrying() Decision { return persistence.Stop() }

// RetryNow runs the job again at once; an interrupted job goes back to the front of its queue.
func RetryNow() Decision { return persistence.RetryNow() }

// RetryInPlace runs the job again after d, keeping its agent slot meanwhile.
func RetryInPlace(d time.Duration) Decision { return persistence.RetryInPlace(d) }

// RetryAt puts the job back into its queue, to begin after t.
func RetryAt(t time.Time) Decision { return persistence.RetryAt(t) }

// RetryAfter puts the job back into its queue, to begin d from now.
func RetryAfter(d time.Duration) Decision { return persistence.RetryAfter(d) }

// ErrPermanent marks a handler error that no retry can cure: every built-in policy stops on
// it. Wrap an error with Permanent to mark it; a stored failure still matches it.
var ErrPermanent = persistence.ErrPermanent

// Permanent marks err as one that no retry can cure (a card declined, a record gone): the
// built-in policies, RetryBackoff included, do not retry it. errors.Is finds both err and
// ErrPermanent in the result; its text and kind are err's. Nil stays nil.
func Permanent(err error) error { return persistence.Permanent(err) }

// CountErrors is the counter of the handler errors RetryBackoff has retried.
const CountErrors = persistence.CountErrors

// RetryBackoff returns a policy that retries a handler's errors up to n times, the k-th retry
// after a delay drawn between half and all of min(max, base·2^(k-1)): exponential backoff with
// jitter. Meanwhile the job waits in its queue, scheduled, its slot free. Permanent errors and
// ErrInvalid are not retried; conflicts, an unreachable Redis and interruptions are answered
// as RetryCommonFourTimes answers them. Every process knows it from its name alone, so it
// needs no Config.RetryPolicies entry. n from 1 to 1000 and 0 < base <= max <= 30 days, else
// ErrInvalid:
//
//	backoff, err := runtime.RetryBackoff(5, time.Second, time.Minute)
//	q.Put(ctx, call, runtime.Retry(backoff))
func RetryBackoff(n int, base, max time.Duration) (RetryPolicy, error) {
	return persistence.RetryBackoff(n, base, max)
}

// RetryPolicyNamed returns the policy this runtime knows by name: a built-in one, one in
// Config.RetryPolicies, or a RetryBackoff by the name it reports (RetryBackoff(5,1s,1m0s)).
// What names a policy in a request (the HTTP API's put, say) is read with it. Unknown names
// are ErrInvalid.
func (rt *Runtime) RetryPolicyNamed(name string) (RetryPolicy, error) {
	p, err := rt.policies.Lookup(name)
	if err != nil {
		return nil, invalidf("unknown retry policy %q (built in: %s, %s, %s, RetryBackoff(N,BASE,MAX); others must be in Config.RetryPolicies)",
			name, RetryCommonFourTimes.Name(), RetryCommonForever.Name(), NeverRetry.Name())
	}
	return p, nil
}
