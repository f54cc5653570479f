package runtime

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// HandlerFunc runs the call of a job. Its result is any value that marshals to JSON; it
// becomes the job's result. A returned error becomes the job's Failure, after its retry
// policy has had its say (errors wrapping ErrInvalid are not retried by the built-in
// policies). Returning a *Job (one already put in a queue) makes this job wait for that one
// and take its result.
//
// A callback's call has its parent's outcome after its own arguments (as zc.async calls a job
// with its args plus the result): the result when the parent succeeded, the *Failure (as
// JSON) when it failed. ctx is cancelled when the job is
// interrupted (a clean stop); JobFrom(ctx) returns the running job.
type HandlerFunc func(ctx context.Context, call *Call) (any, error)

// Func0 adapts a function of no arguments to a HandlerFunc; a call with arguments fails
// with ErrInvalid.
func Func0[R any](f func(ctx context.Context) (R, error)) HandlerFunc {
	return func(ctx context.Context, call *Call) (any, error) {
		if err := arity(call, 0); err != nil {
			return nil, err
		}
		return result(f(ctx))
	}
}

// Func1 adapts a function of one argument to a HandlerFunc: the call's argument is decoded
// into A. Another number of arguments, keyword arguments, or an argument that does not
// decode into A fail the job with ErrInvalid.
func Func1[A, R any](f func(ctx context.Context, a A) (R, error)) HandlerFunc {
	return func(ctx context.Context, call *Call) (any, error) {
		var a A
		if err := decode(call, 1, &a); err != nil {
			return nil, err
		}
		return result(f(ctx, a))
	}
}

// Func2 adapts a function of two arguments to a HandlerFunc, as Func1 does:
//
//	rt.Handle("add", runtime.Func2(func(ctx context.Context, a, b int) (int, error) {
//		return a + b, nil
//	}))
func Func2[A, B, R any](f func(ctx context.Context, a A, b B) (R, error)) HandlerFunc {
	return func(ctx context.Context, call *Call) (any, error) {
		var (
			a A
			b B
		)
		if err := decode(call, 2, &a, &b); err != nil {
			return nil, err
		}
		return result(f(ctx, a, b))
	}
}

// Func3 adapts a function of three arguments to a HandlerFunc, as Func1 does.
func Func3[A, B, C, R any](f func(ctx context.Context, a A, b B, c C) (R, error)) HandlerFunc {
	return func(ctx context.Context, call *Call) (any, error) {
		var (
			a A
			b B
			c C
		)
		if err := decode(call, 3, &a, &b, &c); err != nil {
			return nil, err
		}
		return result(f(ctx, a, b, c))
	}
}

// arity checks that call has exactly n positional arguments and no keyword ones: a typed
// function has nowhere to put a keyword argument, and dropping it silently would hide a
// mistake in the caller.
func arity(call *Call, n int) error {
	if len(call.Args) != n {
		return invalidf("%q takes %d arguments, the call has %d", call.Handler, n, len(call.Args))
	}
	if len(call.Kwargs) > 0 {
		return invalidf("%q takes no keyword arguments, the call has %d", call.Handler, len(call.Kwargs))
	}
	return nil
}

// decode checks the arity and decodes each positional argument into its pointer.
func decode(call *Call, n int, ptrs ...any) error {
	if err := arity(call, n); err != nil {
		return err
	}
	for i, p := range ptrs {
		if err := call.Arg(i, p); err != nil {
			return err
		}
	}
	return nil
}

