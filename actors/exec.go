package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/zasync/zasync/persistence"
)

// reassignedMessage is logged (ERROR) when a run finds its job taken away; the words are
// zc.async's, which operators know.
const reassignedMessage = "was reassigned.  Likely cause was that polling was unable to occur as regularly as expected, perhaps because of long commit times in the application."

// PanicError is the failure of a handler that panicked.
type PanicError struct {
	Value any // what was passed to panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// FailureType reports the name stored in a Failure made from this error.
func (e *PanicError) FailureType() string { return "PanicError" }

// Ending says how a run of a job ended, for its agent and for introspection.
type Ending uint8

const (
	// Finished: the job's outcome is committed and it is COMPLETED (or its callbacks are
	// done as far as this run goes).
	Finished Ending = iota
	// Rescheduled: the retry policy put the job back in its queue.
	Rescheduled
	// Waiting: the job waits, parked, for an inner job; the inner job's completion resumes it.
	Waiting
	// Interrupted: the run was cancelled (clean shutdown) before its outcome was committed;
	// the job stays ACTIVE for the dispatcher's cleaning to hand to a handleInterrupt job.
	Interrupted
	// Reassigned: the job was taken from this run; nothing was written.
	Reassigned
	// Failed: the store could not be used (the job is left for recovery).
	Failed
	// Cancelled: the job was revoked (persistence.Store.Revoke) while this run held it: the
	// run stopped, and wrote nothing after the revoke.
	Cancelled
)

var endingNames = [...]string{"finished", "rescheduled", "waiting", "interrupted", "reassigned", "failed", "cancelled"}

func (e Ending) String() string { return endingNames[e] }

// Result is how one run went.
type Result struct {
	Ending Ending
	Job    *persistence.Job // the job as last written or read; nil if it could not be read
	Err    error            // for Failed and Reassigned
}

// executor runs jobs through their lives over the store: start, the handler and its retry
// policy, the fenced commit, the callbacks one after another, completion; and the system jobs
// that recover interrupted ones. It keeps no state between runs and is safe for concurrent
// use. Store calls get their own deadline from base, not from the job's context: cancelling
// a handler must not cancel the commit of an outcome it already produced.
type executor struct {
	store     persistence.Store
	handlers  Handlers
	policies  *persistence.RetryPolicies
	events    *slog.Logger // lifecycle, failures, reassignments (zc.async.events)
	trace     *slog.Logger // successes and retries (zc.async.trace)
	base      context.Context
	opTimeout time.Duration
	commits   *committer // batches the commits of concurrent runs
	runners   *runners   // the goroutines runs go on
	obs       Observer   // hears events for metrics; nil: none
	logArgs   bool       // Options.LogArguments
	onCommit  func(context.Context, *persistence.Job) func(error)
	grace     time.Duration // how long a handler past its run timeout is waited for
}

func newExecutor(base context.Context, o Options) *executor {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &executor{
		store: o.Store, handlers: o.Handlers, policies: o.Policies,
		events: eventsLogger(log), trace: log.With("logger", "zasync.trace"),
		base: base, opTimeout: 30 * time.Second,
		obs: o.Observer, runners: newRunners(base), logArgs: o.LogArguments, onCommit: o.OnCommit, grace: o.ShutdownGrace,
	}
	return e
}

// op returns a context for one store call.
func (e *executor) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.base, e.opTimeout)
}

// repr names a job in a log message, as zc.async's repr did: its ref and its call, whose
// arguments only with Options.LogArguments (else its handler alone).
func (e *executor) repr(j *persistence.Job) string {
	if e.logArgs {
		return fmt.Sprintf("<zasync.Job %s %s>", j.Ref, j.Call.String())
	}
	return fmt.Sprintf("<zasync.Job %s %s>", j.Ref, j.Call.Handler)
}

