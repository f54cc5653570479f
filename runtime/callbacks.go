package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/zasync/zasync/persistence"
)

// addCallbackAttempts is how many times AddCallback tries when the parent keeps changing
// under it. The store already retries a lost race many times before ErrConflict, so this
// only covers a parent that is very busy (a composite adding sub-jobs, say).
const addCallbackAttempts = 3

// CallbackOption changes how AddCallback and AddCallbacks set up a callback.
type CallbackOption func(*callbackSettings)

type callbackSettings struct {
	retry   RetryPolicy
	level   *slog.Level
	beginBy time.Duration
	err     error
}

// CallbackRetry sets the callback's retry policy. Default RetryCommonForever: a callback
// must not be lost. The policy must be known to this runtime, else ErrInvalid.
func CallbackRetry(p RetryPolicy) CallbackOption {
	return func(s *callbackSettings) {
		s.retry = p
		if p == nil && s.err == nil {
			s.err = invalidf("nil retry policy")
		}
	}
}

// CallbackFailureLevel sets the level the callback's failure is logged at. Default
// LevelCritical.
func CallbackFailureLevel(l slog.Level) CallbackOption {
	return func(s *callbackSettings) { s.level = &l }
}

// CallbackBeginBy fails the callback with a TimeoutError, instead of running it, if it has not
// started within d of being added (its begin_after is the time it was added): for work that
// is pointless once late, after a parent that may run long. Its failure is the callback's
// outcome, as any other. Default: no deadline. Negative is invalid.
func CallbackBeginBy(d time.Duration) CallbackOption {
	return func(s *callbackSettings) {
		s.beginBy = d
		if d < 0 && s.err == nil {
			s.err = invalidf("negative CallbackBeginBy %s", d)
		}
	}
}

// AddCallback adds a callback to the job: a job running call with the job's outcome after the
// call's own arguments (the result, or the *Failure as JSON), run right after the job finishes,
// after the callbacks added before it. It returns the callback's own job, to wait on or to
// add callbacks to. Callbacks are not chained: each receives the original job's outcome.
//
// A callback added to a job already COMPLETED runs at once: it is put in the job's queue,
// where a dispatcher serving it runs it as that job's callback within milliseconds. (zc.async
// ran it in the caller's transaction; a zasync caller may be a client without the handler,
// and a queued callback survives a crash.)
func (j *Job) AddCallback(ctx context.Context, call Call, opts ...CallbackOption) (*Job, error) {
	end := j.rt.tracePut(ctx, j.ref.Queue, []*Call{&call})
	pc, err := call.persistent()
	if err != nil {
		end(nil, err)
		return nil, fmt.Errorf("add callback %q to %s: %w", call.Handler, j.ref, err)
	}
	cb, err := j.addCallback(ctx, persistence.JobSpec{Call: pc}, "callback "+strconv.Quote(call.Handler), opts)
	end(jobRefs(cb), err)
	return cb, err
}

// AddCallbacks adds a callback that picks its call by the job's outcome: success when the
// job succeeded, failure when it failed; a nil side passes the outcome through unchanged (the
// callback's result is then the job's result, or fails with the job's failure). It is
// otherwise an AddCallback.
func (j *Job) AddCallbacks(ctx context.Context, success, failure *Call, opts ...CallbackOption) (*Job, error) {
	var sides []*Call // copies, for the tracer to add metadata to
	for _, c := range []**Call{&success, &failure} {
		if *c != nil {
			cp := **c
			*c = &cp
			sides = append(sides, &cp)
		}
	}
	end := j.rt.tracePut(ctx, j.ref.Queue, sides)
	cb, err := j.addCallbacks(ctx, success, failure, opts)
	end(jobRefs(cb), err)
	return cb, err
}

// addCallbacks is AddCallbacks without the tracer.
func (j *Job) addCallbacks(ctx context.Context, success, failure *Call, opts []CallbackOption) (*Job, error) {
	choice := &persistence.CallbackChoice{}
	for _, side := range []struct {
		call *Call
		dst  **persistence.Call
	}{{success, &choice.Success}, {failure, &choice.Failure}} {
		if side.call == nil {
			continue
		}
		pc, err := side.call.persistent()
		if err != nil {
			return nil, fmt.Errorf("add callbacks to %s: %w", j.ref, err)
		}
		*side.dst = &pc
	}
	return j.addCallback(ctx, persistence.JobSpec{Choice: choice}, "callbacks", opts)
}

// addCallback stores the callback, retrying a parent that keeps changing, and runs it at
// once when the parent is already COMPLETED.
func (j *Job) addCallback(ctx context.Context, spec persistence.JobSpec, what string, opts []CallbackOption) (*Job, error) {
	var s callbackSettings
	for _, o := range opts {
		o(&s)
	}
	if s.err != nil {
		return nil, fmt.Errorf("add %s to %s: %w", what, j.ref, s.err)
	}
	if s.retry != nil {
		name, err := j.rt.retryPolicy(s.retry)
		if err != nil {
			return nil, fmt.Errorf("add %s to %s: %w", what, j.ref, err)
		}
		spec.RetryPolicy = name
	}
	spec.FailureLogLevel = s.level
	spec.BeginBy = s.beginBy
	spec.Assigner = j.rt.assigner()

	var (
		cb     *persistence.Job
		status persistence.Status
		err    error
	)
	for range addCallbackAttempts {
		cb, status, err = j.rt.store.AddCallback(ctx, j.ref, spec)
		if !errors.Is(err, persistence.ErrConflict) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("add %s to %s: %w", what, j.ref, err)
	}
	job := j.rt.job(cb.Ref)
	if status != persistence.StatusCompleted {
		return job, nil
	}
	// Whoever completed the parent ran the callbacks it knew of and is done: this one is put
	// in the parent's queue, where any dispatcher runs it at once (a wake-up is published)
	// as the parent's callback. The caller need not have its handler, and a crash cannot
	// lose it.
	if _, err := j.rt.store.Enqueue(ctx, cb.Ref); err != nil {
		return job, fmt.Errorf("queue %s added to completed %s: %w", what, j.ref, err)
	}
	return job, nil
}
