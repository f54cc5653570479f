package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

type email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

type sent struct {
	ID    string `json:"id"`
	Bytes int    `json:"bytes"`
}

// typedWorld registers a typed "send" handler (which fails for a recipient "nobody"), a
// typed callback and a typed postprocess, on a started runtime.
type typedWorld struct {
	rt     *Runtime
	send   *JobType[email, sent]
	audit  *CallbackType[sent, string]
	total  *PostprocessType[sent, int]
	square *JobType[int, int]
}

func newTypedWorld(t *testing.T) *typedWorld {
	t.Helper()
	w := &typedWorld{}
	var err error
	w.rt = startedRuntime(t, 4, func(rt *Runtime) {
		w.send, err = Register(rt, "email.send", func(_ context.Context, e email) (sent, error) {
			if e.To == "nobody" {
				return sent{}, errors.New("no such mailbox")
			}
			return sent{ID: "m-" + e.To, Bytes: len(e.Subject)}, nil
		}, Retry(NeverRetry))
		if err != nil {
			t.Fatal(err)
		}
		w.audit, err = RegisterCallback(rt, "email.audit", func(_ context.Context, r Result[sent]) (string, error) {
			if r.Failure != nil {
				return "failed " + r.Job + ": " + r.Failure.Message, nil
			}
			return "sent " + r.Value.ID, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		w.total, err = RegisterPostprocess(rt, "email.total", func(_ context.Context, parts []Result[sent]) (int, error) {
			n := 0
			for _, p := range parts {
				if p.Err() != nil {
					n -= 1000
					continue
				}
				n += p.Value.Bytes
			}
			return n, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		w.square, err = Register(rt, "square", func(_ context.Context, n int) (int, error) { return n * n, nil })
		if err != nil {
			t.Fatal(err)
		}
	})
	return w
}

// A typed job is put with its argument struct, stored as one JSON object, and waited for as
// its result type; a failure comes back as a *Failure; the JobType's default options apply
// to its puts, before their own.
func TestTypedJobs(t *testing.T) {
	t.Parallel()
	w := newTypedWorld(t)
	ctx := testCtx(t)
	j, err := w.send.Put(ctx, DefaultQueue, email{To: "ann", Subject: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Wait(ctx)
	if err != nil || got != (sent{ID: "m-ann", Bytes: 5}) {
		t.Fatalf("Wait: %+v %v", got, err)
	}
	rec, err := j.Info(ctx)
	if err != nil || rec.Call.Handler != "email.send" || len(rec.Call.Args) != 1 || string(rec.Call.Args[0]) != `{"to":"ann","subject":"hello"}` {
		t.Fatalf("the stored call: %+v %v, want one JSON object", rec.Call, err)
	}
	if rec.RetryPolicy != string(NeverRetry.Name()) {
		t.Fatalf("the JobType's default retry policy: %q, want %q", rec.RetryPolicy, NeverRetry.Name())
	}

	bad, err := w.send.Put(ctx, DefaultQueue, email{To: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Wait(ctx)
	var f *Failure
	if !errors.As(err, &f) || f.Message != "no such mailbox" {
		t.Fatalf("a failed typed job's Wait: %v, want its *Failure", err)
	}

	// A put's own option comes after the defaults.
	later, err := w.send.Put(ctx, DefaultQueue, email{To: "bob"}, BeginIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := later.Info(ctx); err != nil || time.Until(rec.BeginAfter) < 50*time.Minute {
		t.Fatalf("a put's own BeginIn: %+v %v", rec, err)
	}

	many, err := w.square.PutMany(ctx, DefaultQueue, []int{2, 3, 4})
	if err != nil || len(many) != 3 {
		t.Fatalf("PutMany: %v %v", many, err)
	}
	for i, m := range many {
		if n, err := m.Wait(ctx); err != nil || n != (i+2)*(i+2) {
			t.Fatalf("square %d: %d %v", i+2, n, err)
		}
	}
	if n, err := w.square.Job(many[1].Ref()).Wait(ctx); err != nil || n != 9 {
		t.Fatalf("a JobType's handle of an existing job: %d %v", n, err)
	}
}

// A typed callback receives its job's outcome as a Result, success or failure alike.
func TestTypedCallbacks(t *testing.T) {
	t.Parallel()
	w := newTypedWorld(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		to, want string
	}{{"cy", "sent m-cy"}, {"nobody", "failed "}} {
		j, err := w.send.Put(ctx, DefaultQueue, email{To: tc.to})
		if err != nil {
			t.Fatal(err)
		}
		cb, err := w.audit.Add(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cb.Wait(ctx)
		if err != nil || !strings.HasPrefix(got, tc.want) {
			t.Fatalf("callback of a job to %s: %q %v, want %q…", tc.to, got, err, tc.want)
		}
		if tc.to == "nobody" && got != "failed "+j.ID()+": no such mailbox" {
			t.Fatalf("callback of the failed job: %q", got)
		}
	}
}

// Typed composites: the postprocess receives every part's outcome as a Result, a failed
// part's included, in order; serial and parallel alike, nested too.
func TestTypedComposites(t *testing.T) {
	t.Parallel()
	w := newTypedWorld(t)
	ctx := testCtx(t)
	serial, err := SerialOf(w.total, w.send.Call(email{To: "a", Subject: "xx"}), w.send.Call(email{To: "b", Subject: "yyy"})).Put(ctx, DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := serial.Wait(ctx); err != nil || n != 5 {
		t.Fatalf("serial total: %d %v, want 5", n, err)
	}
	parallel, err := ParallelOf(w.total, w.send.Call(email{To: "a", Subject: "x"}), w.send.Call(email{To: "nobody"})).Put(ctx, DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := parallel.Wait(ctx); err != nil || n != 1-1000 {
		t.Fatalf("parallel total with a failed part: %d %v, want -999", n, err)
	}
}

// Bad registrations and bad calls are refused with ErrInvalid: a nil function, a name taken,
// a typed handler called with the wrong arguments, a typed callback run as a plain job, a
// typed composite without its postprocess.
func TestTypedRefusals(t *testing.T) {
	t.Parallel()
	w := newTypedWorld(t)
	ctx := testCtx(t)
	if _, err := Register[int, int](w.rt, "x", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Register of nil: %v", err)
	}
	if _, err := Register(w.rt, "square", func(context.Context, int) (int, error) { return 0, nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Register of a name taken: %v", err)
	}
	if _, err := RegisterCallback[int, int](w.rt, "y", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RegisterCallback of nil: %v", err)
	}
	if _, err := RegisterPostprocess[int, int](w.rt, "z", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RegisterPostprocess of nil: %v", err)
	}
	q := w.rt.Queue(DefaultQueue)
	for _, call := range []Call{
		NewCall("email.send", "not an object"),
		NewCall("email.send", email{}, email{}),
		NewCall("email.send", email{}).Kwarg("k", 1),
		NewCall("email.audit", json.RawMessage(`{"id":"m"}`)),
		NewCall("email.total", 1),
	} {
		j, err := q.Put(ctx, call)
		if err != nil {
			t.Fatal(err)
		}
		out, err := j.Wait(ctx)
		if err != nil || !errors.Is(out.Failure, ErrInvalid) {
			t.Fatalf("%s: %+v %v, want a failure of kind invalid", call, out, err)
		}
	}
	if _, err := SerialOf[sent, int](nil, w.send.Call(email{})).Put(ctx, DefaultQueue); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a typed composite without a postprocess: %v", err)
	}
	if _, err := (TypedCall[int]{}).Put(ctx, DefaultQueue); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a zero TypedCall's Put: %v", err)
	}
}

var errNoMailbox = errors.New("runtime test: no such mailbox")

// A program's registered sentinel survives storage: the handler returns it wrapped, and the
// failure that another runtime reads back matches it with errors.Is.
func TestRegisteredErrorKeptThroughStorage(t *testing.T) {
	t.Parallel()
	if err := RegisterError(errNoMailbox); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := sharedRedis(t, "errkind")
	ctx := testCtx(t)
	server := newRuntime(t, Config{Redis: rdb, Prefix: prefix, UUID: "errkind-server",
		Queues:       []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 1}}}},
		PollInterval: 20 * time.Millisecond})
	send, err := Register(server, "send", func(_ context.Context, to string) (string, error) {
		return "", fmt.Errorf("delivering to %s: %w", to, errNoMailbox)
	}, Retry(NeverRetry))
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Stop(context.Background()) })
	j, err := send.Put(ctx, DefaultQueue, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Wait(ctx); !errors.Is(err, errNoMailbox) {
		t.Fatalf("the failure: %v, want it to match the registered error", err)
	}
	client := newRuntime(t, Config{Redis: rdb, Prefix: prefix, UUID: "errkind-client"})
	out, err := client.Job(j.Ref()).Wait(ctx)
	if err != nil || !errors.Is(out.Failure, errNoMailbox) || errors.Is(out.Failure, ErrInvalid) {
		t.Fatalf("the failure read by another runtime: %+v %v", out, err)
	}
}
