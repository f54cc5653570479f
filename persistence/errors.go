package persistence

import (
	"fmt"
	"strings"
	"time"
)

// kindError is a sentinel that also names the kind of failure it stands for, so that a
// Failure read back from storage still answers errors.Is for it (see Failure.Is).
type kindError struct {
	kind string
	msg  string
}

func (e *kindError) Error() string { return e.msg }

// FailureType reports the name stored in a Failure made from this error.
func (e *kindError) FailureType() string { return e.kind }

// Sentinel errors. Check them with errors.Is; they are wrapped with %w and context.
var (
	// ErrConflict reports an optimistic transaction that lost a race: a watched key changed
	// between the read and EXEC, and the store's bounded retries were used up. The retry
	// policy decides what happens next.
	ErrConflict error = &kindError{"ConflictError", "zasync: transaction conflict"}
	// ErrReassigned reports a fenced write by a process that no longer owns the job (another
	// owner, another attempt, or another status). It is never retried.
	ErrReassigned error = &kindError{"ReassignedError", "zasync: job was reassigned"}
	// ErrBadStatus reports an operation the job's current status forbids. *BadStatusError
	// carries the details and matches it.
	ErrBadStatus error = &kindError{"BadStatusError", "zasync: bad job status"}
	// ErrNotFound reports a job id, dispatcher, quota or agent that does not exist.
	ErrNotFound error = &kindError{"NotFoundError", "zasync: not found"}
	// ErrNotInQueue reports a pull or remove of a job that is not waiting in the queue.
	ErrNotInQueue error = &kindError{"LookupError", "zasync: job not in queue"}
	// ErrUnknownQuota reports a quota name that the queue does not define.
	ErrUnknownQuota error = &kindError{"UnknownQuotaError", "zasync: unknown quota name"}
	// ErrFull reports a claim for an agent that already holds as many jobs as its size
	// (parked jobs not counted): nothing was claimed.
	ErrFull error = &kindError{"FullError", "zasync: full"}
	// ErrInvalid reports bad input: an empty handler, arguments that are not JSON, a zero
	// time where one is required, a negative duration, a name that would break the key schema.
	// Nothing is written when it is returned.
	ErrInvalid error = &kindError{"ValueError", "zasync: invalid argument"}
	// ErrAlreadyRegistered reports a dispatcher UUID registered twice in a queue.
	ErrAlreadyRegistered error = &kindError{"AlreadyRegisteredError", "zasync: UUID already registered"}
	// ErrAlreadyActivated reports an activation of a dispatcher record that is activated and
	// not dead: most likely another process runs with the same UUID.
	ErrAlreadyActivated error = &kindError{"AlreadyActivatedError", "zasync: dispatcher already activated"}
	// ErrNotActivated reports a dispatcher operation that needs an activated record.
	ErrNotActivated error = &kindError{"NotActivatedError", "zasync: dispatcher not activated"}
	// ErrActivated reports an unregister of a record that is still activated.
	ErrActivated error = &kindError{"ActivatedError", "zasync: UUID is activated"}
	// ErrCancelled is the failure of a job cancelled by an operator or a program (Store.Revoke):
	// a stored failure of its kind still matches it.
	ErrCancelled error = &kindError{"CancelledError", "zasync: job cancelled"}
	// ErrUnavailable reports that the store could not be reached (network, server down,
	// timeout). The common retry policies back off and retry it.
	ErrUnavailable error = &kindError{"UnavailableError", "zasync: store unavailable"}
)

// invalidf returns an ErrInvalid wrapped with a formatted explanation.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// BadStatusError reports an operation attempted in a status that forbids it.
type BadStatusError struct {
	Op      string   // what was attempted, e.g. "set begin_after"
	Status  Status   // the job's status at the time
	Allowed []Status // the statuses in which Op is allowed
}

func (e *BadStatusError) Error() string {
	names := make([]string, len(e.Allowed))
	for i, s := range e.Allowed {
		names[i] = s.String()
	}
	return fmt.Sprintf("zasync: bad job status: cannot %s while %s (allowed: %s)",
		e.Op, e.Status, strings.Join(names, ", "))
}

// Is makes errors.Is(err, ErrBadStatus) true.
func (e *BadStatusError) Is(target error) bool { return target == ErrBadStatus }

// FailureType reports the name stored in a Failure made from this error.
func (e *BadStatusError) FailureType() string { return "BadStatusError" }

// TimeoutError is the failure of a job that was not started before its begin_by deadline, or
// whose run took longer than its run timeout (Run).
type TimeoutError struct {
	BeginAfter time.Time     // when the job became due
	BeginBy    time.Duration // how long after BeginAfter it had to start
	// Run, Limit: the job's run took longer than its run timeout, Limit (Job.Timeout).
	Run   bool
	Limit time.Duration
}

