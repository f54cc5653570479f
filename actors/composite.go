package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/zasync/zasync/persistence"
)

// Handlers of composite jobs (reference §1.8), run by the executor itself.
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

// composite is what a composite job's call holds (as its keyword arguments).
type composite struct {
	Jobs        []string // sub-job ids, in order
	Postprocess string   // postprocess job id
}

// CompositeCall is the call of a composite of kind HandlerSerial or HandlerParallel over the
// sub-jobs ids (created NEW in the composite's queue) and postprocess (likewise).
func CompositeCall(kind string, ids []string, postprocess string) persistence.Call {
	jobs, _ := json.Marshal(ids)         // plain strings: cannot fail
	post, _ := json.Marshal(postprocess) // likewise
	return persistence.Call{Handler: kind, Kwargs: map[string]json.RawMessage{"jobs": jobs, "postprocess": post}}
}

func compositeOf(c *persistence.Call) (composite, error) {
	var k composite
	if err := json.Unmarshal(c.Kwargs["jobs"], &k.Jobs); err != nil || len(k.Jobs) == 0 {
		return k, fmt.Errorf("%w: composite call without its sub-jobs", persistence.ErrCorrupt)
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

// runComposite runs a composite job: it queues what is due and waits, parked, for the
// postprocess. Run again after an interruption, it skips finished sub-jobs and leaves those
// in progress to their own recovery.
func (e *executor) runComposite(ctx context.Context, c *persistence.Call) (any, error) {
	r, _ := RunningFrom(ctx)
	if err := e.advance(ctx, r.Job.Ref, c); err != nil {
		return nil, err
	}
	k, _ := compositeOf(c)
	return &Inner{Ref: r.Job.Ref.In(k.Postprocess)}, nil
}

// compositeNext is the callback of a sub-job: the composite's next step.
func (e *executor) compositeNext(ctx context.Context, _ *persistence.Call) (any, error) {
	r, _ := RunningFrom(ctx)
	comp, err := e.store.Get(ctx, r.Job.Ref.In(r.Job.Target))
	if err != nil {
		return nil, err
	}
	return nil, e.advance(ctx, comp.Ref, &comp.Call)
}

// advance queues what a composite needs next: for a serial one, the first sub-job not yet
// done if it has not started; for a parallel one, every sub-job not started; and once every
// sub-job is done, the postprocess, with the sub-jobs' outcomes after its own arguments. The
// postprocess is queued only while NEW, in the same transaction that checks it, so that it
// is never queued twice however many callbacks race.
func (e *executor) advance(ctx context.Context, ref persistence.Ref, c *persistence.Call) error {
	k, err := compositeOf(c)
	if err != nil {
		return err
	}
	subs, err := e.store.GetMany(ctx, ref.Queue, k.Jobs)
	if err != nil {
		return err
	}
	allDone := true
	for i, s := range subs {
		if s == nil {
			return fmt.Errorf("%w: sub-job %s of %s", persistence.ErrNotFound, k.Jobs[i], ref)
		}
		if s.HasResult() {
			continue
		}
		allDone = false
		if s.Status != persistence.StatusNew {
			if c.Handler == HandlerSerial {
				return nil // in progress: its completion goes on
			}
			continue
		}
		if err := e.enqueueSub(ctx, ref, s); err != nil {
			return err
		}
		if c.Handler == HandlerSerial {
			return nil
		}
	}
	if !allDone {
		return nil
	}
	return e.enqueuePostprocess(ctx, ref.In(k.Postprocess), subs)
}

// enqueueSub puts a NEW sub-job in the queue with the callback that continues its composite.
// A step that crashed between the two leaves an extra callback behind: harmless, since every
// step only queues what is NEW.
func (e *executor) enqueueSub(ctx context.Context, comp persistence.Ref, s *persistence.Job) error {
	spec := persistence.JobSpec{Call: persistence.Call{Handler: handlerCompositeNext}, Target: comp.ID}
	if _, _, err := addCallback(ctx, e.store, s.Ref, spec); err != nil {
		return err
	}
	_, err := e.store.Enqueue(ctx, s.Ref)
	if errors.Is(err, persistence.ErrBadStatus) {
		return nil // queued meanwhile by a racing step
	}
	return err
}

// enqueuePostprocess gives the postprocess the sub-jobs' outcomes and queues it, if it is
// still NEW.
func (e *executor) enqueuePostprocess(ctx context.Context, post persistence.Ref, subs []*persistence.Job) error {
	pj, err := e.store.Get(ctx, post)
	if err != nil || pj.Status != persistence.StatusNew {
		return err
	}
	call := pj.Call
	call.Args = slices.Clone(pj.Call.Args)
	for _, s := range subs {
		b, _ := json.Marshal(SubJob{ID: s.ID, Result: s.Result, Failure: s.Failure}) // plain data
		call.Args = append(call.Args, b)
	}
	_, err = e.store.EnqueueWith(ctx, post, persistence.Change{Call: &call})
	if errors.Is(err, persistence.ErrBadStatus) {
		return nil // queued meanwhile by a racing step, which gave the same arguments
	}
	return err
}

// collect is the default postprocess: the list of the sub-jobs' outcomes.
func collect(_ context.Context, c *persistence.Call) (any, error) {
	out := make([]json.RawMessage, len(c.Args))
	copy(out, c.Args)
	return out, nil
}
