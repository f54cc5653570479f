package persistence

import (
	"fmt"
	"slices"
)

// Status is where a job stands in its life. The flow is
// NEW → PENDING → ASSIGNED → ACTIVE → CALLBACKS → COMPLETED, and a job never leaves COMPLETED.
// A rescheduled or interrupted job goes from ASSIGNED or ACTIVE back to PENDING; a pulled or
// removed one goes from PENDING back to NEW.
type Status uint8

// The statuses, in the order of a job's life.
const (
	StatusNew       Status = iota // created, in no queue (a callback not yet run, a pulled job)
	StatusPending                 // waiting in a queue
	StatusAssigned                // claimed by an agent, not started
	StatusActive                  // its handler is running, or it waits on an inner job
	StatusCallbacks               // its result is stored; its callbacks are running
	StatusCompleted               // result stored and every callback done; final
)

var statusNames = [...]string{"new", "pending", "assigned", "active", "callbacks", "completed"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// ParseStatus turns a name written by String back into a Status.
func ParseStatus(name string) (Status, error) {
	if i := slices.Index(statusNames[:], name); i >= 0 {
		return Status(i), nil
	}
	return 0, invalidf("unknown status %q", name)
}

// Statuses in which each mutable part of a job may change, as in zc.async. Outside them the
// change fails with a *BadStatusError.
var (
	// CallMutable: the call (handler and arguments) and begin_after.
	CallMutable = []Status{StatusNew}
	// ScheduleMutable: begin_by and quota names.
	ScheduleMutable = []Status{StatusNew, StatusPending}
	// Runnable: a job may be started only from these.
	Runnable = []Status{StatusNew, StatusAssigned}
	// Failable: Fail may complete a job with a failure only from these (and, to resume
	// callbacks after an interruption, from CALLBACKS, where the result is left unchanged).
	Failable = []Status{StatusNew, StatusPending, StatusAssigned}
	// Revocable: Revoke may cancel a job only from these: its run has not stored an outcome.
	Revocable = []Status{StatusNew, StatusPending, StatusAssigned, StatusActive}
	// Deletable: Delete may remove a job only in these: nothing runs it.
	Deletable = []Status{StatusNew, StatusPending, StatusCompleted}
)

// CheckStatus returns a *BadStatusError when s is not one of allowed.
func CheckStatus(op string, s Status, allowed ...Status) error {
	if slices.Contains(allowed, s) {
		return nil
	}
	return &BadStatusError{Op: op, Status: s, Allowed: allowed}
}
