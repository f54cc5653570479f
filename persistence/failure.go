package persistence

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxFailureText is how many characters of a failure's message and of its stack are kept.
const MaxFailureText = 10000

// TruncationMarker ends a failure text that was cut at MaxFailureText characters.
const TruncationMarker = "\n[...TRUNCATED...]"

// Failure is a job's error as stored: its kind, its message and the stack where it happened,
// as plain text (nothing live is kept). It is an error, and errors.Is(f, ErrConflict) and the
// like still hold after it has been read back from storage, by kind name.
type Failure struct {
	Type    string `json:"type"`            // the error's kind, e.g. "TimeoutError" or "strconv.NumError"
	Message string `json:"message"`         // the error's text
	Stack   string `json:"stack,omitempty"` // where it happened, if known
	// Kinds are the names of the registered errors (RegisterError) the error matched with
	// errors.Is when it was stored, so that errors.Is still matches them once read back.
	Kinds []string `json:"kinds,omitempty"`
}

// NewFailure describes err, with stack (which may be empty) as the place it happened. Message
// and stack are each cut at MaxFailureText characters, with TruncationMarker appended.
func NewFailure(err error, stack string) *Failure {
	if f, ok := storedFailure(err); ok {
		c := *f
		if stack != "" && c.Stack == "" {
			c.Stack = truncate(stack)
		}
		return &c
	}
	return &Failure{Type: kindOf(err), Message: truncate(err.Error()), Stack: truncate(stack), Kinds: registeredKinds(err)}
}

func (f *Failure) Error() string { return f.Type + ": " + f.Message }

// As fills a target of another package's type that stands for Failure (see SetAs).
func (f *Failure) As(target any) bool { return asForeign(f, target) }

// storedFailure returns err when it is a *Failure, or another package's type that stands for
// one (its As fills a *Failure: see SetAs), so that a failure a handler received and returns
// is stored as it was. Only err itself is looked at: a wrapped failure is stored with the
// wrapping's text, as any wrapped error is.
func storedFailure(err error) (*Failure, bool) {
	if f, ok := err.(*Failure); ok {
		return f, true
	}
	if a, ok := err.(interface{ As(any) bool }); ok {
		var f *Failure
		if a.As(&f) && f != nil {
			return f, true
		}
	}
	return nil, false
}

// FailureType reports the failure's kind, so that a stored failure passed on wrapped (a
// handler returning an inner job's failure) keeps it.
func (f *Failure) FailureType() string { return f.Type }

// Is matches sentinels and typed errors of the same kind, so a Failure read back from storage
// still answers errors.Is(f, ErrConflict). A nil *Failure (a job that succeeded) matches
// nothing.
func (f *Failure) Is(target error) bool {
	if f == nil {
		return false
	}
	if t, ok := target.(typer); ok && t.FailureType() == f.Type {
		return true
	}
	if len(f.Kinds) == 0 {
		return false
	}
	name, ok := registeredName(target)
	return ok && slices.Contains(f.Kinds, name)
}

// kindOf names an error's kind: the FailureType of the first error in the chain (depth first,
// through joined and multiply wrapped errors) that has one, else the Go type of the first error
// that is not a plain wrapper.
func kindOf(err error) string {
	if k := typedKind(err); k != "" {
		return k
	}
	for e := err; e != nil; {
		name := fmt.Sprintf("%T", e)
		u, ok := e.(interface{ Unwrap() error })
		switch name {
		case "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError", "persistence.permanentError":
			if !ok {
				if m, ok := e.(interface{ Unwrap() []error }); ok && len(m.Unwrap()) > 0 {
					e = m.Unwrap()[0]
					continue
				}
			}
		default:
			return strings.TrimPrefix(name, "*")
		}
		if !ok {
			return strings.TrimPrefix(name, "*")
		}
		e = u.Unwrap()
	}
	return "error"
}

// typedKind returns the FailureType of the first error in err's tree that has one.
func typedKind(err error) string {
	switch e := err.(type) {
	case nil:
		return ""
	case typer:
		return e.FailureType()
	case interface{ Unwrap() error }:
		return typedKind(e.Unwrap())
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			if k := typedKind(x); k != "" {
				return k
			}
		}
	}
	return ""
}

// truncate makes s valid UTF-8 (it is stored as JSON, which would change invalid bytes
// anyway) and cuts it at MaxFailureText characters.
func truncate(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= MaxFailureText {
		return s
	}
	n, i := 0, 0
	for i = range s {
		if n == MaxFailureText {
			break
		}
		n++
	}
	return s[:i] + TruncationMarker
}
