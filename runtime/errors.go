package runtime

import (
	"fmt"
	"time"

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
	// ErrCorrupt reports a stored record that cannot be read back: a bug, or a key written
	// by something other than zasync. *CorruptError has the details.
	ErrCorrupt = persistence.ErrCorrupt
)

// Failure is a job's error as stored: its kind, its message and the stack where it happened,
// as plain text (nothing live is kept). Outcome.Decode returns it for a failed job, a typed
// Wait returns it as its error, and callbacks and postprocesses receive it in their Result
// or SubJob. errors.Is(f, ErrConflict), errors.Is(f, ErrCancelled), a registered error
// (RegisterError) and a typed error of the same kind (&TimeoutError{}) still match it once
// it has been read back from storage, by kind name. A handler that returns a Failure it
// received (an inner job's, say) fails its own job with that same failure.
type Failure struct {
	// Type is the error's kind, e.g. "TimeoutError", "CancelledError" or "strconv.NumError".
	Type string `json:"type"`
	// Message is the error's text, at most 10,000 characters (then "\n[...TRUNCATED...]"
	// is appended).
	Message string `json:"message"`
	// Stack is where it happened, if known, cut as Message is.
	Stack string `json:"stack,omitempty"`
	// Kinds are the names of the registered errors (RegisterError) the error matched with
	// errors.Is when it was stored, so that errors.Is still matches them once read back.
	Kinds []string `json:"kinds,omitempty"`
}

// Error renders the failure as "Type: Message".
func (f *Failure) Error() string { return f.stored().Error() }

// FailureType reports the failure's kind, so that a failure passed on wrapped keeps it.
func (f *Failure) FailureType() string { return f.Type }

// Is matches the sentinels and typed errors of the failure's kind and the registered errors
// it matched when it was stored. A nil *Failure (a job that succeeded) matches nothing.
func (f *Failure) Is(target error) bool { return f.stored().Is(target) }

// As fills a *persistence.Failure target, the same failure as the store's packages see it.
func (f *Failure) As(target any) bool {
	if t, ok := target.(**persistence.Failure); ok {
		*t = f.stored()
		return true
	}
	return false
}

// stored returns f as the store's packages keep it; the same memory.
func (f *Failure) stored() *persistence.Failure { return (*persistence.Failure)(f) }

// failureFrom returns a stored failure as a *Failure, nil for nil; the same memory.
func failureFrom(f *persistence.Failure) *Failure { return (*Failure)(f) }

// BadStatusError details ErrBadStatus: an operation attempted in a status that forbids it.
// It matches ErrBadStatus.
type BadStatusError struct {
	// Op is what was attempted, e.g. "set begin_after".
	Op string
	// Status is the job's status at the time.
	Status Status
	// Allowed are the statuses in which Op is allowed.
	Allowed []Status
}

// Error says what was attempted, in which status, and where it is allowed.
func (e *BadStatusError) Error() string { return e.stored().Error() }

// Is makes errors.Is(err, ErrBadStatus) true.
func (e *BadStatusError) Is(target error) bool { return target == ErrBadStatus }

// FailureType reports the kind stored in a Failure made from this error: "BadStatusError".
func (e *BadStatusError) FailureType() string { return "BadStatusError" }

// As fills a *persistence.BadStatusError target with a copy of e.
func (e *BadStatusError) As(target any) bool {
	if t, ok := target.(**persistence.BadStatusError); ok {
		*t = e.stored()
		return true
	}
	return false
}

// stored returns a copy of e as the store's packages make it.
func (e *BadStatusError) stored() *persistence.BadStatusError {
	allowed := make([]persistence.Status, len(e.Allowed))
	for i, s := range e.Allowed {
		allowed[i] = persistence.Status(s)
	}
	return &persistence.BadStatusError{Op: e.Op, Status: persistence.Status(e.Status), Allowed: allowed}
}

// badStatusFrom returns a copy of e.
func badStatusFrom(e *persistence.BadStatusError) *BadStatusError {
	allowed := make([]Status, len(e.Allowed))
	for i, s := range e.Allowed {
		allowed[i] = Status(s)
	}
	return &BadStatusError{Op: e.Op, Status: Status(e.Status), Allowed: allowed}
}

// TimeoutError is the failure of a job that was not started before its BeginBy deadline, or
// whose run took longer than its run timeout (Run). Read back from storage it is a *Failure
// of Type "TimeoutError", which errors.Is(f, &TimeoutError{}) and IsKind match.
type TimeoutError struct {
	// BeginAfter is when the job became due, BeginBy how long after it the job had to start.
	BeginAfter time.Time
	BeginBy    time.Duration
	// Run, Limit: the job's run took longer than its run timeout, Limit (the Timeout option).
	Run   bool
	Limit time.Duration
}

