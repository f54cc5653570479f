package actors

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// A job's run goes on a goroutine its agent hands it to (one of the node's runners, see
// runners.go), not an actor of its own: the run only needs a context to cancel (the agent
// keeps it) and a way to report its end (a message to the agent). An actor per job cost a
// spawn, four system messages and two mailbox goroutines per job: about a fifth of the CPU
// of a node running short jobs.

// errRunPanicked is the result of a run that panicked outside the handler (a bug: a handler's
// panic is the failure of its job).
var errRunPanicked = errors.New("the run panicked before it could report how it ended")

// runJob runs one claimed job to the end of what this process does with it, and reports the
// run's end with report. ctx is cancelled to interrupt the handler; cancel, called when the
// run ends, ends whatever the run left waiting on ctx. A run that panics is reported failed
// and logged; its job stays held and is recovered with its agent, as when the process dies.
func runJob(exec *executor, ctx context.Context, cancel context.CancelFunc, j *persistence.Job, run string, report func(*messages.JobFinished)) {
	r := Result{Ending: Failed, Job: j, Err: errRunPanicked}
	defer func() {
		cancel()
		if p := recover(); p != nil {
			exec.events.Error("a job's run panicked", "job", j.Ref.String(), "panic", p, "stack", string(debug.Stack()))
		}
		failed, text := runText(r)
		report(&messages.JobFinished{ID: j.ID, Ending: r.Ending.String(), Err: r.Err, Worker: run, Failed: failed, Result: text, At: time.Now()})
	}()
	r = exec.run(ctx, j)
}

// callHandler runs h in the caller's goroutine (the run's), turning a panic into a failure
// that carries its stack.
func callHandler(ctx context.Context, h Handler, call *persistence.Call) (value any, err error) {
	defer func() {
		if r := recover(); r != nil {
			value, err = nil, &stackError{err: &PanicError{Value: r}, stack: string(debug.Stack())}
		}
	}()
	return h(ctx, call)
}
