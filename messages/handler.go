package messages

import (
	"encoding/json"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/persistence"
)

// The runs of a handler that is an actor (runtime.HandleActor). Each run has an actor of its
// own, made from the program's props below the handler's host actor, and a reply address,
// which is not an actor: the goroutine that runs the job waits on it. The run's goroutine
// asks the host for the actor (StartRun, answered RunStarted or RunFailed), sends it RunJob
// with the reply address as sender, and waits for JobReply; when the run ends it tells the
// host (EndRun), which stops the actor. An interrupted run sends CancelJob first.

// RunJob is a run of a job, sent to the actor made for that run alone. Its sender is the
// run's reply address: answer with c.Respond(&JobReply{…}) while handling it, or keep
// c.Sender() and send the JobReply there later (from the actor's own goroutine or any other).
type RunJob struct {
	Ref     persistence.Ref
	Attempt int64 // the job's attempt: a job run again after an interruption has a higher one
	Handler string
	Args    []json.RawMessage          // the call's positional arguments, as JSON
	Kwargs  map[string]json.RawMessage // the call's keyword arguments, as JSON
}

// JobReply ends a run. Err, if set, is the run's error, which the job's retry policy answers
// as a handler's; otherwise Value is the job's result: any value that marshals to JSON, or a
// json.RawMessage stored as it is.
type JobReply struct {
	Value any
	Err   error
}

// CancelJob tells a run's actor that its run was interrupted (a clean stop): the run has
// already ended as a handler that returns its context's error does, and a JobReply sent
// after this is dropped. The actor is stopped right after it has handled this message.
type CancelJob struct {
	Ref     persistence.Ref
	Attempt int64
}

// StartRun asks a handler's host actor to make the actor of a run, for the goroutine that
// runs the job. The host answers at ReplyTo with RunStarted or RunFailed.
type StartRun struct {
	Run     *RunJob
	ReplyTo *actor.PID
}

// RunStarted gives the run's goroutine the actor made for its run.
type RunStarted struct {
	Actor *actor.PID
}

// RunFailed ends a run that its actor could not finish: the props' producer or the actor
// panicked (Err is a *PanicError of package actors), the actor stopped without replying, or
// the host itself stopped.
type RunFailed struct {
	Err error
}

// EndRun tells a handler's host that the run whose reply address is ReplyTo is over: the
// host stops its actor.
type EndRun struct {
	ReplyTo *actor.PID
}
