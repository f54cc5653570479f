package persistence

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// LevelCritical is the log level zasync uses for what zc.async logged CRITICAL: failures of
// callbacks and system jobs, retries that go on forever, recovery from a dead dispatcher.
const LevelCritical = slog.Level(12)

// RetryAction is what a retry policy asks for.
type RetryAction uint8

const (
	// ActionStop keeps the error as the job's result (for an interruption: AbortedError).
	ActionStop RetryAction = iota
	// ActionRetryNow runs the job again at once. For a job error or commit error it re-runs
	// in place (keeping the agent slot), after Delay if one is set; for an interruption the
	// job is put back at the front of its queue.
	ActionRetryNow
	// ActionReschedule puts the job back into its queue with begin_after At. A time at or
	// before now means put back at the front.
	ActionReschedule
)

// Decision is a retry policy's answer. Build it with Stop, RetryNow, RetryInPlace, RetryAt or
// RetryAfter.
type Decision struct {
	Action RetryAction
	Delay  time.Duration // ActionRetryNow: wait this long first (in place, keeping the slot)
	At     time.Time     // ActionReschedule: the new begin_after (zero: now, computed by When)
	After  time.Duration // ActionReschedule: when At is zero, begin_after = now + After
	// Counter and Count say which persistent counter the policy incremented and to what, so
	// that the runtime can log "another attempt after N counts of X occurrences" on the first
	// and every fifth occurrence.
	Counter string
	Count   int
	// Alert asks the runtime to log at LevelCritical instead of WARNING: the policy retries
	// something that may never succeed, and somebody should look.
	Alert bool
}

// Stop keeps the failure as the result.
func Stop() Decision { return Decision{Action: ActionStop} }

// RetryNow retries at once.
func RetryNow() Decision { return Decision{Action: ActionRetryNow} }

// RetryInPlace retries in place after waiting d, keeping the job's slot.
func RetryInPlace(d time.Duration) Decision { return Decision{Action: ActionRetryNow, Delay: d} }

// RetryAt reschedules the job to begin after t.
func RetryAt(t time.Time) Decision { return Decision{Action: ActionReschedule, At: t.UTC()} }

// RetryAfter reschedules the job to begin d from now.
func RetryAfter(d time.Duration) Decision { return Decision{Action: ActionReschedule, After: d} }

// Retries reports whether the decision runs the job again in any way.
func (d Decision) Retries() bool { return d.Action != ActionStop }

// When resolves a reschedule against now: the new begin_after, and whether it is due at once
// (then the job is put back at the front of the queue rather than scheduled).
func (d Decision) When(now time.Time) (at time.Time, putBack bool) {
	at = d.At
	if at.IsZero() {
		at = now.Add(d.After)
	}
	if !at.After(now) {
		return now, true
	}
	return at.UTC(), false
}

// ShouldLog reports whether this retry is one the runtime logs: the first occurrence and
// every fifth.
func (d Decision) ShouldLog() bool { return d.Count == 1 || d.Count%5 == 0 }

func (d Decision) String() string {
	switch d.Action {
	case ActionRetryNow:
		if d.Delay > 0 {
			return fmt.Sprintf("retry in place after %s", d.Delay)
		}
		return "retry now"
	case ActionReschedule:
		if d.At.IsZero() {
			return fmt.Sprintf("reschedule after %s", d.After)
		}
		return "reschedule at " + d.At.Format(time.RFC3339Nano)
	}
	return "stop"
}

// RetryCounts are a job's retry counters by name. They persist in the job record, so they
// survive the process that ran the job. Policies change them; the runtime stores them with the
// next transition of the job.
type RetryCounts map[string]int

// Names of the counters the built-in policies keep.
const (
	CountConflicts     = "conflicts"     // job or commit errors that are ErrConflict
	CountUnavailable   = "unavailable"   // job or commit errors that are ErrUnavailable
	CountInterruptions = "interruptions" // interruptions (clean shutdown or dispatcher death)
	CountCommitErrors  = "commit_errors" // other commit errors (RetryCommonForever only)
)

// bump increments counter name and returns the new count.
func (c RetryCounts) bump(name string) int {
	c[name]++
	return c[name]
}

// RetryPolicy decides what happens when a job fails. It is chosen when the job is created and
// stored on it by name, so later changes to defaults do not affect jobs already put; its
// counters live in the job record. Implementations must be safe for concurrent use and must
// keep all their state in counts.
type RetryPolicy interface {
	// Name identifies the policy in job records; it must be registered under this name in
	// every process that runs the queue.
	Name() string
	// JobError answers an error returned (or a panic raised) by the handler.
	JobError(err error, counts RetryCounts) Decision
	// CommitError answers an error storing the job's outcome.
	CommitError(err error, counts RetryCounts) Decision
	// Interrupted answers a clean shutdown or dispatcher death while the job was ACTIVE.
	// ActionStop aborts the job with *AbortedError.
	Interrupted(counts RetryCounts) Decision
}

// Names of the built-in retry policies.
const (
	RetryCommonFourTimesName = "RetryCommonFourTimes"
	RetryCommonForeverName   = "RetryCommonForever"
	NeverRetryName           = "NeverRetry"
)

// MaxInterruptions is how many interruptions RetryCommonFourTimes retries: the next one aborts
// the job, so a job that kills its process every time cannot crash-loop a cluster.
const MaxInterruptions = 9

// MaxConflicts is how many conflicts RetryCommonFourTimes tolerates in all: the job runs at
// most this many times because of them (four retries).
const MaxConflicts = 5

// unavailableBackoff is the wait before retry n (from 1) after the store was unreachable:
// 5, 10, …, 60 seconds.
func unavailableBackoff(n int) time.Duration {
	return time.Duration(min(60, 5+5*(n-1))) * time.Second
}

