package runtime

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/zasync/zasync/persistence"
)

// Call is what a job runs: the name of a registered handler and its arguments as JSON.
// Build one with NewCall (and Kwarg); a handler receives its job's call and decodes the
// arguments with Arg and KwargValue.
type Call struct {
	// Handler is the name the handler was registered under with Runtime.Handle.
	Handler string
	// Args are the positional arguments, each a JSON value.
	Args []json.RawMessage
	// Kwargs are the keyword arguments by name, each a JSON value.
	Kwargs map[string]json.RawMessage
	// Meta is metadata carried with the call apart from its arguments (WithMeta, the Meta
	// put option): a request id, a trace context. Typed handlers take it too.
	Meta map[string]string

	// err is the first argument that did not marshal: kept so that NewCall and Kwarg can be
	// used inline, and reported by Put (or AddCallback) before anything is written.
	err error

	// A composite (Serial, Parallel) keeps its parts until Put creates them as sub-jobs.
	composite   *compositeParts
	postprocess bool // marked by Postprocess, for Serial and Parallel
}

// NewCall returns a call of handler with args, each marshalled to JSON. A json.RawMessage is
// taken as it is (copied, not re-encoded): Put checks it, and stores it compacted, as
// json.Marshal would. An argument that does not marshal, or a json.RawMessage that is not
// JSON, is reported by Put.
func NewCall(handler string, args ...any) Call {
	c := Call{Handler: handler}
	if len(args) > 0 {
		c.Args = make([]json.RawMessage, len(args))
	}
	for i, a := range args {
		b, err := marshal(a)
		if err != nil {
			c.err = invalidf("argument %d of %q: %w", i, handler, err)
			continue
		}
		c.Args[i] = b
	}
	return c
}

// Kwarg returns a copy of c with the keyword argument name set to v, marshalled to JSON (a
// json.RawMessage as NewCall takes it). c itself is left unchanged, so a call can serve as a
// template. A value that does not marshal is reported by Put.
func (c Call) Kwarg(name string, v any) Call {
	b, err := marshal(v)
	if err != nil {
		if c.err == nil {
			c.err = invalidf("keyword argument %q of %q: %w", name, c.Handler, err)
		}
		return c
	}
	kw := make(map[string]json.RawMessage, len(c.Kwargs)+1)
	maps.Copy(kw, c.Kwargs)
	kw[name] = b
	c.Kwargs = kw
	return c
}

// marshal is json.Marshal, except for JSON given as bytes: json.Marshal would scan a
// json.RawMessage to check and compact it, which a put does anyway, in the same pass as
// it encodes the call. A copy is kept, so that the caller may reuse its buffer.
func marshal(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if raw == nil {
			return json.RawMessage("null"), nil // as json.Marshal writes a nil one
		}
		return slices.Clone(raw), nil
	}
	return json.Marshal(v)
}

// Arg decodes positional argument i into v (a pointer, as for json.Unmarshal). A missing
// argument or one that does not decode into v gives an error wrapping ErrInvalid, which
// the built-in retry policies do not retry: returned from a handler, it fails the job.
func (c *Call) Arg(i int, v any) error {
	if i < 0 || i >= len(c.Args) {
		return invalidf("%q has %d positional arguments, no argument %d", c.Handler, len(c.Args), i)
	}
	if err := json.Unmarshal(c.Args[i], v); err != nil {
		return invalidf("argument %d of %q: %w", i, c.Handler, err)
	}
	return nil
}

// KwargValue decodes keyword argument name into v (a pointer). It reports false, and leaves
// v alone, when the call has no such argument; a value that does not decode into v gives an
// error wrapping ErrInvalid.
func (c *Call) KwargValue(name string, v any) (bool, error) {
	raw, ok := c.Kwargs[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, invalidf("keyword argument %q of %q: %w", name, c.Handler, err)
	}
	return true, nil
}

// String renders the call as handler(arg, …, key=value), as logs and monitoring show it.
func (c Call) String() string {
	pc := persistence.Call{Handler: c.Handler, Args: c.Args, Kwargs: c.Kwargs}
	return pc.String()
}

// persistent returns the call as stored, or the error NewCall or Kwarg kept, or why it is
// not a valid call. It is for the calls a program gives: the names of zasync's own handlers
// ("zasync." and anything after it) are refused, as Handle refuses them, since no process
// runs such a job as the program means it (a system job without its target would hold its
// agent's slot for good).
func (c Call) persistent() (persistence.Call, error) {
	pc, err := c.forPut()
	if err == nil {
		err = pc.Validate()
	}
	if err != nil {
		return persistence.Call{}, err
	}
	return pc, nil
}

// forPut is persistent for the calls Put and PutMany hand straight to the store, which checks
// their JSON, size and depth as it encodes them, in the same pass: only what the store does
// not check (the error NewCall or Kwarg kept, the reserved names) is checked here, so that a
// large argument is read once, not twice.
func (c Call) forPut() (persistence.Call, error) {
	if strings.HasPrefix(c.Handler, persistence.SystemPrefix) {
		return persistence.Call{}, invalidf("handler name %q: names starting with %q are reserved for zasync", c.Handler, persistence.SystemPrefix)
	}
	if c.err != nil {
		return persistence.Call{}, c.err
	}
	return persistence.Call{Handler: c.Handler, Args: c.Args, Kwargs: c.Kwargs, Meta: c.Meta}, nil
}

// system is persistent for a call of zasync's own (a composite, its default postprocess),
// which may have a reserved name.
func (c Call) system() (persistence.Call, error) {
	if c.err != nil {
		return persistence.Call{}, c.err
	}
	pc := persistence.Call{Handler: c.Handler, Args: c.Args, Kwargs: c.Kwargs, Meta: c.Meta}
	if err := pc.Validate(); err != nil {
		return persistence.Call{}, err
	}
	return pc, nil
}

// callFrom returns a handler's view of a stored call. The arguments are copied, so that a
// handler that changes its Call cannot change the record its run holds.
func callFrom(pc *persistence.Call) *Call {
	return &Call{Handler: pc.Handler, Args: slices.Clone(pc.Args), Kwargs: maps.Clone(pc.Kwargs), Meta: maps.Clone(pc.Meta)}
}
