package runtime

import (
	"context"
	"maps"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// What a program hooks into the jobs of a runtime: metadata carried with calls, middleware
// around every handler run, and a Tracer told of every put, wait, run and commit.

// Limits of a call's metadata (Call.Meta).
const (
	MaxMetaEntries = 32
	MaxMetaBytes   = 8 << 10
)

// WithMeta returns a copy of c with the metadata entry name set to value: data carried with
// the call apart from its arguments (a request id, a trace context), which the handler reads
// with MetaFrom or Call.Meta. c itself is left unchanged. A composite's parts, its
// postprocess, and the parts of a composite part, get the composite's entries they do not set
// themselves. Put refuses an empty name, more than MaxMetaEntries entries or MaxMetaBytes.
func (c Call) WithMeta(name, value string) Call {
	m := make(map[string]string, len(c.Meta)+1)
	maps.Copy(m, c.Meta)
	m[name] = value
	c.Meta = m
	return c
}

// Meta sets the metadata entry name to value on every call of a put (a call's own entry of
// the same name wins).
func Meta(name, value string) PutOption {
	return func(s *putSettings) {
		if s.meta == nil {
			s.meta = map[string]string{}
		}
		s.meta[name] = value
	}
}

// MetaFrom returns the metadata of the call the running handler runs, from its context (nil
// when there is none, or outside a handler). The map is the handler's own copy.
func MetaFrom(ctx context.Context) map[string]string {
	r, ok := actors.RunningFrom(ctx)
	if !ok || r.Job == nil {
		return nil
	}
	return maps.Clone(r.Job.Call.Meta)
}

// inherit returns child's metadata with parent's entries it does not set (nil when both are
// empty); child's map is not changed.
func inherit(parent, child map[string]string) map[string]string {
	if len(parent) == 0 {
		return child
	}
	m := make(map[string]string, len(parent)+len(child))
	maps.Copy(m, parent)
	maps.Copy(m, child)
	return m
}

// Middleware wraps a handler: it may look at the call and its context, change them, or time
// and log the run, then call next (or not: its error is the run's). Runtime.Use installs it.
type Middleware func(next HandlerFunc) HandlerFunc

// Use adds middleware around every handler this runtime runs (typed ones, callbacks and
// postprocesses included; not zasync's own steps), the first given outermost. It applies to
// the runs that start after it; call it before Start.
func (rt *Runtime) Use(mw ...Middleware) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, m := range mw {
		if m != nil {
			rt.middleware = append(rt.middleware, m)
		}
	}
}

// wrap puts h inside the runtime's middleware; rt.mu is held for reading.
func (rt *Runtime) wrap(h HandlerFunc) HandlerFunc {
	for i := len(rt.middleware) - 1; i >= 0; i-- {
		h = rt.middleware[i](h)
	}
	return h
}

// Tracer is told of the steps of the jobs a runtime puts, waits for, runs and commits, to
// trace them: package zasyncotel is one, over OpenTelemetry. Each method starts a step and
// returns the function that ends it, called once with its outcome. What ties the steps of a
// job together across processes is its call's metadata, which Put may add to.
type Tracer interface {
	// Put starts a put into queue of calls: a Put's or PutMany's, a composite (whose parts
	// and postprocess get the entries it adds), a callback, a sub-job. It may set entries
	// in each call's Meta, a map of its own.
	Put(ctx context.Context, queue string, calls []*Call) (end func(jobs []Ref, err error))
	// Wait starts a wait for job (Job.Wait, TypedJob.Wait).
	Wait(ctx context.Context, job Ref) (end func(err error))
	// Run starts a run of job (its attempt, its call with its metadata); the handler and
	// the middleware run with the context it returns.
	Run(ctx context.Context, job Ref, attempt int64, call *Call) (context.Context, func(err error))
	// Commit starts the commit of a run's outcome, with the run's context (not Run's).
	Commit(ctx context.Context, job Ref, call *Call) (end func(err error))
}

// tracePut tells the tracer of a put, giving it calls whose Meta maps are their own, to add
// to; it returns the end of the step, a no-op without a tracer.
func (rt *Runtime) tracePut(ctx context.Context, queue string, calls []*Call) func([]Ref, error) {
	if rt.cfg.Tracer == nil {
		return noPutEnd
	}
	for _, c := range calls {
		c.Meta = maps.Clone(c.Meta)
		if c.Meta == nil {
			c.Meta = map[string]string{}
		}
	}
	return rt.cfg.Tracer.Put(ctx, queue, calls)
}

func noPutEnd([]Ref, error) {}

// traceWait tells the tracer of a wait.
func (rt *Runtime) traceWait(ctx context.Context, job Ref) func(error) {
	if rt.cfg.Tracer == nil {
		return noEnd
	}
	return rt.cfg.Tracer.Wait(ctx, job)
}

func noEnd(error) {}

// commitHook is the actors' hook of a commit, from the tracer; nil without one.
func (rt *Runtime) commitHook() func(context.Context, *persistence.Job) func(error) {
	t := rt.cfg.Tracer
	if t == nil {
		return nil
	}
	return func(ctx context.Context, j *persistence.Job) func(error) {
		return t.Commit(ctx, Ref(j.Ref), callFrom(&j.Call))
	}
}
