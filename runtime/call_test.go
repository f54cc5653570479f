package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

type point struct {
	X, Y int
}

func TestNewCall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		call    Call
		want    string // the call as String renders it
		wantErr string // in the error of persistent(); "" means none
	}{
		{"no arguments", NewCall("ping"), "ping()", ""},
		{"positional", NewCall("add", 40, 2), "add(40, 2)", ""},
		{"kinds", NewCall("f", "s", 1.5, true, nil, []int{1}, point{1, 2}), `f("s", 1.5, true, null, [1], {"X":1,"Y":2})`, ""},
		{"raw JSON taken as is", NewCall("f", json.RawMessage(`{"a": 1}`)), `f({"a": 1})`, ""},
		{"nil raw JSON", NewCall("f", json.RawMessage(nil)).Kwarg("k", json.RawMessage(nil)), `f(null, k=null)`, ""},
		{"keyword", NewCall("f", 1).Kwarg("b", "x").Kwarg("a", 2), `f(1, a=2, b="x")`, ""},
		{"keyword replaced", NewCall("f").Kwarg("a", 1).Kwarg("a", 2), `f(a=2)`, ""},
		{"unmarshalable argument", NewCall("f", 1, make(chan int)), "", `argument 1 of "f"`},
		{"unmarshalable keyword", NewCall("f").Kwarg("k", func() {}), "", `keyword argument "k" of "f"`},
		{"first error kept", NewCall("f", make(chan int)).Kwarg("k", func() {}), "", `argument 0 of "f"`},
		{"invalid raw JSON", NewCall("f", json.RawMessage(`{`)), "", `argument 0 of "f"`},
		{"empty handler", NewCall(""), "", "empty handler name"},
		{"handler with spaces around", NewCall(" f"), "", "surrounding spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pc, err := tt.call.persistent()
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("persistent: %v, want ErrInvalid mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("persistent: %v", err)
			}
			if got := tt.call.String(); got != tt.want {
				t.Errorf("String = %s, want %s", got, tt.want)
			}
			if got := pc.String(); got != tt.want {
				t.Errorf("stored call %s, want %s", got, tt.want)
			}
		})
	}
}

// JSON given as bytes is checked and compacted when it is put, not when the call is made, and
// is stored as json.Marshal would store it; the call keeps a copy, so the caller may reuse
// its buffer at once.
func TestRawJSONStoredCompacted(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	buf := []byte(`{ "html": "<b>&</b>", "n": [1, 2] }`)
	call := NewCall("f", json.RawMessage(buf)).Kwarg("k", json.RawMessage(buf))
	copy(buf, "nonsense, not JSON at all")
	job, err := rt.Queue("default").Put(t.Context(), call)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	rec, err := job.Info(t.Context())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	const want = `{"html":"\u003cb\u003e\u0026\u003c/b\u003e","n":[1,2]}`
	if got := rec.Call.String(); got != "f("+want+", k="+want+")" {
		t.Fatalf("stored call %s, want f(%s, k=%s)", got, want, want)
	}
	if _, err := rt.Queue("default").Put(t.Context(), NewCall("f", json.RawMessage(`{"a":`))); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), `argument 0 of "f" is not JSON`) {
		t.Fatalf("Put of raw bytes that are not JSON: %v, want ErrInvalid naming the argument", err)
	}
}

// Kwarg leaves the call it is called on unchanged, so a call can serve as a template.
func TestKwargCopies(t *testing.T) {
	t.Parallel()
	base := NewCall("f").Kwarg("a", 1)
	b := base.Kwarg("b", 2)
	c := base.Kwarg("c", 3)
	if base.String() != "f(a=1)" || b.String() != "f(a=1, b=2)" || c.String() != "f(a=1, c=3)" {
		t.Fatalf("base %s, b %s, c %s", base.String(), b.String(), c.String())
	}
}

