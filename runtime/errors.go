package runtime

import (
	"fmt"

	"github.com/zasync/zasync/persistence"
)

// The errors a program checks, re-exported from persistence so that it imports this package
// only. They are the same values: errors.Is works with either name. Every error zasync
// returns wraps one of them (or is one of the typed errors below) with context.
var (
	// ErrInvalid reports bad input: an empty or reserved handler name, an argument that does
	// not marshal to JSON or does not decode into a handler's parameter, a name that would
	// break the key schema, an unknown retry policy. Nothing is written when it is returned,
	// and a handler error wrapping it is not retried by the built-in retry policies.
	ErrInvalid = persistence.ErrInvalid
	// ErrNotFound reports a job, quota or dispatcher that does not exist (a completed job
	// also disappears once its retention period is over).
	ErrNotFound = persistence.ErrNotFound
	// ErrBadStatus reports an operation the job's status forbids; *BadStatusError has the
	// details.
	ErrBadStatus = persistence.ErrBadStatus
	// ErrConflict reports an optimistic transaction that kept losing races with other
	// writers; retrying later may succeed.
	ErrConflict = persistence.ErrConflict
	// ErrReassigned reports a write by a process that no longer owns the job.
	ErrReassigned = persistence.ErrReassigned
	// ErrUnknownQuota reports a quota name the queue does not define.
	ErrUnknownQuota = persistence.ErrUnknownQuota
	// ErrNotInQueue reports a job that is not waiting in its queue.
	ErrNotInQueue = persistence.ErrNotInQueue
	// ErrUnavailable reports that Redis could not be reached.
	ErrUnavailable = persistence.ErrUnavailable
	// ErrAlreadyActivated reports a dispatcher UUID that is active in another process that
	// is still alive (two processes sharing a uuid.txt, for example).
	ErrAlreadyActivated = persistence.ErrAlreadyActivated
)

// Typed errors, re-exported from persistence.
type (
	// Failure is a job's error as stored: kind, message and stack. Outcome.Decode returns
	// it for a failed job; errors.Is(f, ErrConflict) and the like still hold for it.
	Failure = persistence.Failure
	// BadStatusError details ErrBadStatus.
	BadStatusError = persistence.BadStatusError
	// TimeoutError is the failure of a job not started before its BeginBy deadline.
	TimeoutError = persistence.TimeoutError
	// AbortedError is the failure of a job whose retry policy gave up after interruptions.
	AbortedError = persistence.AbortedError
)

// RegisterError registers a program's own sentinel error, so that it keeps its identity
// once stored: a job that failed with an error matching it (errors.Is) stores its name with
// the failure, and errors.Is(failure, err) holds when the failure is read back, in any
// process that registered err too. The name is err's text, so every process must register
// the same errors with the same texts; call it at start-up, next to Handle. Registering err
// again does nothing; nil, an error with an empty text, one that is not comparable (not a
// sentinel), another error with the same text, or more than persistence.MaxErrorKinds errors
// give ErrInvalid.
//
//	var ErrNoMailbox = errors.New("no such mailbox")
//	runtime.RegisterError(ErrNoMailbox)
//	…
//	out, _ := job.Wait(ctx)
//	errors.Is(out.Failure, ErrNoMailbox) // true when the handler returned it, wrapped or not
func RegisterError(err error) error { return persistence.RegisterError(err) }

// IsKind reports whether err is, or wraps, an error of the named kind ("TimeoutError",
// "AbortedError", …), also for a *Failure read back from storage, which keeps only the name.
func IsKind(err error, kind string) bool { return persistence.IsKind(err, kind) }

// invalidf returns an error wrapping ErrInvalid with a formatted explanation; %w verbs in
// format wrap their operands too.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
