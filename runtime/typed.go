package runtime

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/zasync/zasync/actors"
)

// Typed jobs: a handler registered with its argument and result types. Its jobs are put with
// a value of the argument type (stored as one JSON argument: a struct is a JSON object) and
// waited for as a value of the result type; typed callbacks and postprocesses receive the
// outcomes they follow as Result values. They are ordinary jobs underneath: the untyped API,
// the command and the dashboard see them as calls of one argument.

// JobType is a handler registered with Register: it puts jobs of its kind with an argument of
// type A, and their Wait gives the handler's result as an R.
type JobType[A, R any] struct {
	rt   *Runtime
	name string
}

// Register registers f under name, as Runtime.Handle does, and returns its JobType. A job of
// it has one argument, the A it was put with, as JSON; f gets it decoded into A, and f's R is
// the job's result. A call with another number of arguments, keyword arguments, or an
// argument that does not decode into A fails with ErrInvalid, which the built-in retry
// policies do not retry. opts are the handler's defaults (a retry policy, say), applied to
// every put of its jobs through this runtime before the put's own options, as Handle's.
func Register[A, R any](rt *Runtime, name string, f func(ctx context.Context, a A) (R, error), opts ...PutOption) (*JobType[A, R], error) {
	if f == nil {
		return nil, invalidf("register %q: nil function", name)
	}
	if err := rt.Handle(name, Func1(f), opts...); err != nil {
		return nil, err
	}
	return &JobType[A, R]{rt: rt, name: name}, nil
}

// Name is the name the handler is registered under.
func (t *JobType[A, R]) Name() string { return t.name }

// Call returns the call of a job of this type with argument a: a part of a composite
// (SerialOf, ParallelOf), or a job put with TypedCall.Put.
func (t *JobType[A, R]) Call(a A) TypedCall[R] {
	return TypedCall[R]{rt: t.rt, call: NewCall(t.name, a)}
}

// Put puts a job of this type with argument a in the named queue, with the JobType's default
// options and then opts.
func (t *JobType[A, R]) Put(ctx context.Context, queue string, a A, opts ...PutOption) (*TypedJob[R], error) {
	j, err := t.rt.Queue(queue).Put(ctx, NewCall(t.name, a), opts...)
	if err != nil {
		return nil, err
	}
	return &TypedJob[R]{Job: j}, nil
}

// PutMany puts a job of this type for each of args in the named queue, in one batch, as
// Queue.PutMany does.
func (t *JobType[A, R]) PutMany(ctx context.Context, queue string, args []A, opts ...PutOption) ([]*TypedJob[R], error) {
	calls := make([]Call, len(args))
	for i, a := range args {
		calls[i] = NewCall(t.name, a)
	}
	jobs, err := t.rt.Queue(queue).PutMany(ctx, calls, opts...)
	if err != nil {
		return nil, err
	}
	out := make([]*TypedJob[R], len(jobs))
	for i, j := range jobs {
		out[i] = &TypedJob[R]{Job: j}
	}
	return out, nil
}

// Job returns the typed handle of the job ref names, taken to be of this type.
func (t *JobType[A, R]) Job(ref Ref) *TypedJob[R] { return &TypedJob[R]{Job: t.rt.Job(ref)} }

// TypedJob is a job whose result is an R: a job of a JobType, a typed callback's or a typed
// composite's. Every method of Job is there; Wait gives the result typed.
type TypedJob[R any] struct {
	*Job
}

// Wait waits until the job has completed and returns its result decoded into an R. A job
// that failed gives the zero R and its *Failure as the error (errors.As finds it, and
// errors.Is matches its kind); a wait cut short gives ctx's error.
func (j *TypedJob[R]) Wait(ctx context.Context) (R, error) {
	var r R
	out, err := j.Job.Wait(ctx)
	if err != nil {
		return r, err
	}
	err = out.Decode(&r)
	return r, err
}

// TypedCall is a call whose job's result is an R: JobType.Call's, or a typed composite's.
type TypedCall[R any] struct {
	rt   *Runtime
	call Call
}

// Call returns the untyped call, for the untyped API (Queue.Put, Serial, AddCallback).
func (c TypedCall[R]) Call() Call { return c.call }

// Put puts the call in the named queue, as Queue.Put does, and returns its job typed. (The
// defaults of a JobType apply to JobType.Put only.)
func (c TypedCall[R]) Put(ctx context.Context, queue string, opts ...PutOption) (*TypedJob[R], error) {
	switch {
	case c.call.err != nil:
		return nil, fmt.Errorf("put: %w", c.call.err)
	case c.rt == nil:
		return nil, invalidf("put: a TypedCall made by neither a JobType nor a typed composite")
	}
	j, err := c.rt.Queue(queue).Put(ctx, c.call, opts...)
	if err != nil {
		return nil, err
	}
	return &TypedJob[R]{Job: j}, nil
}

// Result is the outcome of a job that a typed callback or postprocess receives: the job's
// value when it succeeded, else its failure.
type Result[R any] struct {
	// Job is the id of the job whose outcome this is (in the same queue).
	Job string
	// Value is its result, when it succeeded; the zero R when it failed.
	Value R
	// Failure is its failure; nil when it succeeded.
	Failure *Failure
}

// Err returns the failure as an error, or nil when the job succeeded.
func (r Result[R]) Err() error {
	if r.Failure == nil {
		return nil
	}
	return r.Failure
}