// Error says which deadline passed.
func (e *TimeoutError) Error() string { return e.stored().Error() }

// FailureType reports the kind stored in a Failure made from this error: "TimeoutError".
func (e *TimeoutError) FailureType() string { return "TimeoutError" }

// As fills a *persistence.TimeoutError target; the same memory.
func (e *TimeoutError) As(target any) bool {
	if t, ok := target.(**persistence.TimeoutError); ok {
		*t = e.stored()
		return true
	}
	return false
}

// stored returns e as the store's packages make it; the same memory.
func (e *TimeoutError) stored() *persistence.TimeoutError { return (*persistence.TimeoutError)(e) }

// AbortedError is the failure of a job whose retry policy gave up after interruptions. Read
// back from storage it is a *Failure of Type "AbortedError".
type AbortedError struct {
	// Interruptions is how many times the job had been interrupted.
	Interruptions int
}

// Error says how many interruptions the job had.
func (e *AbortedError) Error() string { return e.stored().Error() }

// FailureType reports the kind stored in a Failure made from this error: "AbortedError".
func (e *AbortedError) FailureType() string { return "AbortedError" }

// As fills a *persistence.AbortedError target; the same memory.
func (e *AbortedError) As(target any) bool {
	if t, ok := target.(**persistence.AbortedError); ok {
		*t = e.stored()
		return true
	}
	return false
}

// stored returns e as the store's packages make it; the same memory.
func (e *AbortedError) stored() *persistence.AbortedError { return (*persistence.AbortedError)(e) }

// CorruptError reports a stored job record some of whose fields cannot be read back (a record
// written by something other than zasync, or by a version that stored what this one cannot
// read). It matches ErrCorrupt. Such a job is listed by the queries, its record's Corrupt
// says which fields are missing, and the first claim of it fails it with this error.
type CorruptError struct {
	// Ref is the job.
	Ref Ref
	// Fields are the fields that could not be read, as the store names them.
	Fields []string
	// Err is why the first of them could not.
	Err error
}

// Error names the job and its unreadable fields.
func (e *CorruptError) Error() string { return e.stored().Error() }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// FailureType reports the kind stored in a Failure made from this error: "CorruptRecordError".
func (e *CorruptError) FailureType() string { return "CorruptRecordError" }

// As fills a *persistence.CorruptError target with a copy of e.
func (e *CorruptError) As(target any) bool {
	if t, ok := target.(**persistence.CorruptError); ok {
		*t = e.stored()
		return true
	}
	return false
}

// stored returns a copy of e as the store's packages make it.
func (e *CorruptError) stored() *persistence.CorruptError {
	return &persistence.CorruptError{Ref: persistence.Ref(e.Ref), Fields: e.Fields, Err: e.Err}
}

// corruptFrom returns a copy of e, nil for nil.
func corruptFrom(e *persistence.CorruptError) *CorruptError {
	if e == nil {
		return nil
	}
	return &CorruptError{Ref: Ref(e.Ref), Fields: e.Fields, Err: e.Err}
}

// The store's packages make and return their own error types, which this package's stand for:
// errors.As finds one of those as the type of this package that its target asks for, however
// deep in an error chain, and this package's types fill the store's targets (their As
// methods). So a program checks errors with this package's types only, whatever made them.
func init() { persistence.SetAs(asRuntime) }

// asRuntime fills target, a pointer to one of this package's error types, from err, the
// store's error of the same meaning (see persistence.SetAs).
func asRuntime(err error, target any) bool {
	switch e := err.(type) {
	case *persistence.Failure:
		if t, ok := target.(**Failure); ok && e != nil {
			*t = failureFrom(e)
			return true
		}
	case *persistence.BadStatusError:
		if t, ok := target.(**BadStatusError); ok && e != nil {
			*t = badStatusFrom(e)
			return true
		}
	case *persistence.TimeoutError:
		if t, ok := target.(**TimeoutError); ok && e != nil {
			*t = (*TimeoutError)(e)
			return true
		}
	case *persistence.AbortedError:
		if t, ok := target.(**AbortedError); ok && e != nil {
			*t = (*AbortedError)(e)
			return true
		}
	case *persistence.CorruptError:
		if t, ok := target.(**CorruptError); ok && e != nil {
			*t = corruptFrom(e)
			return true
		}
	}
	return false
}

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
