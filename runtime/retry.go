package runtime

import (
	"log/slog"
	"time"

	"github.com/zasync/zasync/persistence"
)

// RetryPolicy decides what happens when a job fails, when storing its outcome fails and
// when it is interrupted. A job keeps its policy's name; the policy must be known (built in,
// or listed in Config.RetryPolicies) to every process that serves the queue. Implementations
// must be safe for concurrent use and keep all their state in the counts they are given,
// which persist in the job record. A policy may answer some cases itself and hand the others
// to a built-in one (RetryCommonFourTimes.Interrupted(counts), say).
type RetryPolicy interface {
	// Name identifies the policy in job records; it must be registered under this name in
	// every process that runs the queue.
	Name() string
	// JobError answers an error returned (or a panic raised) by the handler.
	JobError(err error, counts RetryCounts) Decision
	// CommitError answers an error storing the job's outcome.
	CommitError(err error, counts RetryCounts) Decision
	// Interrupted answers a clean shutdown or a dispatcher's death while the job was
	// running. ActionStop aborts the job with an *AbortedError.
	Interrupted(counts RetryCounts) Decision
}

// RetryAction is what a retry policy's Decision asks for.
type RetryAction uint8

// The actions of a Decision.
const (
	// ActionStop keeps the error as the job's result (for an interruption: an AbortedError).
	ActionStop RetryAction = iota
	// ActionRetryNow runs the job again at once. For a handler or commit error it runs again
	// in place (keeping the agent's slot), after Delay if one is set; an interrupted job is
	// put back at the front of its queue.
	ActionRetryNow
	// ActionReschedule puts the job back into its queue to begin after At (or After from
	// now). A time at or before now puts it back at the front.
	ActionReschedule
)

// Decision is a retry policy's answer; build it with StopRetrying, RetryNow, RetryInPlace,
// RetryAt or RetryAfter, and set Counter, Count and Alert when the policy counts.
type Decision struct {
	// Action is what the policy asks for.
	Action RetryAction
	// Delay is, for ActionRetryNow, how long to wait first (in place, keeping the slot).
	Delay time.Duration
	// At is, for ActionReschedule, the new begin_after; zero: After from now.
	At time.Time
	// After is, for ActionReschedule when At is zero, how long from now the job begins.
	After time.Duration
	// Counter and Count say which of the job's counters the policy incremented, and to what,
	// so that the retry is logged at the first occurrence and every fifth.
	Counter string
	Count   int
	// Alert logs the retry at LevelCritical instead of WARNING: the policy retries something
	// that may never succeed, and somebody should look.
	Alert bool
}

// Retries reports whether the decision runs the job again in any way.
func (d Decision) Retries() bool { return d.Action != ActionStop }

// String describes the decision: "stop", "retry now", "retry in place after 5s",
// "reschedule after 1m0s", "reschedule at <time>".
func (d Decision) String() string { return d.stored().String() }

// stored returns d as the executor reads it.
func (d Decision) stored() persistence.Decision {
	return persistence.Decision{Action: persistence.RetryAction(d.Action), Delay: d.Delay, At: d.At, After: d.After,
		Counter: d.Counter, Count: d.Count, Alert: d.Alert}
}

// decisionFrom returns a built-in policy's decision as a Decision.
func decisionFrom(d persistence.Decision) Decision {
	return Decision{Action: RetryAction(d.Action), Delay: d.Delay, At: d.At, After: d.After,
		Counter: d.Counter, Count: d.Count, Alert: d.Alert}
}

// RetryCounts are a job's retry counters by name, kept in its record across processes. A
// policy changes them in place; they are stored with the job's next transition.
type RetryCounts map[string]int

// The built-in retry policies, always registered.
var (
	// RetryCommonFourTimes is the default policy of queued jobs: a conflict is retried until
	// it has happened five times, an unreachable Redis forever with a 5 to 60 second backoff,
	// any other error not at all; the tenth interruption aborts the job.
	RetryCommonFourTimes RetryPolicy = builtinPolicy{persistence.RetryCommonFourTimes}
	// RetryCommonForever is the default policy of callbacks: conflicts, an unreachable Redis,
	// interruptions and commit errors are retried forever; other handler errors are not.
	RetryCommonForever RetryPolicy = builtinPolicy{persistence.RetryCommonForever}
	// NeverRetry never retries, for work that must not run twice; an interruption aborts the
	// job at once.
	NeverRetry RetryPolicy = builtinPolicy{persistence.NeverRetry}
)

