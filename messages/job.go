package messages

import (
	"time"

	"github.com/zasync/zasync/persistence"
)

// JobFinished tells a job actor, from the goroutine that ran its job, that the run ended
// (however it ended); the job actor passes it on to its agent, whose slot is then free.
// Ending is the run's ending (finished, rescheduled, waiting, interrupted, reassigned,
// failed) as its name. Worker, Failed, Result and At are for the node's job history.
type JobFinished struct {
	ID     string
	Ending string
	Err    error
	// Worker names the run: its job actor's PID id (a job actor holds one job at a time). A
	// job reassigned and then claimed back by the same agent may have two runs at once.
	Worker string
	// Failed: the run stored a failure, or could not use the store.
	Failed bool
	// Result is the result (JSON) or failure text, cut at persistence.MaxFailureText.
	Result string
	// At is when the run ended.
	At time.Time
}

// TakeJob hands a job actor the job its agent claimed for it: the job actor runs it.
type TakeJob struct {
	Job *persistence.Job
}

// Revoked tells that job Ref was revoked (cancelled by an operator or a program) while a run
// may hold it: the store has stored it cancelled, and fenced the run out. The queue actor that
// hears it from the store passes it to the dispatchers serving the queue, each to its agents
// of the queue, and an agent to the job actor running the job, which cancels its handler's
// context with persistence.ErrCancelled as the cause.
type Revoked struct {
	Ref persistence.Ref
}
