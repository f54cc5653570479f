package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/zasync/zasync/persistence"
)

// finishCallbacks runs the callbacks of parent (in CALLBACKS, held by this run) one after
// another, then completes it; callbacks added meanwhile run too, as in zc.async.
func (e *executor) finishCallbacks(ctx context.Context, parent *persistence.Job) Result {
	seen := 0
	for {
		for ; seen < len(parent.Callbacks); seen++ {
			switch r := e.runCallback(ctx, parent, parent.Callbacks[seen]); r.Ending {
			case Interrupted, Failed:
				return Result{Ending: r.Ending, Job: parent, Err: r.Err}
			case Reassigned:
				if errors.Is(r.Err, errParentLost) {
					return r
				}
			}
		}
		var done *persistence.Job
		err := e.persist("complete", func(ctx context.Context) (err error) {
			done, err = e.store.Complete(ctx, parent.Fence(), seen)
			return err
		})
		if errors.Is(err, persistence.ErrMoreCallbacks) {
			parent = done
			continue
		}
		if err != nil {
			return e.storeFailure(ctx, parent, err)
		}
		return Result{Ending: Finished, Job: done}
	}
}

// errParentLost marks a callback that could not be adopted because its parent's run was
// taken away: the parent's run must stop too.
var errParentLost = errors.New("the parent's run was taken away")

// runCallback runs one callback of parent according to its status, as zc.async's
// resumeCallbacks does: a new one is run, one interrupted while ACTIVE is asked to its retry
// policy, one in CALLBACKS has its own callbacks resumed, a completed one is skipped.
func (e *executor) runCallback(ctx context.Context, parent *persistence.Job, id string) Result {
	var cb *persistence.Job
	err := e.persist("read a callback", func(ctx context.Context) (err error) {
		cb, err = e.store.Get(ctx, parent.Ref.In(id))
		return err
	})
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		// Nothing to run: skipped, so that its parent still completes.
		e.events.Error(fmt.Sprintf("callback %s of %s does not exist; skipped", id, e.repr(parent)), jobAttrs(parent, "error", err)...)
		return Result{Ending: Finished}
	case err != nil:
		return e.storeFailure(ctx, parent, err)
	}
	statuses := []persistence.Status{persistence.StatusNew, persistence.StatusPending, persistence.StatusAssigned}
	switch cb.Status {
	case persistence.StatusCompleted:
		return Result{Ending: Finished, Job: cb}
	case persistence.StatusActive, persistence.StatusCallbacks:
		statuses = []persistence.Status{cb.Status}
	}
	var adopted *persistence.Job
	err = e.persist("adopt a callback", func(ctx context.Context) (err error) {
		adopted, err = e.store.Adopt(ctx, parent.Fence(), id, statuses...)
		return err
	})
	switch {
	case errors.Is(err, persistence.ErrReassigned):
		e.events.Error(e.repr(parent)+" "+reassignedMessage, jobAttrs(parent, "error", err)...)
		return Result{Ending: Reassigned, Job: parent, Err: fmt.Errorf("%w: %w", errParentLost, err)}
	case errors.Is(err, persistence.ErrBadStatus):
		return Result{Ending: Finished, Job: cb} // it moved on meanwhile (completed by another run)
	case err != nil:
		return e.storeFailure(ctx, parent, err)
	}
	switch adopted.Status {
	case persistence.StatusCallbacks:
		return e.finishCallbacks(ctx, adopted)
	case persistence.StatusActive:
		return e.callbackInterrupted(ctx, adopted, parent)
	}
	var now time.Time
	if err := e.persist("read the time", func(ctx context.Context) (err error) {
		now, err = e.store.Now(ctx)
		return err
	}); err != nil {
		return e.storeFailure(ctx, adopted, err)
	}
	if adopted.Expired(now) {
		e.events.Error(fmt.Sprintf("failing expired callback %s to %s", e.repr(adopted), e.repr(parent)), jobAttrs(adopted)...)
		return e.failWith(ctx, adopted, &persistence.TimeoutError{BeginAfter: adopted.BeginAfter, BeginBy: adopted.BeginBy})
	}
	return e.callback(ctx, adopted, parent)
}

// callback runs an adopted callback: resumeOuter callbacks resume the job that waits for
// parent; the others run their handler with parent's outcome.
func (e *executor) callback(ctx context.Context, cb, parent *persistence.Job) Result {
	if cb.Call.Handler == persistence.HandlerResumeOuter {
		return e.resumeOuter(ctx, cb, parent)
	}
	return e.execute(ctx, cb, parent)
}

// callbackInterrupted asks an interrupted callback's policy whether to run it again.
func (e *executor) callbackInterrupted(ctx context.Context, cb, parent *persistence.Job) Result {
	counts := maps.Clone(cb.Retry)
	if counts == nil {
		counts = persistence.RetryCounts{}
	}
	d := e.decide(cb, e.policy(cb).Interrupted(counts), errors.New("interrupted"))
	e.observeRetry(cb, d, RetryReasonInterrupt)
	if d.Retries() {
		cb.Retry = counts
		if err := e.saveRetry(cb, counts); err != nil {
			return e.storeFailure(ctx, cb, err)
		}
		return e.callback(ctx, cb, parent)
	}
	return e.abort(ctx, cb, counts)
}

