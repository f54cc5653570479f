package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// SubJob is one finished sub-job as a postprocess receives it: one argument per sub-job, in
// order, after the postprocess's own arguments. A typed postprocess takes them as
// parameters: Func2(func(ctx context.Context, a, b runtime.SubJob) (int, error) {…}).
type SubJob = actors.SubJob

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

// putComposite creates the parts and the postprocess as NEW jobs of q (recursively for
// composite parts), then puts the composite over them with opts.
func (q *Queue) putComposite(ctx context.Context, call Call, opts []PutOption) (*Job, error) {
	if call.err != nil {
		return nil, fmt.Errorf("put %s into %s: %w", call.Handler, q.name, call.err)
	}
	c, err := q.createParts(ctx, call)
	if err != nil {
		return nil, fmt.Errorf("put %s into %s: %w", call.Handler, q.name, err)
	}
	return q.Put(ctx, c, opts...)
}

// createParts creates call's parts and postprocess and returns the composite's own call.
func (q *Queue) createParts(ctx context.Context, call Call) (Call, error) {
	ids := make([]string, 0, len(call.composite.parts))
	for _, p := range call.composite.parts {
		id, err := q.createNew(ctx, p)
		if err != nil {
			return Call{}, err
		}
		ids = append(ids, id)
	}
	post := Call{Handler: actors.HandlerCollect}
	if call.composite.post != nil {
		post = *call.composite.post
		if post.composite != nil {
			return Call{}, errors.Join(errComposite, errors.New("a postprocess cannot be a composite"))
		}
	}
	postID, err := q.createNew(ctx, post)
	if err != nil {
		return Call{}, err
	}
	pc := actors.CompositeCall(call.Handler, ids, postID)
	return Call{Handler: pc.Handler, Args: pc.Args, Kwargs: pc.Kwargs}, nil
}

// createNew creates call as a NEW job of q and returns its id.
func (q *Queue) createNew(ctx context.Context, call Call) (string, error) {
	if call.composite != nil {
		c, err := q.createParts(ctx, call)
		if err != nil {
			return "", err
		}
		call = c
	}
	pc, err := call.persistent()
	if err != nil {
		return "", err
	}
	j, err := q.rt.store.Create(ctx, q.name, persistence.JobSpec{Call: pc, Assigner: q.rt.assigner()})
	if err != nil {
		return "", err
	}
	return j.ID, nil
}