func TestArgAndKwargValue(t *testing.T) {
	t.Parallel()
	call := NewCall("f", 7, "seven", point{1, 2}).Kwarg("n", 3).Kwarg("p", point{3, 4})

	var n int
	var s string
	var p point
	if err := call.Arg(0, &n); err != nil || n != 7 {
		t.Errorf("Arg(0) = %d, %v", n, err)
	}
	if err := call.Arg(1, &s); err != nil || s != "seven" {
		t.Errorf("Arg(1) = %q, %v", s, err)
	}
	if err := call.Arg(2, &p); err != nil || p != (point{1, 2}) {
		t.Errorf("Arg(2) = %v, %v", p, err)
	}
	if ok, err := call.KwargValue("p", &p); !ok || err != nil || p != (point{3, 4}) {
		t.Errorf("KwargValue(p) = %v, %v, %v", p, ok, err)
	}
	n = -1
	if ok, err := call.KwargValue("missing", &n); ok || err != nil || n != -1 {
		t.Errorf("KwargValue(missing) = %v, %v and changed v to %d", ok, err, n)
	}

	errTests := []struct {
		name string
		err  error
		want string
	}{
		{"index past the end", call.Arg(3, &n), "has 3 positional arguments, no argument 3"},
		{"negative index", call.Arg(-1, &n), "no argument -1"},
		{"type mismatch", call.Arg(1, &n), `argument 1 of "f"`},
		{"not a pointer", call.Arg(0, n), `argument 0 of "f"`},
		{"keyword type mismatch", func() error { _, err := call.KwargValue("n", &s); return err }(), `keyword argument "n" of "f"`},
	}
	for _, tt := range errTests {
		if !errors.Is(tt.err, ErrInvalid) || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrInvalid mentioning %q", tt.name, tt.err, tt.want)
		}
	}
	var typeErr *json.UnmarshalTypeError
	if !errors.As(call.Arg(1, &n), &typeErr) {
		t.Error("a type mismatch does not wrap the *json.UnmarshalTypeError")
	}
}

// A handler gets a copy of the stored call: changing it cannot change the job's record.
func TestCallFromCopies(t *testing.T) {
	t.Parallel()
	pc, err := NewCall("f", 1).Kwarg("k", 2).persistent()
	if err != nil {
		t.Fatal(err)
	}
	c := callFrom(&pc)
	c.Args[0] = json.RawMessage("99")
	c.Kwargs["k"] = json.RawMessage("99")
	if pc.String() != "f(1, k=2)" {
		t.Fatalf("the stored call changed: %s", pc.String())
	}
}

func TestTypedAdapters(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	zero := Func0(func(context.Context) (string, error) { return "zero", nil })
	one := Func1(func(_ context.Context, p point) (int, error) { return p.X + p.Y, nil })
	add := Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	join := Func3(func(_ context.Context, a string, b []string, c bool) (string, error) {
		if c {
			return strings.Join(b, a), nil
		}
		return "", nil
	})
	failing := Func1(func(_ context.Context, a int) (int, error) { return a, boom })

	tests := []struct {
		name    string
		h       HandlerFunc
		call    Call
		want    any
		wantErr error
		errText string
	}{
		{"Func0", zero, NewCall("zero"), "zero", nil, ""},
		{"Func1", one, NewCall("one", point{2, 3}), 5, nil, ""},
		{"Func2", add, NewCall("add", 40, 2), 42, nil, ""},
		{"Func3", join, NewCall("join", "-", []string{"a", "b"}, true), "a-b", nil, ""},
		{"Func0 given one", zero, NewCall("zero", 1), nil, ErrInvalid, `"zero" takes 0 arguments, the call has 1`},
		{"Func2 given one", add, NewCall("add", 1), nil, ErrInvalid, `"add" takes 2 arguments, the call has 1`},
		{"Func2 given three", add, NewCall("add", 1, 2, 3), nil, ErrInvalid, `"add" takes 2 arguments, the call has 3`},
		{"Func2 given a keyword", add, NewCall("add", 1, 2).Kwarg("c", 3), nil, ErrInvalid, "takes no keyword arguments"},
		{"Func2 given a string", add, NewCall("add", 1, "2"), nil, ErrInvalid, `argument 1 of "add"`},
		{"Func2 given a float", add, NewCall("add", 1.5, 2), nil, ErrInvalid, `argument 0 of "add"`},
		{"Func3 given a bad second", join, NewCall("join", "-", "ab", true), nil, ErrInvalid, `argument 1 of "join"`},
		{"Func1 given a bad struct", one, NewCall("one", []int{1}), nil, ErrInvalid, `argument 0 of "one"`},
		{"the function's error, result dropped", failing, NewCall("failing", 7), nil, boom, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pc, err := tt.call.persistent()
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.h(t.Context(), callFrom(&pc))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err %v, want %v mentioning %q", err, tt.wantErr, tt.errText)
				}
				if got != nil {
					t.Fatalf("result %v returned with an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
}

// A decode error fails the job at once: the built-in policies do not retry ErrInvalid.
func TestDecodeErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	pc, _ := NewCall("add", "x", 2).persistent()
	_, err := Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil })(t.Context(), callFrom(&pc))
	for _, p := range []RetryPolicy{RetryCommonFourTimes, RetryCommonForever, NeverRetry} {
		if d := p.JobError(err, RetryCounts{}); d.Retries() {
			t.Errorf("%s retries a decode error: %v", p.Name(), d)
		}
	}
}