// jobAttrs are the attributes of every log record about j: which job, queue, handler,
// attempt and dispatcher (and agent), and whether it is one of zasync's own steps.
func jobAttrs(j *persistence.Job, more ...any) []any {
	a := make([]any, 0, 14+len(more))
	a = append(a, "job", j.Ref.String(), "queue", j.Queue, "handler", j.Call.Handler, "attempt", j.Attempt)
	if !j.Owner.IsZero() {
		a = append(a, "dispatcher", j.Owner.Dispatcher, "agent", j.Owner.Agent)
	}
	if internalStep(j) {
		a = append(a, "system", true)
	}
	return append(a, more...)
}

// internalStep reports whether j is one of zasync's own steps (a recovery, a composite's next
// step), not a job a program put: composites are a program's, though zasync runs them.
func internalStep(j *persistence.Job) bool {
	return j.Call.IsSystem() && j.Call.Handler != HandlerSerial && j.Call.Handler != HandlerParallel
}

// run runs a job claimed by an agent (or adopted), to the end of what this process does with
// it. ctx is cancelled to interrupt the handler.
func (e *executor) run(ctx context.Context, j *persistence.Job) Result {
	if j.Corrupt != nil {
		return e.failCorrupt(ctx, j)
	}
	switch j.Call.Handler {
	case persistence.HandlerHandleInterrupt, persistence.HandlerResumeCallbacks, persistence.HandlerFail:
		e.observeRun(j)
		return e.system(ctx, j)
	}
	if j.Parent == "" {
		return e.execute(ctx, j, nil)
	}
	// A callback that was queued (added after its parent completed): run it as its parent's
	// callback.
	var parent *persistence.Job
	if err := e.persist("read the parent of a callback", func(ctx context.Context) (err error) {
		parent, err = e.store.Get(ctx, j.Ref.In(j.Parent))
		return err
	}); err != nil {
		return e.storeFailure(ctx, j, err)
	}
	return e.callback(ctx, j, parent)
}

// failCorrupt fails a job whose record could not be read whole (persistence.Job.Corrupt):
// nothing can run it, and its failure, committed by the run that holds it, frees its slot at
// once and lets its callbacks and its waiters go on.
func (e *executor) failCorrupt(ctx context.Context, j *persistence.Job) Result {
	e.events.Error("the job's record cannot be read; the job fails", "job", j.Ref.String(), "error", j.Corrupt)
	failure := persistence.NewFailure(j.Corrupt, "")
	if j.Status != persistence.StatusActive {
		started, err := e.start(j)
		if err != nil {
			return e.storeFailure(ctx, j, err)
		}
		j = started
	}
	return e.commit(ctx, j, e.policy(j), persistence.Outcome{Failure: failure, Complete: true})
}

// execute runs one job of fence j.Fence(): a queued job, or a callback (parent set) adopted
// by its parent's run. It starts the job unless it is already ACTIVE (an interrupted callback
// run again), runs the handler under the retry policy, commits the outcome, and runs the
// callbacks.
func (e *executor) execute(ctx context.Context, j *persistence.Job, parent *persistence.Job) Result {
	if j.Status != persistence.StatusActive {
		started, err := e.start(j)
		if err != nil {
			return e.storeFailure(ctx, j, err)
		}
		j = started
	}
	policy := e.policy(j)
	counts := maps.Clone(j.Retry) // nil until a policy counts something: most runs count nothing
	call, passThrough := callOf(j, parent)
	var out persistence.Outcome
	if passThrough {
		out = outcomeOf(parent)
	} else {
		for {
			value, err := e.invoke(ctx, j, call, parent)
			if err == nil {
				if inner, ok := value.(*Inner); ok {
					return e.wait(ctx, j, inner)
				}
				if out, err = resultOutcome(value); err == nil {
					break
				}
			}
			if ctx.Err() != nil {
				return stopped(ctx, j)
			}
			if counts == nil {
				counts = persistence.RetryCounts{}
			}
			d := e.decide(j, policy.JobError(err, counts), err)
			if d.Action == persistence.ActionReschedule && j.Holder.IsZero() {
				e.events.Log(context.Background(), persistence.LevelCritical, "can only reschedule a job directly in an agent: "+e.repr(j), jobAttrs(j)...)
				d = persistence.Stop()
			}
			e.observeRetry(j, d, RetryReasonError)
			switch d.Action {
			case persistence.ActionRetryNow:
				if err := e.saveRetry(j, counts); err != nil {
					return e.storeFailure(ctx, j, err)
				}
				if !sleep(ctx, d.Delay) {
					return stopped(ctx, j)
				}
				continue
			case persistence.ActionReschedule:
				return e.reschedule(ctx, j, d, counts)
			}
			out = persistence.Outcome{Failure: failureOf(err)}
			break
		}
	}
	out.Retry, out.Complete = counts, true
	return e.commit(ctx, j, policy, out)
}