// result drops the value of a failed call, so that a partial result never reaches the
// job's record.
func result[R any](r R, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Handle registers h under name, in this process. Every process that serves a queue must
// register the handlers its jobs name. The name may not be empty, start with "zasync."
// (zasync's own jobs) or be registered already: each gives ErrInvalid. Handle may be called
// while the runtime runs.
//
// opts are the handler's defaults: every put of a call of name through this runtime
// (Queue.Put, PutMany, a JobType's) applies them before its own options, so that a put need
// not repeat a retry policy, say. (A put by a process that did not register the handler, the
// command's say, does not know them.)
func (rt *Runtime) Handle(name string, h HandlerFunc, opts ...PutOption) error {
	if err := checkHandlerName("handle", name); err != nil {
		return err
	}
	if h == nil {
		return invalidf("handle %q: nil handler", name)
	}
	if err := (&putSettings{}).apply(opts); err != nil {
		return fmt.Errorf("handle %q: %w", name, err)
	}
	if err := rt.register("handle", name, h); err != nil {
		return err
	}
	if len(opts) > 0 {
		rt.mu.Lock()
		if rt.defaults == nil {
			rt.defaults = map[string][]PutOption{}
		}
		rt.defaults[name] = slices.Clone(opts)
		rt.hasDefaults.Store(true)
		rt.mu.Unlock()
	}
	return nil
}

// putDefaults returns the default put options Handle was given for handler; nil if none.
func (rt *Runtime) putDefaults(handler string) []PutOption {
	if !rt.hasDefaults.Load() {
		return nil
	}
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.defaults[handler]
}

// checkHandlerName checks a name a handler is registered under; what names the call in the
// error.
func checkHandlerName(what, name string) error {
	if name == "" {
		return invalidf("%s: empty handler name", what)
	}
	if strings.HasPrefix(name, persistence.SystemPrefix) {
		return invalidf("%s %q: names starting with %q are reserved for zasync", what, name, persistence.SystemPrefix)
	}
	return (&persistence.Call{Handler: name}).Validate()
}

// register adds h under name unless the name is taken.
func (rt *Runtime) register(what, name string, h HandlerFunc) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, ok := rt.handlers[name]; ok {
		return invalidf("%s %q: a handler is already registered under that name", what, name)
	}
	rt.handlers[name] = h
	return nil
}

// registered reports whether a handler is registered under name.
func (rt *Runtime) registered(name string) bool {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	_, ok := rt.handlers[name]
	return ok
}

// Handler returns the handler registered under name, adapted for the actors that run jobs:
// it hands the handler its call, makes JobFrom work in its context, and turns a returned
// *Job into a wait for that job. For actors.HandlerRemind, zasync's own, it returns the
// delivery of a reminder. It is how the runtime serves as actors.Handlers; programs have no
// use for it.
func (rt *Runtime) Handler(name string) (actors.Handler, bool) {
	if name == actors.HandlerRemind {
		return rt.deliverReminder, true
	}
	rt.mu.RLock()
	h, ok := rt.handlers[name]
	if ok {
		h = rt.wrap(h)
	}
	rt.mu.RUnlock()
	if !ok {
		return nil, false
	}
	tracer := rt.cfg.Tracer
	return func(ctx context.Context, pc *persistence.Call) (any, error) {
		ctx = context.WithValue(ctx, runtimeKey{}, rt)
		call := callFrom(pc)
		var res any
		var err error
		if tracer != nil {
			ref, attempt := Ref{}, int64(0)
			if r, ok := actors.RunningFrom(ctx); ok && r.Job != nil {
				ref, attempt = Ref(r.Job.Ref), r.Job.Attempt
			}
			var end func(error)
			ctx, end = tracer.Run(ctx, ref, attempt, call)
			defer func() {
				if r := recover(); r != nil {
					end(fmt.Errorf("panic: %v", r))
					panic(r) // the actors recover it, as a PanicError
				}
			}()
			res, err = h(ctx, call)
			end(err)
		} else {
			res, err = h(ctx, call)
		}
		if err != nil {
			return nil, err
		}
		if j, ok := res.(*Job); ok {
			if j == nil {
				return nil, invalidf("%q returned a nil *Job", pc.Handler)
			}
			return &actors.Inner{Ref: j.ref}, nil
		}
		return res, nil
	}, true
}

var _ actors.Handlers = (*Runtime)(nil)

// runtimeKey carries the Runtime in a handler's context, for JobFrom.
type runtimeKey struct{}
