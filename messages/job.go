package messages

import "time"

// JobFinished tells an agent that one of its jobs' run ended (however it ended): its slot is
// free. Ending is the run's ending (finished, rescheduled, waiting, interrupted, reassigned,
// failed) as its name. Worker, Failed, Result and At are for the node's job history.
type JobFinished struct {
	ID     string
	Ending string
	Err    error
	// Worker names the run: a job reassigned and then claimed back by the same agent may
	// have two runs at once.
	Worker string
	// Failed: the run stored a failure, or could not use the store.
	Failed bool
	// Result is the result (JSON) or failure text, cut at persistence.MaxFailureText.
	Result string
	// At is when the run ended.
	At time.Time
}