// start moves j to ACTIVE; a job its agent started with its claim batch is ACTIVE already.
func (e *executor) start(j *persistence.Job) (started *persistence.Job, err error) {
	if j.Status == persistence.StatusActive {
		return j, nil
	}
	err = e.persist("start", func(ctx context.Context) error {
		started, err = e.store.Start(ctx, j.Fence())
		return err
	})
	return started, err
}

// persist runs one store call of a run, retrying it while the store is unreachable or the
// call keeps losing races, with a growing pause (zc.async's never_fail): a Redis restart must
// not end a run half way and leave its job held. Other errors (reassigned, bad status, not
// found) return at once; so does everything once the node stops.
func (e *executor) persist(what string, call func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		ctx, cancel := e.op()
		err := call(ctx)
		cancel()
		if err == nil || !(errors.Is(err, persistence.ErrUnavailable) || errors.Is(err, persistence.ErrConflict)) {
			return err
		}
		if attempt == 1 || attempt%10 == 0 {
			e.events.Log(context.Background(), persistence.LevelCritical, "frequent database errors!  I retry forever...",
				"doing", what, "attempt", attempt, "error", err)
		}
		if !sleep(e.base, retryPause(attempt)) {
			return err
		}
	}
}

// storeNow is the store's time, the one clock deadlines are judged by; the local clock if
// the store does not answer (this is only on the way to a retry decision).
func (e *executor) storeNow() time.Time {
	ctx, cancel := e.op()
	defer cancel()
	if now, err := e.store.Now(ctx); err == nil {
		return now
	}
	return time.Now()
}

// retryPause is the pause before attempt+1 of a store call: 50 ms doubling up to 5 s.
func retryPause(attempt int) time.Duration {
	return min(5*time.Second, 50*time.Millisecond<<min(attempt-1, 7))
}

// callOf returns the call a job runs: for a callback, its chosen side with the parent's
// outcome after its own arguments. passThrough means a success/failure pair with no side for this
// outcome: the callback takes the parent's outcome unchanged.
func callOf(j, parent *persistence.Job) (call persistence.Call, passThrough bool) {
	call = j.Call
	if parent == nil {
		return call, false
	}
	if j.Choice != nil {
		side := j.Choice.Success
		if parent.Failed() {
			side = j.Choice.Failure
		}
		if side == nil {
			return call, true
		}
		call = *side
	}
	first := parent.Result
	if parent.Failed() {
		first, _ = json.Marshal(parent.Failure)
	}
	call.Args = append(slices.Clone(call.Args), first)
	return call, false
}

// outcomeOf is a completed job's outcome, as an Outcome to store again.
func outcomeOf(j *persistence.Job) persistence.Outcome {
	if j.Failed() {
		return persistence.Outcome{Failure: j.Failure}
	}
	return persistence.Outcome{Result: j.Result}
}

// resultOutcome encodes a handler's result.
func resultOutcome(v any) (persistence.Outcome, error) {
	if v == nil { // what json.Marshal(nil) gives, without it
		return persistence.Outcome{Result: json.RawMessage("null")}, nil
	}
	if raw, ok := v.(json.RawMessage); ok && json.Valid(raw) {
		return persistence.Outcome{Result: raw}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return persistence.Outcome{}, fmt.Errorf("%w: the handler's result does not encode to JSON: %w", persistence.ErrInvalid, err)
	}
	return persistence.Outcome{Result: b}, nil
}

