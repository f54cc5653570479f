package messages

import (
	"encoding/json"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/persistence"
)

// Put asks a queue actor to put jobs into its queue: all of Specs or none. The queue actor
// answers the sender with PutDone (send Put with Request, so that it knows whom to answer).
// A program builds it with runtime's Queue.PutMessage and sends it to the PID of Queue.PID.
// Puts that reach the queue actor while its last store call is on its way are made together
// in its next one, each refused or made on its own. A Put is read by the queue actor after it
// is sent: it is not for the sender to change or to send again.
type Put struct {
	// Specs are the jobs to put, in the queue's order.
	Specs []persistence.JobSpec
	// Notify, if not nil, is sent a JobCompleted for each job when it completes.
	Notify *actor.PID
	// Tag is the sender's own: PutDone carries it back, so that a sender with several puts
	// on their way tells their answers apart.
	Tag string
}

// PutDone answers Put: the jobs put, in the order of Put.Specs, or why none was; Tag is the
// put's. The answers to one sender's puts come in the order it sent them.
type PutDone struct {
	// Jobs are the refs of the jobs put, in the order of Put.Specs; nil when Err is set. A
	// program converts one to runtime's Ref with runtime.Ref(done.Jobs[0]).
	Jobs []persistence.Ref
	// Err says why nothing was put: bad input (ErrInvalid, an unknown quota), the store
	// unreachable, or the runtime closed before the put was sent (runtime.ErrClosed).
	// errors.Is and errors.As check it with runtime's errors and types.
	Err error
	// Tag is Put.Tag.
	Tag string
}

// JobCompleted tells the PID a Put named in Notify that one of its jobs completed (its
// result or failure stored and its callbacks run), with the outcome: Result (JSON) when the
// job succeeded, Failure when it failed. Err is set instead when the outcome could not be
// read (the job had expired, say).
type JobCompleted struct {
	// Job is the job's ref (runtime.Ref(m.Job) converts it).
	Job persistence.Ref
	// Status is the job's status, persistence.StatusCompleted, when the outcome was read; zero
	// with Err.
	Status persistence.Status
	// Result is the job's result as JSON, when it succeeded.
	Result json.RawMessage
	// Failure is the job's failure, when it failed; errors.Is and errors.As check it as they
	// check a *runtime.Failure (errors.As(m.Failure, &f) with f a *runtime.Failure fills f).
	Failure *persistence.Failure
	// Err says why the outcome could not be read (the job had expired, say).
	Err error
}

// Serve tells a queue actor that Dispatcher serves its queue: the queue actor listens for the
// store's wake-ups while at least one dispatcher serves the queue, and sends each of them a
// Wake when a job is put. A dispatcher sends it when it starts and again at every poll, so
// that a queue actor that restarted, or whose listening failed, hears of it again; a
// dispatcher that stops is forgotten (the queue actor watches it).
type Serve struct {
	Dispatcher *actor.PID
}
