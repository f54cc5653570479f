package persistence

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxHandlerLen is the longest handler name accepted.
const MaxHandlerLen = 200

// Limits of a call as stored: its JSON, {"handler":…,"args":[…],"kwargs":{…}}, which is what
// every reader decodes. Validate checks that JSON, not each argument alone: the call's own
// object and its argument list add two levels to an argument's, and a callback's pair of
// calls one more (see CallbackChoice).
const (
	// MaxCallDepth is the deepest nesting of JSON arrays and objects in a stored call or
	// pair of calls, counting their own levels: an argument may nest two levels less (three
	// in a pair). It is far below encoding/json's own limit (10,000), so that whatever is
	// accepted is read back by every reader.
	MaxCallDepth = 1000
	// MaxCallSize is the most bytes of a stored call or pair of calls, arguments included:
	// a call travels with every claim of its job, so it is kept to what a claim can carry
	// many of. Put large data elsewhere and pass its key.
	MaxCallSize = 16 << 20
)

// SystemPrefix starts the names of handlers zasync itself runs (interrupt recovery, callback
// resumption, timeouts, composites). User handlers may not use it.
const SystemPrefix = "zasync."

// Handlers of the system jobs the store creates.
const (
	// HandlerHandleInterrupt is queued for a job found ACTIVE in a stopped or dead agent; its
	// Target is that job. It asks the job's retry policy what to do with the interruption.
	HandlerHandleInterrupt = SystemPrefix + "handleInterrupt"
	// HandlerResumeCallbacks is queued for a job found in CALLBACKS in a stopped or dead agent;
	// it runs the callbacks that did not finish, then completes the job.
	HandlerResumeCallbacks = SystemPrefix + "resumeCallbacks"
	// HandlerFail is handed out at claim time in place of a job whose begin_by deadline has
	// passed; running it completes its Target with a TimeoutError failure.
	HandlerFail = SystemPrefix + "fail"
)

// Call is what a job runs: a handler registered by name in every process that serves the
// queue, with positional and keyword arguments as JSON. No code travels with a call.
type Call struct {
	Handler string                     `json:"handler"`
	Args    []json.RawMessage          `json:"args,omitempty"`
	Kwargs  map[string]json.RawMessage `json:"kwargs,omitempty"`
	// Meta is metadata carried with the call, apart from its arguments: a trace context, a
	// request id. At most MaxMetaEntries entries, MaxMetaBytes in all; names not empty.
	Meta map[string]string `json:"meta,omitempty"`
}

// Limits of a call's metadata.
const (
	MaxMetaEntries = 32
	MaxMetaBytes   = 8 << 10 // names and values together
)

// Validate checks the handler name, that every argument is a JSON value, and the call as
// stored against MaxCallDepth and MaxCallSize.
func (c *Call) Validate() error {
	var e encoder // measures only
	return c.encode(&e)
}

// checkHandler checks the handler name.
func (c *Call) checkHandler() error {
	if c.Handler == "" {
		return invalidf("empty handler name")
	}
	if len(c.Handler) > MaxHandlerLen {
		return invalidf("handler name longer than %d characters", MaxHandlerLen)
	}
	if !utf8.ValidString(c.Handler) {
		return invalidf("handler name %q is not valid UTF-8", c.Handler)
	}
	if strings.IndexFunc(c.Handler, unicode.IsControl) >= 0 || strings.TrimSpace(c.Handler) != c.Handler {
		return invalidf("handler name %q has control characters or surrounding spaces", c.Handler)
	}
	return nil
}

// IsSystem reports whether the call runs one of zasync's own handlers.
func (c *Call) IsSystem() bool { return strings.HasPrefix(c.Handler, SystemPrefix) }

// String renders the call as handler(arg, …, key=value), for logs and monitoring.
func (c *Call) String() string {
	var b strings.Builder
	b.WriteString(c.Handler)
	b.WriteByte('(')
	for i, a := range c.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(a)
	}
	keys := make([]string, 0, len(c.Kwargs))
	for k := range c.Kwargs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 || len(c.Args) > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.Write(c.Kwargs[k])
	}
	b.WriteByte(')')
	return b.String()
}

// HandlerResumeOuter is the callback zasync adds to an inner job whose result an outer job
// waits for; its Target is the outer job, which it completes with the inner job's outcome.
const HandlerResumeOuter = SystemPrefix + "resumeOuter"