// invoke runs the handler of call in its own goroutine, turning a panic into a failure.
func (e *executor) invoke(ctx context.Context, j *persistence.Job, call persistence.Call, parent *persistence.Job) (value any, err error) {
	h, ok := e.builtin(call.Handler)
	if ok {
		var cancel context.CancelFunc
		ctx, cancel = e.bookkeeping(ctx)
		defer cancel()
	} else {
		h, ok = e.handlers.Handler(call.Handler)
	}
	if !ok {
		return nil, fmt.Errorf("%w for %q", persistence.ErrNoHandler, call.Handler)
	}
	ctx = WithRunning(ctx, &Running{Job: j, Parent: parent, Store: e.store})
	if j.Timeout > 0 && !j.Call.IsSystem() {
		return e.invokeTimed(ctx, j, h, &call)
	}
	return callHandler(ctx, h, &call)
}

// invokeTimed runs a handler under its job's run timeout: its context ends at the timeout, and
// a run that has not returned by then fails with a TimeoutError. A handler that ignores its
// context is waited for the grace (Options.ShutdownGrace) more, then abandoned: the run goes on
// without it (its failure through the retry policy, its slot freed), and what it returns later
// is dropped; its goroutine ends when it returns.
func (e *executor) invokeTimed(ctx context.Context, j *persistence.Job, h Handler, call *persistence.Call) (any, error) {
	timedOut := &persistence.TimeoutError{Run: true, Limit: j.Timeout}
	ctx, cancel := context.WithTimeoutCause(ctx, j.Timeout, timedOut)
	defer cancel()
	type result struct {
		value any
		err   error
	}
	done := make(chan result, 1)
	go func() {
		v, err := callHandler(ctx, h, call)
		done <- result{v, err}
	}()
	abandon := time.NewTimer(j.Timeout + e.grace)
	defer abandon.Stop()
	select {
	case r := <-done:
		if r.err != nil && errors.Is(context.Cause(ctx), timedOut) {
			return nil, timedOut // it gave up because of the timeout: that is its failure
		}
		return r.value, r.err
	case <-abandon.C:
		e.events.Warn(fmt.Sprintf("%s ignored its run timeout of %s and was abandoned after %s more; what it returns is dropped",
			e.repr(j), j.Timeout, e.grace), jobAttrs(j)...)
		return nil, timedOut
	}
}

// stackError carries the stack of a panic to the failure.
type stackError struct {
	err   error
	stack string
}

func (e *stackError) Error() string { return e.err.Error() }
func (e *stackError) Unwrap() error { return e.err }

// failureOf stores err as a failure, with the stack of a panic when there was one.
func failureOf(err error) *persistence.Failure {
	var se *stackError
	if errors.As(err, &se) {
		return persistence.NewFailure(se.err, se.stack)
	}
	return persistence.NewFailure(err, "")
}

// decide applies the deadline rule to a policy's decision and logs a retry the first time
// and every fifth.
func (e *executor) decide(j *persistence.Job, d persistence.Decision, err error) persistence.Decision {
	d = persistence.PastDeadline(d, j, e.storeNow())
	if d.Retries() && d.Counter != "" && d.ShouldLog() {
		level := slog.LevelWarn
		if d.Alert {
			level = persistence.LevelCritical
		}
		e.trace.Log(context.Background(), level, fmt.Sprintf("Retry policy for job %s requests another attempt after %d counts of %s occurrences",
			e.repr(j), d.Count, d.Counter), jobAttrs(j, "decision", d.String(), "error", err)...)
	} else if !d.Retries() && d.Counter != "" {
		e.trace.Warn(fmt.Sprintf("Retry policy for job %s is not retrying after %d counts of %s occurrences", e.repr(j), d.Count, d.Counter), jobAttrs(j, "error", err)...)
	}
	return d
}