func TestHandle(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	noop := func(context.Context, *Call) (any, error) { return nil, nil }
	if err := rt.Handle("taken", noop); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	tests := []struct {
		name    string
		handler string
		h       HandlerFunc
		wantErr string // "" means accepted
	}{
		{"plain", "send_mail", noop, ""},
		{"dotted", "billing.charge", noop, ""},
		{"unicode", "café", noop, ""},
		{"empty", "", noop, "empty handler name"},
		{"system prefix", "zasync.mine", noop, "reserved for zasync"},
		{"system handler", persistence.HandlerHandleInterrupt, noop, "reserved for zasync"},
		{"duplicate", "taken", noop, "already registered"},
		{"surrounding spaces", " padded", noop, "surrounding spaces"},
		{"control character", "a\nb", noop, "control characters"},
		{"too long", strings.Repeat("h", persistence.MaxHandlerLen+1), noop, "longer than"},
		{"nil handler", "nil_handler", nil, "nil handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rt.Handle(tt.handler, tt.h)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Handle(%q): %v", tt.handler, err)
				}
				if _, ok := rt.Handler(tt.handler); !ok {
					t.Fatalf("Handler(%q) not found after Handle", tt.handler)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Handle(%q): %v, want ErrInvalid mentioning %q", tt.handler, err, tt.wantErr)
			}
		})
	}
	if _, ok := rt.Handler("never_registered"); ok {
		t.Error("Handler found a name never registered")
	}
}

// The runtime serves as the actors' handler registry: the adapter hands the handler a *Call,
// passes results through, and turns a returned *Job into an inner-job wait.
func TestHandlerAdapter(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	inner := rt.Job(Ref{Queue: "default", ID: "inner-1"})
	boom := errors.New("boom")
	handlers := map[string]HandlerFunc{
		"add": Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil }),
		"delegate": func(_ context.Context, c *Call) (any, error) {
			return inner, nil
		},
		"delegate_typed": Func0(func(context.Context) (*Job, error) { return inner, nil }),
		"nil_job":        Func0(func(context.Context) (*Job, error) { return nil, nil }),
		"fails":          Func0(func(context.Context) (any, error) { return "partial", boom }),
		"sees_kwargs": func(_ context.Context, c *Call) (any, error) {
			var v string
			_, err := c.KwargValue("k", &v)
			return v, err
		},
	}
	for name, h := range handlers {
		if err := rt.Handle(name, h); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		call    Call
		want    any
		wantErr error
	}{
		{"a value", NewCall("add", 1, 2), 3, nil},
		{"keyword arguments reach the handler", NewCall("sees_kwargs").Kwarg("k", "v"), "v", nil},
		{"a returned job", NewCall("delegate"), &actors.Inner{Ref: persistence.Ref(inner.Ref())}, nil},
		{"a returned job, typed", NewCall("delegate_typed"), &actors.Inner{Ref: persistence.Ref(inner.Ref())}, nil},
		{"a nil job", NewCall("nil_job"), nil, ErrInvalid},
		{"an error", NewCall("fails"), nil, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, ok := rt.Handler(tt.call.Handler)
			if !ok {
				t.Fatalf("Handler(%s) not found", tt.call.Handler)
			}
			pc, err := tt.call.persistent()
			if err != nil {
				t.Fatal(err)
			}
			got, err := h(t.Context(), &pc)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != nil {
					t.Fatalf("= %v, %v; want nil, %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("= %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
}
