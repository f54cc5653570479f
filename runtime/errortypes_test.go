package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// Every way a failure reaches a program gives an error that errors.As finds as a *Failure of
// this package (and as the store's *persistence.Failure), directly or wrapped, and that
// errors.Is still matches against its kind, ErrCancelled and registered errors; the control
// operations' *BadStatusError likewise. The other way, a failure or typed error of this
// package that a handler returns is stored exactly as the store's own would be.
func TestErrorTypesOnEveryPath(t *testing.T) {
	t.Parallel()
	if err := RegisterError(errNoMailbox); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	rt := newRuntime(t, Config{PollInterval: 20 * time.Millisecond})
	fail := func(context.Context) (int, error) { return 0, fmt.Errorf("send: %w", errNoMailbox) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(rt.Handle("fail", Func0(fail)))
	must(rt.Handle("slow", Func0(func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})))
	typed, err := Register(rt, "typed.fail", func(ctx context.Context, _ int) (int, error) { return fail(ctx) })
	must(err)
	fromCallback, fromPost, fromSubJob := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	cb, err := RegisterCallback(rt, "typed.callback", func(_ context.Context, r Result[int]) (int, error) {
		fromCallback <- r.Err()
		return 0, nil
	})
	must(err)
	post, err := RegisterPostprocess(rt, "typed.post", func(_ context.Context, parts []Result[int]) (int, error) {
		fromPost <- parts[0].Err()
		return 0, nil
	})
	must(err)
	must(rt.Handle("post", Func1(func(_ context.Context, s SubJob) (int, error) {
		if s.Failure == nil {
			fromSubJob <- nil
		} else {
			fromSubJob <- s.Failure
		}
		return 0, nil
	})))
	// Handlers that return what they were given, or a typed error of this package.
	must(rt.Handle("relay", Func1(func(ctx context.Context, ref string) (int, error) {
		j, err := rt.JobByRef(ref)
		if err != nil {
			return 0, err
		}
		out, err := j.Wait(ctx)
		if err != nil {
			return 0, err
		}
		return 0, out.Failure
	})))
	must(rt.Handle("relay.wrapped", Func1(func(ctx context.Context, ref string) (int, error) {
		j, _ := rt.JobByRef(ref)
		_, err := (&TypedJob[int]{Job: j}).Wait(ctx)
		return 0, fmt.Errorf("relay: %w", err)
	})))
	must(rt.Handle("timeout", Func0(func(context.Context) (int, error) {
		return 0, &TimeoutError{Run: true, Limit: time.Second}
	})))
	must(rt.Handle("badstatus", Func0(func(context.Context) (int, error) {
		return 0, &BadStatusError{Op: "relay", Status: StatusActive, Allowed: []Status{StatusNew}}
	})))
	must(rt.Handle("aborted", Func0(func(context.Context) (int, error) { return 0, &AbortedError{Interruptions: 3} })))
	sys, err := rt.ActorSystem()
	must(err)
	notified := make(chan *messages.JobCompleted, 1)
	listener := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*messages.JobCompleted); ok {
			notified <- m
		}
	}))
	start(t, rt)

	q := rt.Queue(DefaultQueue)
	put := func(call Call, opts ...PutOption) *Job {
		t.Helper()
		j, err := q.Put(ctx, call, append([]PutOption{Retry(NeverRetry)}, opts...)...)
		must(err)
		return j
	}
	wait := func(j *Job) *Outcome {
		t.Helper()
		out, err := j.Wait(ctx)
		must(err)
		return out
	}

	failed := put(NewCall("fail"), Notify(listener))
	out := wait(failed)
	_, typedErr := func() (int, error) {
		tj, err := typed.Put(ctx, DefaultQueue, 1, Retry(NeverRetry))
		must(err)
		_, err = cb.Add(ctx, tj)
		must(err)
		return tj.Wait(ctx)
	}()
	must(func() error { _, err := SerialOf(post, typed.Call(1)).Put(ctx, DefaultQueue); return err }())
	put(Serial(NewCall("fail"), Postprocess(NewCall("post"))))
	byRef, err := rt.JobByRef(failed.String())
	must(err)
	rec, err := byRef.Info(ctx)
	must(err)
	summary, err := failed.Summary(ctx)
	must(err)
	completed := await(t, ctx, notified, "the notification")
	cancelled := put(NewCall("fail"), BeginIn(time.Hour))
	if _, err := cancelled.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	timedOut := wait(put(NewCall("slow"), Timeout(50*time.Millisecond)))

	sent := []error{errNoMailbox}
	for _, tc := range []struct {
		path string
		err  error
		kind string
		is   []error
	}{
		{"Outcome.Failure", out.Failure, "errors.errorString", sent},
		{"Outcome.Decode", out.Decode(new(int)), "errors.errorString", sent},
		{"TypedJob.Wait", typedErr, "errors.errorString", sent},
		{"a typed callback's Result", await(t, ctx, fromCallback, "the callback"), "errors.errorString", sent},
		{"a typed postprocess's Result", await(t, ctx, fromPost, "the typed postprocess"), "errors.errorString", sent},
		{"a postprocess's SubJob", await(t, ctx, fromSubJob, "the postprocess"), "errors.errorString", sent},
		{"JobByRef's JobRecord.Failure", rec.Failure, "errors.errorString", sent},
		{"JobSummary.Failure", summary.Failure, "errors.errorString", sent},
		{"messages.JobCompleted.Failure", completed.Failure, "errors.errorString", sent},
		{"a cancelled job's Wait", wait(cancelled).Failure, "CancelledError", []error{ErrCancelled}},
		{"a run timed out", timedOut.Failure, "TimeoutError", []error{&TimeoutError{}, &persistence.TimeoutError{}}},
	} {
		if tc.err == nil {
			t.Errorf("%s: no failure", tc.path)
			continue
		}
		for _, err := range []error{tc.err, fmt.Errorf("outer: %w", tc.err)} {
			var f *Failure
			if !errors.As(err, &f) || f.Type != tc.kind {
				t.Errorf("%s: errors.As(%v) into a *Failure: %+v, want kind %s", tc.path, err, f, tc.kind)
				continue
			}
			var pf *persistence.Failure
			if !errors.As(err, &pf) || pf.Type != f.Type || pf.Message != f.Message {
				t.Errorf("%s: errors.As(%v) into a *persistence.Failure: %+v", tc.path, err, pf)
			}
			for _, target := range tc.is {
				if !errors.Is(err, target) {
					t.Errorf("%s: %v does not match %v", tc.path, err, target)
				}
			}
			if wantCancelled := tc.kind == "CancelledError"; errors.Is(err, ErrCancelled) != wantCancelled {
				t.Errorf("%s: errors.Is(%v, ErrCancelled) = %t", tc.path, err, !wantCancelled)
			}
			if !IsKind(err, tc.kind) {
				t.Errorf("%s: IsKind(%v, %q) is false", tc.path, err, tc.kind)
			}
		}
	}
	if completed.Job != failed.ref || completed.Status != persistence.StatusCompleted {
		t.Errorf("notification %+v, want job %s completed", completed, failed)
	}

	// A control operation's refusal is a *BadStatusError of this package, and of the store's.
	_, cancelErr := failed.Cancel(ctx)
	_, retryErr := rt.Retry(ctx, cancelled.Ref())
	_, retryPendingErr := put(NewCall("fail"), BeginIn(time.Hour)).Retry(ctx)
	for path, err := range map[string]error{"Cancel of a completed job": cancelErr, "Retry of a pending job": retryPendingErr} {
		for _, err := range []error{err, fmt.Errorf("outer: %w", err)} {
			var bad *BadStatusError
			var pbad *persistence.BadStatusError
			if !errors.As(err, &bad) || !errors.As(err, &pbad) || !errors.Is(err, ErrBadStatus) ||
				bad.Op != pbad.Op || uint8(bad.Status) != uint8(pbad.Status) || len(bad.Allowed) != len(pbad.Allowed) {
				t.Errorf("%s: %v: %+v, %+v, want a BadStatusError of each package", path, err, bad, pbad)
			}
		}
	}
	if retryErr != nil {
		t.Errorf("Retry of a cancelled job: %v", retryErr)
	}

	// The other way: what a handler returns is stored as the store's own error would be.
	inner := failed.String()
	for _, tc := range []struct {
		call Call
		want *persistence.Failure
	}{
		{NewCall("relay", inner), rec.Failure.stored()},
		{NewCall("relay.wrapped", inner), persistence.NewFailure(fmt.Errorf("relay: %w", rec.Failure.stored()), "")},
		{NewCall("timeout"), persistence.NewFailure(&persistence.TimeoutError{Run: true, Limit: time.Second}, "")},
		{NewCall("badstatus"), persistence.NewFailure(&persistence.BadStatusError{Op: "relay", Status: persistence.StatusActive,
			Allowed: []persistence.Status{persistence.StatusNew}}, "")},
		{NewCall("aborted"), persistence.NewFailure(&persistence.AbortedError{Interruptions: 3}, "")},
	} {
		got := wait(put(tc.call)).Failure
		if got == nil {
			t.Errorf("%s succeeded", tc.call)
			continue
		}
		g, w := *got.stored(), *tc.want
		if tc.call.Handler != "relay" { // the relayed failure keeps its stack; the others have the handler's
			g.Stack, w.Stack = "", ""
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s stored %+v, want %+v", tc.call, g, w)
		}
	}
}
