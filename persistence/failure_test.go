package persistence

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFailureFields(t *testing.T) {
	t.Parallel()
	f := NewFailure(errors.New("value error"), "main.go:12\nrunner.go:40")
	if f.Type != "errors.errorString" || f.Message != "value error" || f.Stack != "main.go:12\nrunner.go:40" {
		t.Fatalf("want {errors.errorString, value error, stack}, got %+v", f)
	}
	if f := NewFailure(errors.New("x"), ""); f.Stack != "" {
		t.Fatalf("want an empty stack kept empty, got %q", f.Stack)
	}
	var err error = f
	if err.Error() != "errors.errorString: value error" {
		t.Fatalf("want Error() = type: message, got %q", err.Error())
	}
}

func TestFailureKinds(t *testing.T) {
	t.Parallel()
	_, numErr := strconv.Atoi("x")
	for _, tc := range []struct {
		err  error
		kind string
	}{
		{&TimeoutError{}, "TimeoutError"},
		{&TimeoutError{BeginAfter: time.Unix(0, 0), BeginBy: time.Hour}, "TimeoutError"},
		{fmt.Errorf("job x: %w", &TimeoutError{}), "TimeoutError"},
		{&AbortedError{Interruptions: 10}, "AbortedError"},
		{ErrConflict, "ConflictError"},
		{fmt.Errorf("commit: %w", ErrConflict), "ConflictError"},
		{fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", ErrConflict)), "ConflictError"},
		{ErrReassigned, "ReassignedError"},
		{ErrInvalid, "ValueError"},
		{ErrUnavailable, "UnavailableError"},
		{&BadStatusError{Op: "start", Status: StatusActive}, "BadStatusError"},
		{fmt.Errorf("x: %w", &BadStatusError{}), "BadStatusError"},
		{numErr, "strconv.NumError"},
		{fmt.Errorf("parsing: %w", numErr), "strconv.NumError"},
		{errors.New("plain"), "errors.errorString"},
		{fmt.Errorf("no wrap %d", 1), "errors.errorString"},
		{&json.SyntaxError{}, "json.SyntaxError"},
		{customErr{}, "persistence.customErr"},
	} {
		if got := NewFailure(tc.err, "").Type; got != tc.kind {
			t.Fatalf("kind of %T (%v): want %q, got %q", tc.err, tc.err, tc.kind, got)
		}
	}
}

type customErr struct{}

func (customErr) Error() string { return "custom" }

func TestFailureTruncation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		unit string
	}{
		{"ascii", "a"},
		{"two bytes", "é"},
		{"three bytes", "€"},
		{"four bytes", "😀"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			exact := strings.Repeat(tc.unit, MaxFailureText)
			f := NewFailure(errors.New(exact), exact)
			if f.Message != exact || f.Stack != exact {
				t.Fatalf("a text of exactly %d characters must be kept whole (got %d and %d characters)",
					MaxFailureText, utf8.RuneCountInString(f.Message), utf8.RuneCountInString(f.Stack))
			}
			long := strings.Repeat(tc.unit, MaxFailureText+1)
			want := exact + TruncationMarker
			f = NewFailure(errors.New(long), long+long)
			if f.Message != want {
				t.Fatalf("message of %d characters: want %d characters plus the marker, got %d characters ending %q",
					MaxFailureText+1, MaxFailureText, utf8.RuneCountInString(f.Message), f.Message[max(0, len(f.Message)-30):])
			}
			if f.Stack != want {
				t.Fatalf("stack of %d characters: want %d characters plus the marker, got %d characters",
					2*MaxFailureText+2, MaxFailureText, utf8.RuneCountInString(f.Stack))
			}
			if !utf8.ValidString(f.Message) || !utf8.ValidString(f.Stack) {
				t.Fatalf("truncated texts must stay valid UTF-8")
			}
		})
	}
	// Mixed widths: the cut falls after the 10000th character, whatever its width.
	mixed := strings.Repeat("a", MaxFailureText-1) + "😀" + "tail"
	f := NewFailure(errors.New(mixed), "")
	if want := strings.Repeat("a", MaxFailureText-1) + "😀" + TruncationMarker; f.Message != want {
		t.Fatalf("want the cut after the emoji, got a message ending %q", f.Message[len(f.Message)-30:])
	}
	if TruncationMarker != "\n[...TRUNCATED...]" || MaxFailureText != 10000 {
		t.Fatalf("want zc.async's marker and limit, got %q and %d", TruncationMarker, MaxFailureText)
	}
}

