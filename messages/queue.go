package messages

import (
	"encoding/json"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/persistence"
)

// Put asks a queue actor to put jobs into its queue: all of Specs or none. The queue actor
// answers the sender with PutDone (send Put with Request, so that it knows whom to answer).
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
// put's.
type PutDone struct {
	Jobs []persistence.Ref
	Err  error
	Tag  string
}

// JobCompleted tells the PID a Put named in Notify that one of its jobs completed (its
// result or failure stored and its callbacks run), with the outcome: Result (JSON) when the
// job succeeded, Failure when it failed. Err is set instead when the outcome could not be
// read (the job had expired, say).
type JobCompleted struct {
	Job     persistence.Ref
	Status  persistence.Status
	Result  json.RawMessage
	Failure *persistence.Failure
	Err     error
}

// Serve tells a queue actor that Dispatcher serves its queue: the queue actor listens for the
// store's wake-ups while at least one dispatcher serves the queue, and sends each of them a
// Wake when a job is put. A dispatcher sends it when it starts and again at every poll, so
// that a queue actor that restarted, or whose listening failed, hears of it again; a
// dispatcher that stops is forgotten (the queue actor watches it).
type Serve struct {
	Dispatcher *actor.PID
}
