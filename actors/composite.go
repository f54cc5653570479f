package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/zasync/zasync/persistence"
)

// Handlers of composite jobs (Serial, Parallel and their postprocess), run by the executor
// itself.
const (
	// HandlerSerial runs its sub-jobs one after another, then its postprocess.
	HandlerSerial = persistence.SystemPrefix + "serial"
	// HandlerParallel runs its sub-jobs all at once, then its postprocess.
	HandlerParallel = persistence.SystemPrefix + "parallel"
	// HandlerCollect is the postprocess of a composite given none: its result is the list of
	// the sub-jobs' outcomes.
	HandlerCollect = persistence.SystemPrefix + "collect"
	// handlerCompositeNext is the callback of each sub-job: it queues what comes next.
	handlerCompositeNext = persistence.SystemPrefix + "compositeNext"
)

// SubJob is a finished sub-job as its composite's postprocess receives it: one argument per
// sub-job, in order, after the postprocess's own arguments (zc.async's Job(p, 'foo') gets
// ('foo', *jobs)).
type SubJob struct {
	ID      string               `json:"id"`
	Result  json.RawMessage      `json:"result,omitempty"`
	Failure *persistence.Failure `json:"failure,omitempty"`
}

// composite is what a composite job's call holds (as its keyword arguments). Its sub-jobs
// are not there but in its record's Children, which may grow while it runs (AddSubJob).
type composite struct {
	Postprocess string // postprocess job id
}

// CompositeCall is the call of a composite of kind HandlerSerial or HandlerParallel whose
// postprocess is the job postprocess (created NEW in the composite's queue). Its sub-jobs are
// added to the composite's record with persistence.Store.AddChild, before it is put in its
// queue, or later with AddSubJob.
func CompositeCall(kind string, postprocess string) persistence.Call {
	post, _ := json.Marshal(postprocess) // a plain string: cannot fail
	return persistence.Call{Handler: kind, Kwargs: map[string]json.RawMessage{"postprocess": post}}
}

// CompositePostprocess returns the postprocess job of a composite's call; ok is false for a
// call that is not a composite's.
func CompositePostprocess(c *persistence.Call) (id string, ok bool) {
	k, err := compositeOf(c)
	return k.Postprocess, err == nil
}

// PostprocessOwnCall returns the call of post, the postprocess of a composite whose sub-jobs
// are children, as it was before the composite gave it their outcomes: enqueuePostprocess
// appends one SubJob argument per sub-job, in their order, and a postprocess that runs again
// (Runtime.Retry) gets them afresh. A call without them is returned as it is.
func PostprocessOwnCall(post *persistence.Job, children []string) persistence.Call {
	call := post.Call
	n := len(children)
	if n == 0 || len(call.Args) < n {
		return call
	}
	tail := call.Args[len(call.Args)-n:]
	for i, raw := range tail {
		var sub SubJob
		if json.Unmarshal(raw, &sub) != nil || sub.ID != children[i] {
			return call
		}
	}
	call.Args = slices.Clone(call.Args[:len(call.Args)-n])
	return call
}

// compositeOf reads a composite's call; a call of another handler is not a composite.
func compositeOf(c *persistence.Call) (composite, error) {
	var k composite
	if c.Handler != HandlerSerial && c.Handler != HandlerParallel {
		return k, fmt.Errorf("%w: %s is not a composite call", persistence.ErrInvalid, c.Handler)
	}
	if err := json.Unmarshal(c.Kwargs["postprocess"], &k.Postprocess); err != nil || k.Postprocess == "" {
		return k, fmt.Errorf("%w: composite call without its postprocess", persistence.ErrCorrupt)
	}
	return k, nil
}

// builtin returns the executor's own handler for a system call, if it is one.
func (e *executor) builtin(name string) (Handler, bool) {
	switch name {
	case HandlerSerial, HandlerParallel:
		return e.runComposite, true
	case handlerCompositeNext:
		return e.compositeNext, true
	case HandlerCollect:
		return collect, true
	}
	return nil, false
}