// abort stores AbortedError as the outcome of an interrupted job the policy gave up on.
func (e *executor) abort(ctx context.Context, j *persistence.Job, counts persistence.RetryCounts) Result {
	f := persistence.NewFailure(&persistence.AbortedError{Interruptions: counts[persistence.CountInterruptions]}, "")
	return e.commit(ctx, j, e.policy(j), persistence.Outcome{Failure: f, Retry: counts, Complete: true})
}

// failWith completes a job that has not run with failure err (a timeout), then runs its
// callbacks.
func (e *executor) failWith(ctx context.Context, j *persistence.Job, err error) Result {
	fence := j.Fence()
	var failed *persistence.Job
	if ferr := e.persist("fail", func(ctx context.Context) (ferr error) {
		failed, ferr = e.store.Fail(ctx, j.Ref, &fence, persistence.NewFailure(err, ""))
		return ferr
	}); ferr != nil {
		return e.storeFailure(ctx, j, ferr)
	}
	e.logOutcome(failed)
	return e.finishCallbacks(ctx, failed)
}

// resumeOuter runs a resumeOuter callback of inner: the outer job waiting for inner takes
// inner's outcome as its own, runs its callbacks and completes; then the callback itself
// completes.
func (e *executor) resumeOuter(ctx context.Context, cb, inner *persistence.Job) Result {
	started, err := e.start(cb)
	if err != nil {
		return e.storeFailure(ctx, cb, err)
	}
	var outer *persistence.Job
	defer adopting(ctx, cb.Ref.In(cb.Target))()
	err = e.persist("adopt the waiting job", func(ctx context.Context) (err error) {
		outer, err = e.store.AdoptWaiting(ctx, started.Fence(), started.Target, inner.ID)
		return err
	})
	switch {
	case err == nil:
		out := outcomeOf(inner)
		out.Retry, out.Complete = outer.Retry, true
		if r := e.commit(ctx, outer, e.policy(outer), out); r.Ending != Finished {
			return r
		}
	case errors.Is(err, persistence.ErrBadStatus):
		// The outer job does not wait for this one now: it completed already, or it was
		// interrupted and its new run has not started waiting (it will find this inner job
		// completed and resume itself).
	default:
		return e.storeFailure(ctx, started, err)
	}
	return e.commit(ctx, started, persistence.RetryCommonForever, persistence.Outcome{Result: []byte("null"), Complete: true})
}

// system runs a system job: handleInterrupt, resumeCallbacks or fail, on its target.
func (e *executor) system(ctx context.Context, sys *persistence.Job) Result {
	started, err := e.start(sys)
	if err != nil {
		return e.storeFailure(ctx, sys, err)
	}
	statuses := map[string][]persistence.Status{
		persistence.HandlerHandleInterrupt: {persistence.StatusActive, persistence.StatusCallbacks},
		persistence.HandlerResumeCallbacks: {persistence.StatusCallbacks},
		persistence.HandlerFail:            {persistence.StatusNew, persistence.StatusPending, persistence.StatusAssigned, persistence.StatusCallbacks},
	}[sys.Call.Handler]
	var target *persistence.Job
	defer adopting(ctx, sys.Ref.In(sys.Target))()
	err = e.persist("adopt the target", func(ctx context.Context) (err error) {
		target, err = e.store.Adopt(ctx, started.Fence(), started.Target, statuses...)
		return err
	})
	var r Result
	switch {
	case errors.Is(err, persistence.ErrBadStatus) || errors.Is(err, persistence.ErrNotFound):
		// Its target moved on meanwhile (completed by another run, or expired from history).
		e.events.Error("job already completed? "+e.repr(sys), jobAttrs(sys, "error", err)...)
		r = Result{Ending: Finished}
	case err != nil:
		return e.storeFailure(ctx, started, err)
	case target.Status == persistence.StatusCallbacks:
		r = e.finishCallbacks(ctx, target)
	case sys.Call.Handler == persistence.HandlerFail:
		r = e.failWith(ctx, target, &persistence.TimeoutError{BeginAfter: target.BeginAfter, BeginBy: target.BeginBy})
	default:
		r = e.interrupted(ctx, target)
	}
	switch {
	case r.Ending == Failed && r.Err != nil && e.base.Err() == nil && !transient(r.Err):
		// What the store refused would be refused to any run of this job again: fail it,
		// saying why, instead of leaving it held to be recovered over and over.
		return e.giveUp(ctx, started, r.Err)
	case r.Ending == Interrupted || r.Ending == Failed:
		return Result{Ending: r.Ending, Job: started, Err: r.Err}
	}
	return e.commit(ctx, started, persistence.RetryCommonForever, persistence.Outcome{Result: []byte("null"), Complete: true})
}

// interrupted asks an interrupted job's retry policy what to do: put it back at the front of
// its queue, schedule it for later, or abort it with AbortedError.
func (e *executor) interrupted(ctx context.Context, j *persistence.Job) Result {
	counts := maps.Clone(j.Retry)
	if counts == nil {
		counts = persistence.RetryCounts{}
	}
	d := e.decide(j, e.policy(j).Interrupted(counts), errors.New("interrupted"))
	e.observeRetry(j, d, RetryReasonInterrupt)
	switch d.Action {
	case persistence.ActionRetryNow:
		return e.reschedule(ctx, j, persistence.RetryAfter(0), counts) // due now: put back at the front
	case persistence.ActionReschedule:
		return e.reschedule(ctx, j, d, counts)
	}
	return e.abort(ctx, j, counts)
}