// policy returns j's retry policy; an unknown name (registered in another process only)
// falls back to the default, with an error logged.
func (e *executor) policy(j *persistence.Job) persistence.RetryPolicy {
	p, err := e.policies.Lookup(j.RetryPolicy)
	if err != nil {
		e.events.Error("unknown retry policy; using the default: "+e.repr(j), jobAttrs(j, "policy", j.RetryPolicy)...)
		return persistence.RetryCommonFourTimes
	}
	return p
}

// saveRetry stores the counters of j's run, and keeps them in j: the run's commit hands the
// store j as the run knows it, its own writes included (persistence.Commit.Known).
func (e *executor) saveRetry(j *persistence.Job, counts persistence.RetryCounts) error {
	err := e.persist("save retry counters", func(ctx context.Context) error {
		return e.store.SaveRetry(ctx, j.Fence(), counts)
	})
	if err == nil {
		j.Retry = maps.Clone(counts)
	}
	return err
}

// reschedule puts j back in its queue as d says.
func (e *executor) reschedule(ctx context.Context, j *persistence.Job, d persistence.Decision, counts persistence.RetryCounts) Result {
	var r *persistence.Job
	err := e.persist("reschedule", func(ctx context.Context) error {
		now, err := e.store.Now(ctx)
		if err != nil {
			return err
		}
		at, _ := d.When(now)
		r, err = e.store.Reschedule(ctx, j.Fence(), at, counts)
		return err
	})
	if err != nil {
		return e.storeFailure(ctx, j, err)
	}
	return Result{Ending: Rescheduled, Job: r}
}

// commit stores out for j: a commit that fails is answered by the retry policy (retry the
// commit, reschedule the job, or store the commit's own error as the outcome, which is then
// retried until it is stored); a reassigned job is dropped. Then the callbacks run.
func (e *executor) commit(ctx context.Context, j *persistence.Job, policy persistence.RetryPolicy, out persistence.Outcome) Result {
	counts := out.Retry
	succeeded := out.Failure == nil
	for attempt := 1; ; attempt++ {
		var end func(error)
		if e.onCommit != nil {
			end = e.onCommit(ctx, j)
		}
		done, err := e.commits.commit(j, out)
		if end != nil {
			end(err)
		}
		if err == nil {
			e.logOutcome(done)
			if done.Status == persistence.StatusCallbacks {
				return e.finishCallbacks(ctx, done)
			}
			return Result{Ending: Finished, Job: done}
		}
		if errors.Is(err, persistence.ErrReassigned) || errors.Is(err, persistence.ErrNotFound) {
			return e.reassigned(ctx, j, err)
		}
		if e.base.Err() != nil {
			return Result{Ending: Failed, Job: j, Err: err}
		}
		if errors.Is(err, persistence.ErrBadStatus) || errors.Is(err, persistence.ErrCorrupt) {
			// The job is in a state no retry of this run can commit (its record lost or
			// changed under it): end the run, freeing its slot. The job is this agent's to
			// recover at its next poll if the store still lists it there.
			e.events.Error(fmt.Sprintf("cannot commit %s: the store refuses it for good; the run ends and the job is left for recovery", e.repr(j)), jobAttrs(j, "error", err)...)
			return Result{Ending: Failed, Job: j, Err: err}
		}
		if out.Failure != nil && out.Failure.Type == "CommitError" {
			if !transient(err) {
				e.events.Error(fmt.Sprintf("cannot commit the commit error of %s either; the run ends and the job is left for recovery", e.repr(j)), jobAttrs(j, "error", err)...)
				return Result{Ending: Failed, Job: j, Err: err}
			}
			// A failure to commit must itself commit: retry while the store is out of
			// reach or busy, backing off.
			sleep(e.base, time.Duration(min(attempt, 60))*time.Second)
			continue
		}
		if counts == nil {
			counts = persistence.RetryCounts{}
			out.Retry = counts // a commit tried again carries what the policy counted
		}
		d := e.decide(j, policy.CommitError(err, counts), err)
		if errors.Is(err, persistence.ErrInvalid) && d.Retries() {
			// The same outcome would be refused again: store the commit error instead.
			d = persistence.Stop()
		}
		e.observeRetry(j, d, RetryReasonCommit)
		switch d.Action {
		case persistence.ActionRetryNow:
			sleep(e.base, d.Delay)
			continue
		case persistence.ActionReschedule:
			if !j.Holder.IsZero() {
				return e.reschedule(ctx, j, d, counts)
			}
		}
		if succeeded {
			result := "(its result is left out of logs: LogArguments)"
			if e.logArgs {
				result = string(out.Result)
			}
			e.events.Info(fmt.Sprintf("Commit failed for %s (see subsequent traceback).  Prior to this, job succeeded with result: %s", e.repr(j), result), jobAttrs(j, "error", err)...)
		} else {
			e.events.Info(fmt.Sprintf("Commit failed for %s (see subsequent traceback).  Prior to this, job failed with traceback:\n%s", e.repr(j), traceback(out.Failure)), jobAttrs(j, "error", err)...)
		}
		f := persistence.NewFailure(err, "")
		f.Type = "CommitError"
		out = persistence.Outcome{Failure: f, Retry: counts, Complete: true}
	}
}

