package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// SubJob is one finished sub-job as a postprocess receives it: one argument per sub-job, in
// order, after the postprocess's own arguments, stored as a JSON object. A postprocess takes
// them as parameters: Func2(func(ctx context.Context, a, b runtime.SubJob) (int, error) {…}).
// (RegisterPostprocess hands them over as Result values instead.) A composite put without a
// postprocess has the list of its sub-jobs' SubJobs as its result.
type SubJob struct {
	// ID is the sub-job's id, in the composite's queue.
	ID string `json:"id"`
	// Result is its result as JSON, when it succeeded.
	Result json.RawMessage `json:"result,omitempty"`
	// Failure is its failure, when it failed.
	Failure *Failure `json:"failure,omitempty"`
}

type compositeParts struct {
	parts []Call
	post  *Call
}

// Serial returns a composite call: when its job runs, its parts run one after another (the
// next starts when the previous has completed, successfully or not), each as a job of the
// composite's queue; then the call marked with Postprocess runs with the parts' outcomes
// (SubJob values) after its own arguments, and its result is the composite's. Without a
// postprocess the composite's result is the list of the parts' outcomes. A composite
// interrupted by a shutdown or a crash skips, when it runs again, the parts already done,
// and never runs its postprocess twice. Parts may themselves be composites. Put it with
// Queue.Put.
func Serial(parts ...Call) Call { return newComposite(actors.HandlerSerial, parts) }

// Parallel is Serial whose parts all run at once.
func Parallel(parts ...Call) Call { return newComposite(actors.HandlerParallel, parts) }

// Postprocess marks the call that receives a composite's outcomes; give it to Serial or
// Parallel among the parts.
func Postprocess(call Call) Call {
	call.postprocess = true
	return call
}

// errComposite reports a malformed composite.
var errComposite = fmt.Errorf("%w: composite", persistence.ErrInvalid)

func newComposite(kind string, items []Call) Call {
	c := Call{Handler: kind, composite: &compositeParts{}}
	for _, it := range items {
		if it.err != nil && c.err == nil {
			c.err = it.err
		}
		if !it.postprocess {
			c.composite.parts = append(c.composite.parts, it)
			continue
		}
		if c.composite.post != nil && c.err == nil {
			c.err = fmt.Errorf("%w: two postprocesses", errComposite)
		}
		p := it
		p.postprocess = false
		c.composite.post = &p
	}
	if len(c.composite.parts) == 0 && c.err == nil {
		c.err = fmt.Errorf("%w: no parts", errComposite)
	}
	return c
}

// putComposite validates the whole composite, then creates the composite NEW with base (the
// put's options) over its postprocess, adds its parts as its children (recursively for
// composite parts), and only then puts it in q: it never runs without all its parts.
func (q *Queue) putComposite(ctx context.Context, call Call, base persistence.JobSpec) (*Job, error) {
	fail := func(err error) (*Job, error) {
		return nil, fmt.Errorf("put %q into %q: %w", call.Handler, q.name, err)
	}
	if err := validComposite(call); err != nil {
		return fail(err)
	}
	comp, err := q.build(ctx, call, func(pc persistence.Call) (*persistence.Job, error) {
		spec := base
		spec.Call = pc
		return q.rt.store.Create(ctx, q.name, spec)
	})
	if err != nil {
		return fail(err)
	}
	if _, err := q.rt.store.Enqueue(ctx, comp.Ref); err != nil {
		return fail(err)
	}
	return q.rt.job(comp.Ref), nil
}