// bookkeeping returns the context a builtin handler runs with: ctx's values without its
// cancellation, ended only with the node. A clean stop cancels user handlers; a builtin only
// reads and writes zasync's own records in a few short store calls, and cut half way it
// leaves them half written: a part's step that queued the postprocess but was cancelled
// before the part completed leaves the part in CALLBACKS, and the stop adds a
// resumeCallbacks job to the handleInterrupt ones. Let run, it ends within the stop's grace
// period. A store too slow for that is abandoned when the node stops: the part is then
// recovered as before, and what the step still writes is harmless (it only queues jobs
// still NEW) or fenced (its commit).
func (e *executor) bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(e.base, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// runComposite runs a composite job: it queues what is due and waits, parked, for the
// postprocess. Run again after an interruption, it skips finished sub-jobs and leaves those
// in progress to their own recovery.
func (e *executor) runComposite(ctx context.Context, c *persistence.Call) (any, error) {
	r, _ := RunningFrom(ctx)
	k, err := compositeOf(c)
	if err != nil {
		return nil, err
	}
	if err := advance(ctx, e.store, r.Job.Ref, false); err != nil {
		return nil, err
	}
	return &Inner{Ref: r.Job.Ref.In(k.Postprocess)}, nil
}

// compositeNext is the callback of a sub-job: the composite's next step. It runs after the
// sub-job's outcome is stored and after the callbacks added to the sub-job before it was
// queued, and reads the composite's sub-jobs afresh: one appended by the sub-job's handler
// or by such a callback is seen.
func (e *executor) compositeNext(ctx context.Context, _ *persistence.Call) (any, error) {
	r, _ := RunningFrom(ctx)
	return nil, advance(ctx, e.store, r.Job.Ref.In(r.Job.Target), true)
}

// awaitsRun reports whether composite c is to run again: queued, claimed and not started, or
// interrupted (ACTIVE and held by no agent) with its recovery to come. Its next run begins
// with a step of its own, which sees every part finished before it was claimed.
func awaitsRun(c *persistence.Job) bool {
	switch c.Status {
	case persistence.StatusPending, persistence.StatusAssigned:
		return true
	case persistence.StatusActive:
		return c.Holder.IsZero()
	}
	return false
}

// advance queues what the composite comp needs next, reading its record and its sub-jobs
// afresh: for a serial one, the first sub-job not yet done if it has not started; for a
// parallel one, every sub-job not started; and once every sub-job is done, the postprocess,
// with the sub-jobs' outcomes after its own arguments.
//
// Before the postprocess gets the outcomes, the composite's sub-jobs are sealed at the ones
// just read, in a transaction that fails if one was added meanwhile (advance then starts
// over and sees it): a sub-job is either handed to the postprocess or refused by AddChild,
// never added and forgotten. The postprocess is queued only while NEW, in the same
// transaction that checks it, so that it is never queued twice however many steps race.
// Every step only queues what is NEW, so running one more than needed is harmless.
//
// A part's step (fromPart) does nothing for a composite whose outcome is stored (it was
// cancelled: its postprocess must not run), nor for one that is to run again (awaitsRun):
// that run's own step queues what comes next. Otherwise, after a stop, the restarted
// dispatcher recovers the composite and its interrupted part at once, and the part, put back
// and run first, could start the postprocess while the composite still waits in its queue.
// Nothing is missed: the composite's run is claimed after this read, which follows the part's
// stored outcome, so its step sees the part done.
func advance(ctx context.Context, s persistence.Store, comp persistence.Ref, fromPart bool) error {
	for {
		cj, err := s.Get(ctx, comp)
		if err != nil {
			return err
		}
		if fromPart && (awaitsRun(cj) || cj.HasResult()) {
			return nil // its own run goes on; or it has its outcome (a cancel): nothing is next
		}
		k, err := compositeOf(&cj.Call)
		if err != nil {
			return err
		}
		subs, err := s.GetMany(ctx, comp.Queue, cj.Children)
		if err != nil {
			return err
		}
		allDone := true
		for i, sub := range subs {
			if sub == nil {
				return fmt.Errorf("%w: sub-job %s of %s", persistence.ErrNotFound, cj.Children[i], comp)
			}
			if sub.HasResult() {
				continue
			}
			allDone = false
			if sub.Status != persistence.StatusNew {
				if cj.Call.Handler == HandlerSerial {
					return nil // in progress: its completion goes on
				}
				continue
			}
			if err := enqueueSub(ctx, s, comp, sub); err != nil {
				return err
			}
			if cj.Call.Handler == HandlerSerial {
				return nil
			}
		}
		if !allDone {
			return nil
		}
		sealed, err := s.SealChildren(ctx, comp, len(subs))
		if err != nil {
			return err
		}
		if !sealed {
			continue // a sub-job was added since the read: it runs first
		}
		return enqueuePostprocess(ctx, s, comp.In(k.Postprocess), subs)
	}
}

// enqueueSub puts a NEW sub-job in the queue with the callback that continues its composite.
// A step that crashed between the two leaves an extra callback behind: harmless, since every
// step only queues what is NEW.
func enqueueSub(ctx context.Context, s persistence.Store, comp persistence.Ref, sub *persistence.Job) error {
	spec := persistence.JobSpec{Call: persistence.Call{Handler: handlerCompositeNext}, Target: comp.ID}
	// A conflict (after the store's own retries) goes to the step's retry policy.
	if _, _, err := s.AddCallback(ctx, sub.Ref, spec); err != nil {
		return err
	}
	_, err := s.Enqueue(ctx, sub.Ref)
	if errors.Is(err, persistence.ErrBadStatus) {
		return nil // queued meanwhile by a racing step
	}
	return err
}

// enqueuePostprocess gives the postprocess the sub-jobs' outcomes and queues it, if it is
// still NEW.
func enqueuePostprocess(ctx context.Context, s persistence.Store, post persistence.Ref, subs []*persistence.Job) error {
	pj, err := s.Get(ctx, post)
	if err != nil || pj.Status != persistence.StatusNew {
		return err
	}
	call := pj.Call
	call.Args = slices.Clone(pj.Call.Args)
	for _, sub := range subs {
		b, _ := json.Marshal(SubJob{ID: sub.ID, Result: sub.Result, Failure: sub.Failure}) // plain data
		call.Args = append(call.Args, b)
	}
	_, err = s.EnqueueWith(ctx, post, persistence.Change{Call: &call})
	if errors.Is(err, persistence.ErrBadStatus) {
		return nil // queued meanwhile by a racing step, which gave the same arguments
	}
	return err
}

// addChildAttempts is how many times AddSubJob tries when the composite keeps changing under
// it. The store already retries a lost race many times before ErrConflict, so this only
// covers a composite that is very busy (many sub-jobs added at once).
const addChildAttempts = 3

// AddSubJob appends a sub-job running spec to the composite job comp (of kind HandlerSerial
// or HandlerParallel; another job gives ErrInvalid), as zc.async lets a composite's job list
// grow: before it starts, from one of its sub-jobs while it runs, or from a callback of a
// sub-job. The sub-job is created NEW in comp's queue, its Composite set to comp.
//
// When comp is already running, the new sub-job runs as if it had been there from the
// start: in a parallel composite it is queued at once; in a serial one it runs once the
// sub-jobs before it are done. That holds when it is appended from the handler of the last
// sub-job, or from a callback of it added before the sub-job was queued: the composite's next
// step runs after those and reads the sub-jobs afresh. Its outcome goes to the postprocess
// with the others, in order.
//
// It is too late once the composite has handed its sub-jobs' outcomes to its postprocess:
// when the postprocess is no longer NEW, when comp's outcome is stored, or when its sub-jobs
// are sealed (the step that queues the postprocess seals them first, in a transaction that a
// racing AddSubJob cannot slip past). That gives an error wrapping persistence.ErrBadStatus
// and adds nothing. Appending from a callback of the last sub-job added after it was queued
// therefore fails: that callback runs after the step that hands the outcomes over.
//
// An error after the sub-job was added (queueing it in a running parallel composite) is
// returned with the sub-job: it is part of the composite, and the composite's next step
// queues it.
func AddSubJob(ctx context.Context, s persistence.Store, comp persistence.Ref, spec persistence.JobSpec) (*persistence.Job, error) {
	fail := func(err error) (*persistence.Job, error) {
		return nil, fmt.Errorf("add a sub-job to %s: %w", comp, err)
	}
	cj, err := s.Get(ctx, comp)
	if err != nil {
		return fail(err)
	}
	k, err := compositeOf(&cj.Call)
	if err != nil {
		return fail(err)
	}
	if cj.HasResult() {
		return fail(&persistence.BadStatusError{Op: "add a sub-job to a composite", Status: cj.Status,
			Allowed: []persistence.Status{persistence.StatusNew, persistence.StatusPending, persistence.StatusAssigned, persistence.StatusActive}})
	}
	post, err := s.Get(ctx, comp.In(k.Postprocess))
	if err != nil {
		return fail(err)
	}
	if post.Status != persistence.StatusNew {
		return fail(fmt.Errorf("%w: too late, its postprocess %s is %s: the sub-jobs' outcomes were handed over",
			persistence.ErrBadStatus, post.ID, post.Status))
	}
	var (
		child  *persistence.Job
		status persistence.Status
	)
	for range addChildAttempts {
		child, status, err = s.AddChild(ctx, comp, spec)
		if !errors.Is(err, persistence.ErrConflict) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fail(err)
	}
	if status != persistence.StatusActive {
		return child, nil // the composite's own run queues it, when it starts
	}
	if err := advance(ctx, s, comp, false); err != nil {
		return child, fmt.Errorf("add a sub-job to %s: queue %s: %w", comp, child.ID, err)
	}
	return child, nil
}

// collect is the default postprocess: the list of the sub-jobs' outcomes.
func collect(_ context.Context, c *persistence.Call) (any, error) {
	out := make([]json.RawMessage, len(c.Args))
	copy(out, c.Args)
	return out, nil
}