// logOutcome logs a stored outcome: a failure in the events log at the job's level, a
// success in the trace log at INFO.
func (e *executor) logOutcome(j *persistence.Job) {
	e.observeOutcome(j)
	if j.Failed() {
		e.events.Log(context.Background(), j.FailureLogLevel, fmt.Sprintf("%s failed with traceback:\n%s", e.repr(j), traceback(j.Failure)),
			jobAttrs(j, "failure", j.Failure.Error())...)
		return
	}
	// zasync's own steps (a composite's next step, a recovery) are the detail of a user's
	// job: DEBUG, not INFO.
	level := slog.LevelInfo
	if internalStep(j) {
		level = slog.LevelDebug
	}
	if !e.trace.Enabled(context.Background(), level) { // formatting costs more than a no-op job
		return
	}
	if e.logArgs {
		e.trace.Log(context.Background(), level, fmt.Sprintf("%s succeeded with result: %s", e.repr(j), j.Result), jobAttrs(j)...)
		return
	}
	e.trace.Log(context.Background(), level, e.repr(j)+" succeeded", jobAttrs(j)...)
}

// traceback renders a failure as a log shows it: where it happened, if known, then what
// happened (a failure made without a stack, a timeout say, still says what it was).
func traceback(f *persistence.Failure) string {
	if f.Stack == "" {
		return f.Error()
	}
	return f.Stack + "\n" + f.Error()
}

// reassigned logs that the job was taken from this run and gives up on it. A job revoked
// while it ran (its handler's context says so) was taken by the revoke: that is no error.
func (e *executor) reassigned(ctx context.Context, j *persistence.Job, err error) Result {
	if revoked(ctx) {
		e.events.Info(e.repr(j)+" was cancelled while it ran; its run's outcome is dropped", jobAttrs(j)...)
		return Result{Ending: Cancelled, Job: j, Err: err}
	}
	e.events.Error(e.repr(j)+" "+reassignedMessage, jobAttrs(j, "error", err)...)
	return Result{Ending: Reassigned, Job: j, Err: err}
}

// stopped is how a run whose context ended before its outcome was stored ends: cancelled when
// the job was revoked, else interrupted.
func stopped(ctx context.Context, j *persistence.Job) Result {
	if revoked(ctx) {
		return Result{Ending: Cancelled, Job: j}
	}
	return Result{Ending: Interrupted, Job: j}
}

// revoked reports whether a run's context was cancelled because its job was revoked.
func revoked(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), persistence.ErrCancelled)
}

