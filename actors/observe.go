package actors

import (
	"time"

	"github.com/zasync/zasync/persistence"
)

// Observer hears what a node's actors do, for metrics. Observe is called synchronously by
// the actors and by the goroutines that run jobs, from many goroutines at once: it must be
// safe for concurrent use, return quickly, never block, and never call back into the node.
type Observer interface {
	Observe(Event)
}

// ObserverFunc is a function used as an Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// EventKind says what an Event reports.
type EventKind uint8

// The events a node reports. Each names the Event fields it sets.
const (
	// EventClaimed: an agent claimed N jobs in one transaction (Queue, Agent, N). System
	// jobs (interrupt recovery, callback resumption, timeouts) count as claimed jobs too.
	EventClaimed EventKind = iota + 1
	// EventSucceeded: a job's success was stored (Queue; Run and Wait when it started).
	// Jobs, callbacks and composites count; the system jobs zasync runs for itself do not.
	EventSucceeded
	// EventFailed: a job's failure was stored (Queue), counted as EventSucceeded is. A
	// failure the retry policy answers with another attempt is not stored: see EventRetried.
	EventFailed
	// EventRetried: a retry policy decided to run a job again, at once or later (Queue,
	// Reason).
	EventRetried
	// EventInterrupted: the recovery of an interrupted job began here: a handleInterrupt
	// job, queued when the job was found ACTIVE or in CALLBACKS in the agent of a dispatcher
	// that stopped or died, started to run (Queue). Each interruption is counted once, by
	// the process that recovers it.
	EventInterrupted
	// EventReassigned: a run of this node ended because its job was taken from it (a sibling
	// presumed this dispatcher dead): a fenced write was refused and the "was reassigned"
	// error was logged (Queue, Agent).
	EventReassigned
	// EventPolled: the dispatcher polled: it activated, pinged and described its agents in
	// every queue (Duration).
	EventPolled
)

var eventKindNames = [...]string{"", "claimed", "succeeded", "failed", "retried", "interrupted", "reassigned", "polled"}

// String names the kind, as in the constants' names: "claimed", "succeeded"…
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && k != 0 {
		return eventKindNames[k]
	}
	return "unknown"
}

// The reasons of EventRetried.
const (
	// RetryReasonError: the handler returned an error (or panicked) and its policy asked for
	// another attempt.
	RetryReasonError = "error"
	// RetryReasonCommit: storing the outcome failed and the policy asked to try the commit
	// again or to run the job again later.
	RetryReasonCommit = "commit"
	// RetryReasonInterrupt: the job was interrupted (its dispatcher stopped or died) and its
	// policy asked for another attempt.
	RetryReasonInterrupt = "interrupt"
)

// Event is one thing a node did. Kind says which fields are set.
type Event struct {
	Kind     EventKind
	Queue    string
	Agent    string
	N        int           // EventClaimed: how many jobs
	Reason   string        // EventRetried: RetryReasonError, RetryReasonCommit or RetryReasonInterrupt
	Duration time.Duration // EventPolled: how long the poll took
	// EventSucceeded and EventFailed, for a job that started: Run is how long its last
	// attempt ran (start to stored outcome), Wait how long it waited to start (from when it
	// was due: put, or its begin_after). Started says they are set.
	Run, Wait time.Duration
	Started   bool
}

// observe reports e to the node's observer, if it has one.
func (e *executor) observe(ev Event) {
	if e.obs != nil {
		e.obs.Observe(ev)
	}
}

// observeOutcome reports a stored outcome of j, unless j is one of the system jobs zasync
// runs for itself (their outcome is always null: counting them would blur what users' jobs
// do).
func (e *executor) observeOutcome(j *persistence.Job) {
	if internalJob(j) {
		return
	}
	kind := EventSucceeded
	if j.Failed() {
		kind = EventFailed
	}
	ev := Event{Kind: kind, Queue: j.Queue}
	if !j.ActiveStart.IsZero() && !j.ActiveEnd.IsZero() {
		due := j.Created
		if j.BeginAfter.After(due) {
			due = j.BeginAfter
		}
		ev.Run, ev.Wait, ev.Started = j.ActiveEnd.Sub(j.ActiveStart), max(0, j.ActiveStart.Sub(due)), true
	}
	e.observe(ev)
}

// observeRetry reports d if it runs j again: a retry in place, or a reschedule of a job held
// directly by an agent (the only jobs that can be rescheduled; for others the executor
// stores the failure instead).
func (e *executor) observeRetry(j *persistence.Job, d persistence.Decision, reason string) {
	if d.Action == persistence.ActionRetryNow || d.Action == persistence.ActionReschedule && !j.Holder.IsZero() {
		e.observe(Event{Kind: EventRetried, Queue: j.Queue, Reason: reason})
	}
}

// observeRun reports that a run of j begins; for a handleInterrupt job, that the recovery of
// an interrupted job begins.
func (e *executor) observeRun(j *persistence.Job) {
	if j.Call.Handler == persistence.HandlerHandleInterrupt {
		e.observe(Event{Kind: EventInterrupted, Queue: j.Queue})
	}
}

// observeEnding reports how a run of an agent ended, when that is worth counting: a run whose
// job was taken from it.
func (e *executor) observeEnding(queue, agent, ending string) {
	if ending == Reassigned.String() {
		e.observe(Event{Kind: EventReassigned, Queue: queue, Agent: agent})
	}
}

// observePoll reports a poll that began at start.
func (e *executor) observePoll(start time.Time) {
	e.observe(Event{Kind: EventPolled, Duration: time.Since(start)})
}

// internalJob tells the jobs zasync runs for itself: interrupt recovery, callback resumption,
// timeouts, resuming a job that waited for an inner one, and a composite's bookkeeping
// callbacks.
func internalJob(j *persistence.Job) bool {
	switch j.Call.Handler {
	case persistence.HandlerHandleInterrupt, persistence.HandlerResumeCallbacks, persistence.HandlerFail,
		persistence.HandlerResumeOuter, handlerCompositeNext:
		return true
	}
	return false
}