// validComposite checks a composite and its parts, recursively, before anything is written.
func validComposite(call Call) error {
	if call.err != nil {
		return call.err
	}
	if call.composite.post != nil {
		if call.composite.post.composite != nil {
			return errors.Join(errComposite, errors.New("a postprocess cannot be a composite"))
		}
		if _, err := call.composite.post.persistent(); err != nil {
			return err
		}
	}
	for _, p := range call.composite.parts {
		var err error
		if p.composite != nil {
			err = validComposite(p)
		} else {
			_, err = p.persistent()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// build creates the postprocess of the composite call as a NEW job of q, then the composite
// itself with create, given its call, then its parts as its children. create makes the
// composite a job of q (the outer one) or a child of another composite (a composite part).
func (q *Queue) build(ctx context.Context, call Call, create func(persistence.Call) (*persistence.Job, error)) (*persistence.Job, error) {
	pc, err := Call{Handler: actors.HandlerCollect, Meta: call.Meta}.system()
	if post := call.composite.post; post != nil {
		p := *post
		p.Meta = inherit(call.Meta, p.Meta)
		pc, err = p.persistent()
	}
	if err != nil {
		return nil, err
	}
	pj, err := q.rt.store.Create(ctx, q.name, persistence.JobSpec{Call: pc, Assigner: q.rt.assigner()})
	if err != nil {
		return nil, err
	}
	cc := actors.CompositeCall(call.Handler, pj.ID)
	cc.Meta = call.Meta
	comp, err := create(cc)
	if err != nil {
		return nil, err
	}
	for _, p := range call.composite.parts {
		p.Meta = inherit(call.Meta, p.Meta)
		if err := q.addPart(ctx, comp.Ref, p); err != nil {
			return nil, err
		}
	}
	return comp, nil
}

// addPart adds part as a child of the NEW composite parent, which nothing runs yet.
func (q *Queue) addPart(ctx context.Context, parent persistence.Ref, part Call) error {
	addChild := func(pc persistence.Call) (*persistence.Job, error) {
		child, _, err := q.rt.store.AddChild(ctx, parent, persistence.JobSpec{Call: pc, Assigner: q.rt.assigner()})
		return child, err
	}
	if part.composite != nil {
		_, err := q.build(ctx, part, addChild)
		return err
	}
	pc, err := part.persistent()
	if err != nil {
		return err
	}
	_, err = addChild(pc)
	return err
}

// AddSubJob appends a job running call to composite, a job put as Serial or Parallel, and
// returns it: the composite's job list may grow before it starts, from one of its sub-jobs
// while it runs, or from a callback of a sub-job (a list that keeps growing makes an endless
// loop, as in zc.async).
//
// Inside a sub-job's handler the composite is reached with JobFrom and Job.Composite; inside
// a callback of a sub-job, with JobFrom, Job.Parent and the parent's Composite.
//
// Appended to a running composite, the sub-job runs as if it had been there from the start:
// in a Parallel one it is queued at once; in a Serial one it runs once the sub-jobs before it
// are done, even when it is appended from the handler of the last sub-job or from a callback
// added to that sub-job before it started (the composite's next step runs after those, and
// sees it). Its outcome reaches the postprocess with the others, in order.
//
// It is too late once the composite has handed its sub-jobs' outcomes to its postprocess
// (the postprocess is queued or runs, or the composite has completed): that gives an error
// wrapping ErrBadStatus, and nothing is added. So a callback of the last sub-job added after
// that sub-job was queued cannot append: it runs after the hand-over. A job that is not a
// composite gives ErrInvalid; so does call when it is itself a Serial or Parallel (its parts
// could start before they were all added: append them one by one instead).
//
// When an error comes after the sub-job was added (it could not be queued at once), the
// sub-job is returned with it: it is part of the composite, and the composite's next step
// queues it.
func AddSubJob(ctx context.Context, composite *Job, call Call) (*Job, error) {
	if composite == nil {
		return nil, invalidf("add sub-job %q to a nil composite", call.Handler)
	}
	fail := func(err error) (*Job, error) {
		return nil, fmt.Errorf("add sub-job %q to %s: %w", call.Handler, composite.ref, err)
	}
	switch {
	case call.composite != nil:
		return fail(errors.Join(errComposite, errors.New("a sub-job added to a composite cannot be a composite")))
	case call.postprocess:
		return fail(errors.Join(errComposite, errors.New("a postprocess is given to Serial or Parallel, not added")))
	}
	rt := composite.rt
	end := rt.tracePut(ctx, composite.ref.Queue, []*Call{&call})
	pc, err := call.persistent()
	if err != nil {
		end(nil, err)
		return fail(err)
	}
	child, err := actors.AddSubJob(ctx, rt.store, composite.ref, persistence.JobSpec{Call: pc, Assigner: rt.assigner()})
	if child == nil {
		end(nil, err)
		return fail(err)
	}
	end([]Ref{Ref(child.Ref)}, err)
	if err != nil {
		return rt.job(child.Ref), fmt.Errorf("add sub-job %q to %s: %w", call.Handler, composite.ref, err)
	}
	return rt.job(child.Ref), nil
}

// Composite returns the composite the job is a sub-job of (a part of a Serial or Parallel,
// or a job added with AddSubJob); false when it is none.
func (j *Job) Composite(ctx context.Context) (*Job, bool, error) {
	rec, err := j.info(ctx)
	if err != nil || rec.Composite == "" {
		return nil, false, err
	}
	return j.rt.job(j.ref.In(rec.Composite)), true, nil
}

// Parent returns the job the job is a callback of (AddCallback, AddCallbacks); false when it
// is none.
func (j *Job) Parent(ctx context.Context) (*Job, bool, error) {
	rec, err := j.info(ctx)
	if err != nil || rec.Parent == "" {
		return nil, false, err
	}
	return j.rt.job(j.ref.In(rec.Parent)), true, nil
}