// storeFailure ends a run on a store error: reassignment is logged as such. An error the
// store gives for this job whatever the retries (invalid, corrupt, not found, bad status) fails
// the run's job when it is ACTIVE (giveUp); anything else leaves the job where it is, for its
// agent to recover at its next poll (or its dispatcher's cleaning).
func (e *executor) storeFailure(ctx context.Context, j *persistence.Job, err error) Result {
	if errors.Is(err, persistence.ErrReassigned) {
		return e.reassigned(ctx, j, err)
	}
	if j.Status == persistence.StatusActive && e.base.Err() == nil && !transient(err) {
		return e.giveUp(ctx, j, err)
	}
	e.events.Error("store error; the job is left for recovery", "job", j.Ref.String(), "error", err)
	return Result{Ending: Failed, Job: j, Err: err}
}

// transient tells the store errors that retrying may cure: the store out of reach, or a race
// lost. (Store calls of a run retry them until the node stops: see persist.)
func transient(err error) bool {
	return errors.Is(err, persistence.ErrUnavailable) || errors.Is(err, persistence.ErrConflict) || errors.Is(err, errStopping)
}

// giveUp fails j, ACTIVE in this run, with err, a store error that no retry of this run would
// cure (a system job without a valid target, an inner job that does not exist, a record that
// cannot be read): the job ends FAILED with that failure, its callbacks run, and its slot is
// free, rather than the job staying ACTIVE and held. It is not retried: the failure says why.
func (e *executor) giveUp(ctx context.Context, j *persistence.Job, err error) Result {
	e.events.Error(fmt.Sprintf("%s cannot run: the store refuses it for good; failing it", e.repr(j)), jobAttrs(j, "error", err)...)
	out := persistence.Outcome{Failure: persistence.NewFailure(fmt.Errorf("zasync: the job cannot run: %w", err), ""), Complete: true}
	var done *persistence.Job
	cerr := e.persist("fail a job that cannot run", func(context.Context) (cerr error) {
		done, cerr = e.commits.commit(j, out)
		return cerr
	})
	switch {
	case errors.Is(cerr, persistence.ErrReassigned) || errors.Is(cerr, persistence.ErrNotFound):
		return e.reassigned(ctx, j, cerr)
	case cerr != nil:
		e.events.Error("cannot fail the job either; it is left for recovery", "job", j.Ref.String(), "error", cerr, "cause", err)
		return Result{Ending: Failed, Job: j, Err: err}
	}
	e.logOutcome(done)
	if done.Status == persistence.StatusCallbacks {
		return e.finishCallbacks(ctx, done)
	}
	return Result{Ending: Finished, Job: done}
}

// wait parks j until inner completes: inner gets a callback that resumes j with inner's
// outcome. Both must be in one queue, so that they share a cluster slot.
func (e *executor) wait(ctx context.Context, j *persistence.Job, inner *Inner) Result {
	if inner.Ref.Queue != j.Queue {
		f := persistence.NewFailure(fmt.Errorf("%w: job %s waits for %s, in another queue", persistence.ErrInvalid, j.Ref, inner.Ref), "")
		return e.commit(ctx, j, e.policy(j), persistence.Outcome{Failure: f, Complete: true, Retry: j.Retry})
	}
	var waiting *persistence.Job
	if err := e.persist("wait for an inner job", func(ctx context.Context) (err error) {
		waiting, err = e.store.Wait(ctx, j.Fence(), inner.Ref.ID, true)
		return err
	}); err != nil {
		return e.storeFailure(ctx, j, err)
	}
	spec := persistence.JobSpec{Call: persistence.Call{Handler: persistence.HandlerResumeOuter}, Target: j.ID}
	var cb *persistence.Job
	var status persistence.Status
	if err := e.persist("add the resuming callback", func(ctx context.Context) (err error) {
		cb, status, err = e.store.AddCallback(ctx, inner.Ref, spec)
		return err
	}); err != nil {
		return e.storeFailure(ctx, waiting, err)
	}
	if status == persistence.StatusCompleted {
		// The inner job was done already: queue the callback, a dispatcher runs it at once.
		if err := e.persist("queue the resuming callback", func(ctx context.Context) error {
			_, err := e.store.Enqueue(ctx, cb.Ref)
			return err
		}); err != nil {
			return e.storeFailure(ctx, waiting, err)
		}
	}
	return Result{Ending: Waiting, Job: waiting}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