func (e *TimeoutError) Error() string {
	if e.Run {
		return fmt.Sprintf("zasync: the run took longer than its timeout of %s", e.Limit)
	}
	if e.BeginAfter.IsZero() {
		return "zasync: job timed out"
	}
	return fmt.Sprintf("zasync: job not started by %s (begin_after %s + begin_by %s)",
		e.BeginAfter.Add(e.BeginBy).Format(time.RFC3339Nano), e.BeginAfter.Format(time.RFC3339Nano), e.BeginBy)
}

// FailureType reports the name stored in a Failure made from this error.
func (e *TimeoutError) FailureType() string { return "TimeoutError" }

// AbortedError is the failure of a job whose retry policy gave up after interruptions.
type AbortedError struct {
	Interruptions int // how many times the job had been interrupted
}

func (e *AbortedError) Error() string {
	return fmt.Sprintf("zasync: job aborted after %d interruptions", e.Interruptions)
}

// FailureType reports the name stored in a Failure made from this error.
func (e *AbortedError) FailureType() string { return "AbortedError" }

// foreignAs is the hook SetAs sets: it fills an errors.As target of another package's type
// from one of this package's typed errors.
var foreignAs func(err error, target any) bool

// SetAs lets another package define its own types for this package's typed errors (Failure,
// BadStatusError, TimeoutError, AbortedError, CorruptError) and have errors.As find them:
// when errors.As meets one of these errors and its target is not of the error's own type, it
// asks f to fill target from err, and f reports whether it did. Package runtime, whose
// documented types stand for these, sets it in an init function, so that a *Failure deep in
// an error chain answers errors.As for a *runtime.Failure as well. Call it at most once,
// before any error is checked; f must not call errors.As.
func SetAs(f func(err error, target any) bool) { foreignAs = f }

// asForeign is the As method of this package's typed errors: see SetAs.
func asForeign(err error, target any) bool { return foreignAs != nil && foreignAs(err, target) }

// As fills a target of another package's type that stands for BadStatusError (see SetAs).
func (e *BadStatusError) As(target any) bool { return asForeign(e, target) }

// As fills a target of another package's type that stands for TimeoutError (see SetAs).
func (e *TimeoutError) As(target any) bool { return asForeign(e, target) }

// As fills a target of another package's type that stands for AbortedError (see SetAs).
func (e *AbortedError) As(target any) bool { return asForeign(e, target) }

// As fills a target of another package's type that stands for CorruptError (see SetAs).
func (e *CorruptError) As(target any) bool { return asForeign(e, target) }

// typer is implemented by errors that name their kind for a Failure.
type typer interface{ FailureType() string }

// IsKind reports whether err is, or wraps, an error of the named kind (for example
// "TimeoutError"). It also answers for a *Failure read back from storage, which keeps only
// the kind's name.
func IsKind(err error, kind string) bool {
	switch e := err.(type) {
	case nil:
		return false
	case *Failure:
		if e.Type == kind {
			return true
		}
	case typer:
		if e.FailureType() == kind {
			return true
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return IsKind(u.Unwrap(), kind)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if IsKind(e, kind) {
				return true
			}
		}
	}
	return false
}

// ErrMoreCallbacks reports, from Complete, that callbacks were added after the caller read the
// job: it must run them before the job can complete.
var ErrMoreCallbacks error = &kindError{"MoreCallbacksError", "zasync: callbacks were added"}

// ErrCorrupt reports a stored record that cannot be read back: a bug, or a key written by
// something other than zasync.
var ErrCorrupt error = &kindError{"CorruptRecordError", "zasync: corrupt record"}

// CorruptError reports a stored job record some of whose fields cannot be read back (a
// record written by something other than zasync, or by a version that stored what this one
// cannot read). It matches ErrCorrupt. A store reading such a record for a claim, a fenced
// transition or a listing does not stop at it: it reads what it can, leaves the rest zero,
// and sets Job.Corrupt, so that the job can be failed with this error as its failure and a
// query of the queue lists it, instead of the whole claim or query failing.
type CorruptError struct {
	Ref    Ref
	Fields []string // the fields that could not be read, as the store names them
	Err    error    // why the first of them could not
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("zasync: corrupt record: job %s, field %s: %v", e.Ref, strings.Join(e.Fields, ", "), e.Err)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// FailureType reports the name stored in a Failure made from this error.
func (e *CorruptError) FailureType() string { return "CorruptRecordError" }

// ErrNoHandler is the failure of a job whose handler no process serving its queue has
// registered. It is not retried.
var ErrNoHandler error = &kindError{"NoHandlerError", "zasync: no handler registered"}