// A Failure given to NewFailure is copied, and keeps its stack unless it had none.
func TestFailureOfFailure(t *testing.T) {
	t.Parallel()
	orig := &Failure{Type: "ConflictError", Message: "m"}
	f := NewFailure(orig, "here")
	if f == orig {
		t.Fatalf("want a copy, got the same pointer")
	}
	if f.Type != "ConflictError" || f.Message != "m" || f.Stack != "here" {
		t.Fatalf("want the failure with the given stack filled in, got %+v", f)
	}
	if orig.Stack != "" {
		t.Fatalf("the original must not change, got stack %q", orig.Stack)
	}
	g := NewFailure(f, "elsewhere")
	if g.Stack != "here" {
		t.Fatalf("want an existing stack kept, got %q", g.Stack)
	}
}

func TestFailureIs(t *testing.T) {
	t.Parallel()
	f := NewFailure(fmt.Errorf("commit: %w", ErrConflict), "stack")
	if !errors.Is(f, ErrConflict) {
		t.Fatalf("want errors.Is(failure, ErrConflict)")
	}
	if errors.Is(f, ErrReassigned) || errors.Is(f, ErrUnavailable) {
		t.Fatalf("a ConflictError failure must match only ErrConflict")
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back Failure
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(back, *f) {
		t.Fatalf("want the failure unchanged by a JSON round trip, got %+v from %+v", back, *f)
	}
	if !errors.Is(&back, ErrConflict) {
		t.Fatalf("want errors.Is(failure, ErrConflict) after a JSON round trip")
	}
	if !errors.Is(fmt.Errorf("job failed: %w", &back), ErrConflict) {
		t.Fatalf("want errors.Is through a wrapped failure")
	}
	if !errors.Is(&Failure{Type: "BadStatusError"}, ErrBadStatus) {
		t.Fatalf("want a stored BadStatusError failure to match ErrBadStatus")
	}
	if errors.Is(&Failure{Type: "errors.errorString", Message: "zasync: transaction conflict"}, ErrConflict) {
		t.Fatalf("a failure matches by kind, not by message")
	}
	if !strings.Contains(string(b), `"type":"ConflictError"`) {
		t.Fatalf("want the kind stored as \"type\", got %s", b)
	}
}

func TestFailureIsKind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		kind string
		want bool
	}{
		{NewFailure(&TimeoutError{}, ""), "TimeoutError", true},
		{&Failure{Type: "AbortedError"}, "AbortedError", true},
		{&Failure{Type: "AbortedError"}, "TimeoutError", false},
		{&TimeoutError{}, "TimeoutError", true},
		{fmt.Errorf("x: %w", &AbortedError{Interruptions: 10}), "AbortedError", true},
		{fmt.Errorf("x: %w", NewFailure(&AbortedError{}, "")), "AbortedError", true},
		{errors.Join(errors.New("a"), ErrConflict), "ConflictError", true},
		{errors.Join(errors.New("a"), errors.New("b")), "ConflictError", false},
		{ErrConflict, "ConflictError", true},
		{&BadStatusError{}, "BadStatusError", true},
		{errors.New("TimeoutError"), "TimeoutError", false},
		{nil, "TimeoutError", false},
	} {
		if got := IsKind(tc.err, tc.kind); got != tc.want {
			t.Fatalf("IsKind(%v, %s): want %v, got %v", tc.err, tc.kind, tc.want, got)
		}
	}
}

func TestFailureErrorTexts(t *testing.T) {
	t.Parallel()
	if got := (&TimeoutError{}).Error(); got != "zasync: job timed out" {
		t.Fatalf("zero TimeoutError: want %q, got %q", "zasync: job timed out", got)
	}
	te := &TimeoutError{BeginAfter: time.Date(2006, 8, 10, 16, 0, 0, 0, time.UTC), BeginBy: time.Hour}
	if got := te.Error(); !strings.Contains(got, "2006-08-10T17:00:00Z") || !strings.Contains(got, "1h0m0s") {
		t.Fatalf("TimeoutError: want the deadline and begin_by in %q", got)
	}
	if got := (&AbortedError{Interruptions: 10}).Error(); !strings.Contains(got, "10 interruptions") {
		t.Fatalf("AbortedError: want the count in %q", got)
	}
}

