package messages

// JobFinished tells an agent that one of its jobs' run ended (however it ended): its slot is
// free. Ending is the run's ending (finished, rescheduled, waiting, interrupted, reassigned,
// failed) as its name.
type JobFinished struct {
	ID     string
	Ending string
	Err    error
}

// CancelJob asks a job actor to cancel its handler's context.
type CancelJob struct{}