// resultOf decodes an outcome stored as JSON into a Result.
func resultOf[R any](id string, raw json.RawMessage, f *Failure) (Result[R], error) {
	r := Result[R]{Job: id, Failure: f}
	if f != nil {
		return r, nil
	}
	if err := json.Unmarshal(raw, &r.Value); err != nil {
		return r, invalidf("the result of %s: %w", id, err)
	}
	return r, nil
}

// CallbackType is a callback handler registered with RegisterCallback: it follows a job whose
// result is an R, and its own result is an R2.
type CallbackType[R, R2 any] struct {
	rt   *Runtime
	name string
	opts []CallbackOption
}

// RegisterCallback registers f under name as a typed callback: it gets the outcome of the job
// it is added to (CallbackType.Add) as a Result[R], whether that job succeeded or failed, and
// its R2 is its own job's result. opts are the defaults of every Add.
func RegisterCallback[R, R2 any](rt *Runtime, name string, f func(ctx context.Context, parent Result[R]) (R2, error), opts ...CallbackOption) (*CallbackType[R, R2], error) {
	if f == nil {
		return nil, invalidf("register callback %q: nil function", name)
	}
	h := func(ctx context.Context, call *Call) (any, error) {
		r, ok := actors.RunningFrom(ctx)
		if !ok || r.Parent == nil {
			return nil, invalidf("%q is a callback: it runs only added to a job (CallbackType.Add)", name)
		}
		if err := arity(call, 1); err != nil { // the parent's outcome, which the runtime appends
			return nil, err
		}
		res, err := resultOf[R](r.Parent.ID, r.Parent.Result, failureFrom(r.Parent.Failure))
		if err != nil {
			return nil, err
		}
		return result(f(ctx, res))
	}
	if err := rt.Handle(name, h); err != nil {
		return nil, err
	}
	return &CallbackType[R, R2]{rt: rt, name: name, opts: opts}, nil
}

// Name is the name the callback is registered under.
func (c *CallbackType[R, R2]) Name() string { return c.name }

// Add adds the callback to job, as Job.AddCallback does, with the CallbackType's default
// options and then opts, and returns the callback's job typed.
func (c *CallbackType[R, R2]) Add(ctx context.Context, job *TypedJob[R], opts ...CallbackOption) (*TypedJob[R2], error) {
	all := append(append(make([]CallbackOption, 0, len(c.opts)+len(opts)), c.opts...), opts...)
	cb, err := job.AddCallback(ctx, NewCall(c.name), all...)
	if err != nil {
		return nil, err
	}
	return &TypedJob[R2]{Job: cb}, nil
}

// PostprocessType is a postprocess registered with RegisterPostprocess: it receives the
// outcomes of a composite's parts, each a job whose result is an R, and its R2 is the
// composite's result.
type PostprocessType[R, R2 any] struct {
	rt   *Runtime
	name string
}

// RegisterPostprocess registers f under name as a typed postprocess: it gets the outcomes of
// its composite's parts, in order, as Result[R] values (a part that failed included), and its
// R2 is the composite's result. Build its composites with SerialOf and ParallelOf.
func RegisterPostprocess[R, R2 any](rt *Runtime, name string, f func(ctx context.Context, parts []Result[R]) (R2, error)) (*PostprocessType[R, R2], error) {
	if f == nil {
		return nil, invalidf("register postprocess %q: nil function", name)
	}
	h := func(ctx context.Context, call *Call) (any, error) {
		if len(call.Kwargs) > 0 {
			return nil, invalidf("%q takes no keyword arguments, the call has %d", name, len(call.Kwargs))
		}
		parts := make([]Result[R], len(call.Args))
		for i := range call.Args {
			var s SubJob
			if err := call.Arg(i, &s); err != nil {
				return nil, err
			}
			if s.ID == "" {
				return nil, invalidf("%q is a postprocess: argument %d is not a part's outcome", name, i)
			}
			r, err := resultOf[R](s.ID, s.Result, s.Failure)
			if err != nil {
				return nil, err
			}
			parts[i] = r
		}
		return result(f(ctx, parts))
	}
	if err := rt.Handle(name, h); err != nil {
		return nil, err
	}
	return &PostprocessType[R, R2]{rt: rt, name: name}, nil
}

// Name is the name the postprocess is registered under.
func (p *PostprocessType[R, R2]) Name() string { return p.name }

// SerialOf returns a composite (as Serial does) whose parts run one after another and whose
// postprocess post receives their outcomes: its result is post's R2.
func SerialOf[R, R2 any](post *PostprocessType[R, R2], parts ...TypedCall[R]) TypedCall[R2] {
	return typedComposite(Serial, post, parts)
}

// ParallelOf is SerialOf whose parts all run at once (as Parallel does).
func ParallelOf[R, R2 any](post *PostprocessType[R, R2], parts ...TypedCall[R]) TypedCall[R2] {
	return typedComposite(Parallel, post, parts)
}

func typedComposite[R, R2 any](kind func(...Call) Call, post *PostprocessType[R, R2], parts []TypedCall[R]) TypedCall[R2] {
	calls := make([]Call, 0, len(parts)+1)
	for _, p := range parts {
		calls = append(calls, p.call)
	}
	if post == nil {
		c := kind(calls...)
		if c.err == nil {
			c.err = fmt.Errorf("%w: a typed composite needs its postprocess", errComposite)
		}
		return TypedCall[R2]{call: c}
	}
	calls = append(calls, Postprocess(NewCall(post.name)))
	return TypedCall[R2]{rt: post.rt, call: kind(calls...)}
}