// RetryCommonFourTimes is the default policy for queued jobs. Conflicts are retried until
// MaxConflicts occurrences in all (job and commit errors share the counter); an unreachable
// store is retried forever with a 5 to 60 second backoff; other errors are not retried;
// interruptions are retried MaxInterruptions times and the next one aborts the job.
var RetryCommonFourTimes RetryPolicy = commonFourTimes{}

type commonFourTimes struct{}

func (commonFourTimes) Name() string { return RetryCommonFourTimesName }

func (commonFourTimes) JobError(err error, c RetryCounts) Decision { return fourTimes(err, c) }

func (commonFourTimes) CommitError(err error, c RetryCounts) Decision { return fourTimes(err, c) }

func (commonFourTimes) Interrupted(c RetryCounts) Decision {
	n := c.bump(CountInterruptions)
	d := RetryNow()
	if n > MaxInterruptions {
		d = Stop()
	}
	d.Counter, d.Count = CountInterruptions, n
	return d
}

func fourTimes(err error, c RetryCounts) Decision {
	switch {
	case errors.Is(err, ErrUnavailable):
		n := c.bump(CountUnavailable)
		d := RetryInPlace(unavailableBackoff(n))
		d.Counter, d.Count = CountUnavailable, n
		return d
	case errors.Is(err, ErrConflict):
		n := c.bump(CountConflicts)
		d := RetryNow()
		if n >= MaxConflicts {
			d = Stop()
		}
		d.Counter, d.Count = CountConflicts, n
		return d
	}
	return Stop()
}

// RetryCommonForever is the policy of callbacks and system jobs, which must not be lost:
// conflicts, an unreachable store and interruptions are retried forever; any other commit
// error is retried forever too, with a 0 to 60 second backoff and a critical log; other job
// errors are not retried.
var RetryCommonForever RetryPolicy = commonForever{}

type commonForever struct{}

func (commonForever) Name() string { return RetryCommonForeverName }

func (commonForever) JobError(err error, c RetryCounts) Decision { return forever(err, c, false) }

func (commonForever) CommitError(err error, c RetryCounts) Decision { return forever(err, c, true) }

func (commonForever) Interrupted(c RetryCounts) Decision {
	d := RetryNow()
	d.Counter, d.Count = CountInterruptions, c.bump(CountInterruptions)
	return d
}

func forever(err error, c RetryCounts, commit bool) Decision {
	switch {
	case errors.Is(err, ErrUnavailable):
		n := c.bump(CountUnavailable)
		d := RetryInPlace(unavailableBackoff(n))
		d.Counter, d.Count = CountUnavailable, n
		return d
	case errors.Is(err, ErrConflict):
		d := RetryNow()
		d.Counter, d.Count = CountConflicts, c.bump(CountConflicts)
		return d
	case commit:
		n := c.bump(CountCommitErrors)
		d := RetryInPlace(time.Duration(min(60, n-1)) * time.Second)
		d.Counter, d.Count, d.Alert = CountCommitErrors, n, true
		return d
	}
	return Stop()
}

// NeverRetry never retries anything, for work that must not run twice (a payment call); an
// interruption aborts it at once.
var NeverRetry RetryPolicy = neverRetry{}

type neverRetry struct{}

func (neverRetry) Name() string                            { return NeverRetryName }
func (neverRetry) JobError(error, RetryCounts) Decision    { return Stop() }
func (neverRetry) CommitError(error, RetryCounts) Decision { return Stop() }
func (neverRetry) Interrupted(c RetryCounts) Decision {
	d := Stop()
	d.Counter, d.Count = CountInterruptions, c.bump(CountInterruptions)
	return d
}

// PastDeadline turns a retry into Stop once a job with a begin_by deadline is past it: a job
// that had to start by a time is not run again after that time. (zc.async meant this; its
// comparison was inverted and refused retries before the deadline instead.)
func PastDeadline(d Decision, j *Job, now time.Time) Decision {
	if d.Retries() && j.BeginBy > 0 && now.After(j.BeginAfter.Add(j.BeginBy)) {
		s := Stop()
		s.Counter, s.Count = d.Counter, d.Count
		return s
	}
	return d
}

// RetryPolicies finds policies by the name stored in job records. The zero value is not
// usable; NewRetryPolicies returns one holding the built-in policies.
type RetryPolicies struct {
	mu sync.RWMutex
	m  map[string]RetryPolicy
}

// NewRetryPolicies returns a registry holding RetryCommonFourTimes, RetryCommonForever and
// NeverRetry.
func NewRetryPolicies() *RetryPolicies {
	r := &RetryPolicies{m: map[string]RetryPolicy{}}
	for _, p := range []RetryPolicy{RetryCommonFourTimes, RetryCommonForever, NeverRetry} {
		r.m[p.Name()] = p
	}
	return r
}

// Register adds a user policy. Its name must be a valid name and not taken.
func (r *RetryPolicies) Register(p RetryPolicy) error {
	if err := ValidateName("retry policy", p.Name()); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[p.Name()]; ok {
		return invalidf("retry policy %q is already registered", p.Name())
	}
	r.m[p.Name()] = p
	return nil
}

// Lookup returns the policy registered under name, or an error wrapping ErrNotFound.
func (r *RetryPolicies) Lookup(name string) (RetryPolicy, error) {
	r.mu.RLock()
	p, ok := r.m[name]
	r.mu.RUnlock()
	if ok {
		return p, nil
	}
	if p, ok := parseBackoff(name); ok { // its name is its definition: nothing to register
		return p, nil
	}
	return nil, fmt.Errorf("%w: retry policy %q", ErrNotFound, name)
}