// builtinPolicy is one of the store's own policies (the built-in ones, RetryBackoff's) as a
// RetryPolicy. Registered or run, it is handed over as it is.
type builtinPolicy struct{ p persistence.RetryPolicy }

func (b builtinPolicy) Name() string { return b.p.Name() }

func (b builtinPolicy) JobError(err error, c RetryCounts) Decision {
	return decisionFrom(b.p.JobError(err, persistence.RetryCounts(c)))
}

func (b builtinPolicy) CommitError(err error, c RetryCounts) Decision {
	return decisionFrom(b.p.CommitError(err, persistence.RetryCounts(c)))
}

func (b builtinPolicy) Interrupted(c RetryCounts) Decision {
	return decisionFrom(b.p.Interrupted(persistence.RetryCounts(c)))
}

// programPolicy is a program's RetryPolicy as the executor runs it. The counts are the same
// map either way, so what the policy counts is stored.
type programPolicy struct{ p RetryPolicy }

func (a programPolicy) Name() string { return a.p.Name() }

func (a programPolicy) JobError(err error, c persistence.RetryCounts) persistence.Decision {
	return a.p.JobError(err, RetryCounts(c)).stored()
}

func (a programPolicy) CommitError(err error, c persistence.RetryCounts) persistence.Decision {
	return a.p.CommitError(err, RetryCounts(c)).stored()
}

func (a programPolicy) Interrupted(c persistence.RetryCounts) persistence.Decision {
	return a.p.Interrupted(RetryCounts(c)).stored()
}

// policyFrom returns a policy of the store's registry as the RetryPolicy it was registered
// from: a program's own, or a built-in one.
func policyFrom(p persistence.RetryPolicy) RetryPolicy {
	if a, ok := p.(programPolicy); ok {
		return a.p
	}
	return builtinPolicy{p}
}

// storedPolicy returns p as the store's retry policy registry takes it.
func storedPolicy(p RetryPolicy) persistence.RetryPolicy {
	if b, ok := p.(builtinPolicy); ok {
		return b.p
	}
	return programPolicy{p}
}

// LevelCritical is the log level of what zc.async logged CRITICAL: failures of callbacks and
// system jobs, among others. Use it with FailureLevel.
const LevelCritical = slog.Level(12)

// StopRetrying keeps the error as the job's result (for an interruption: an AbortedError).
func StopRetrying() Decision { return decisionFrom(persistence.Stop()) }

// RetryNow runs the job again at once; an interrupted job goes back to the front of its queue.
func RetryNow() Decision { return decisionFrom(persistence.RetryNow()) }

// RetryInPlace runs the job again after d, keeping its agent slot meanwhile.
func RetryInPlace(d time.Duration) Decision { return decisionFrom(persistence.RetryInPlace(d)) }

// RetryAt puts the job back into its queue, to begin after t.
func RetryAt(t time.Time) Decision { return decisionFrom(persistence.RetryAt(t)) }

// RetryAfter puts the job back into its queue, to begin d from now.
func RetryAfter(d time.Duration) Decision { return decisionFrom(persistence.RetryAfter(d)) }

// ErrPermanent marks a handler error that no retry can cure: every built-in policy stops on
// it. Wrap an error with Permanent to mark it; a stored failure still matches it.
var ErrPermanent = persistence.ErrPermanent

// Permanent marks err as one that no retry can cure (a card declined, a record gone): the
// built-in policies, RetryBackoff included, do not retry it. errors.Is finds both err and
// ErrPermanent in the result; its text and kind are err's. Nil stays nil.
func Permanent(err error) error { return persistence.Permanent(err) }

// CountErrors is the counter of the handler errors RetryBackoff has retried.
const CountErrors = "errors"

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
	p, err := persistence.RetryBackoff(n, base, max)
	if err != nil {
		return nil, err
	}
	return builtinPolicy{p}, nil
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
	return policyFrom(p), nil
}