func TestWrappedStoredFailureKeepsKind(t *testing.T) {
	stored := &Failure{Type: "ConflictError", Message: "zasync: transaction conflict"}
	f := NewFailure(fmt.Errorf("inner job failed: %w", stored), "")
	if f.Type != "ConflictError" {
		t.Fatalf("kind of a wrapped stored failure: %q, want ConflictError", f.Type)
	}
	if !errors.Is(f, ErrConflict) {
		t.Fatalf("errors.Is(%v, ErrConflict) is false", f)
	}
}

func TestFailureTextIsValidUTF8(t *testing.T) {
	f := NewFailure(errors.New("bad byte \xda here"), "stack \xff")
	if !utf8.ValidString(f.Message) || !utf8.ValidString(f.Stack) || !strings.Contains(f.Message, "bad byte") {
		t.Fatalf("failure text not made valid UTF-8: %q %q", f.Message, f.Stack)
	}
}

func TestFailureKindThroughMultipleWraps(t *testing.T) {
	err := fmt.Errorf("%w: result: %w", ErrInvalid, errors.New("json: unsupported type"))
	if f := NewFailure(err, ""); f.Type != "ValueError" {
		t.Fatalf("kind of a doubly wrapped ErrInvalid: %q, want ValueError", f.Type)
	}
	if f := NewFailure(errors.Join(errors.New("a"), ErrConflict), ""); f.Type != "ConflictError" {
		t.Fatalf("kind of a joined ErrConflict: %q, want ConflictError", f.Type)
	}
}

// A job that succeeded has a nil *Failure: asked whether it is of a kind, it says no, rather
// than panicking (a poll once asked it of every job taken from its agent).
func TestNilFailureMatchesNothing(t *testing.T) {
	var f *Failure
	if errors.Is(f, ErrCancelled) || errors.Is(f, ErrConflict) {
		t.Fatal("a nil failure matched a kind")
	}
}

// A registered sentinel keeps its identity through storage: a failure made from an error
// wrapping it lists its name and matches it after a JSON round trip; one not registered does
// not; bad registrations are refused and change nothing.
func TestRegisteredErrorsSurviveStorage(t *testing.T) {
	errMailbox := errors.New("test: no such mailbox")
	errOther := errors.New("test: other")
	errLater := errors.New("test: registered later")
	if err := RegisterError(errMailbox); err != nil {
		t.Fatal(err)
	}
	if err := RegisterError(errMailbox); err != nil {
		t.Fatalf("registering again: %v", err)
	}
	f := NewFailure(fmt.Errorf("sending: %w", errors.Join(errOther, errMailbox)), "")
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back Failure
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(&back, errMailbox) || !slices.Equal(back.Kinds, []string{"test: no such mailbox"}) {
		t.Fatalf("the failure read back: %+v, want it to match the registered error", back)
	}
	if errors.Is(&back, errOther) || errors.Is(&back, ErrConflict) {
		t.Fatalf("the failure read back matches an error that was not registered, or another kind")
	}
	// Registered after the failure was stored: not listed, so not matched.
	if err := RegisterError(errLater); err != nil {
		t.Fatal(err)
	}
	if errors.Is(&back, errLater) {
		t.Fatal("a failure stored before its error was registered matches it")
	}
	for _, bad := range []error{nil, errors.New(""), errors.New("test: no such mailbox"), uncomparable{[]int{1}}} {
		if err := RegisterError(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("RegisterError(%#v): %v, want ErrInvalid", bad, err)
		}
	}
	if errors.Is(&back, uncomparable{}) {
		t.Fatal("a failure matches an error that cannot be compared")
	}
	var none *Failure
	if errors.Is(none, errMailbox) {
		t.Fatal("a nil failure matches")
	}
}

type uncomparable struct{ x []int }

func (u uncomparable) Error() string { return "test: uncomparable" }
