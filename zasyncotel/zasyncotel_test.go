package zasyncotel_test

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/zasync/zasync/runtime"
	"github.com/zasync/zasync/zasyncotel"
	"github.com/zasync/zasync/zasynctest"
)

// One trace from the request to every job it caused: the put of a job, its run and commit,
// the wait for it; a sub-job put from inside the handler, a child of the run; a callback
// added by the program, and a failure recorded on its run's span.
func TestTraceFromPutToRunCallbacksAndSubJobs(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	k := zasynctest.New(t, runtime.Config{Tracer: zasyncotel.New(zasyncotel.WithTracerProvider(tp))})

	child, err := runtime.Register(k.Runtime, "child", func(ctx context.Context, n int) (int, error) {
		if n < 0 {
			return 0, errors.New("negative")
		}
		return n * 2, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	parent, err := runtime.Register(k.Runtime, "parent", func(ctx context.Context, n int) (int, error) {
		// A job put from inside a run continues the run's trace.
		if _, err := child.Put(ctx, runtime.DefaultQueue, n+1); err != nil {
			return 0, err
		}
		return n, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	report, err := runtime.RegisterCallback(k.Runtime, "report", func(ctx context.Context, r runtime.Result[int]) (int, error) {
		return r.Value, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	j, err := parent.Put(ctx, runtime.DefaultQueue, 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.Add(ctx, j); err != nil {
		t.Fatal(err)
	}
	bad, err := child.Put(ctx, runtime.DefaultQueue, -1)
	if err != nil {
		t.Fatal(err)
	}
	k.RunDue()
	if n, err := j.Wait(ctx); err != nil || n != 20 {
		t.Fatalf("parent: %d %v", n, err)
	}
	request.End()
	if rec, err := j.Info(ctx); err != nil || rec.Call.Meta["traceparent"] == "" {
		t.Fatalf("the stored call carries no trace context: %+v %v", rec, err)
	}

	ended := spans.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range ended {
		byName[s.Name()] = append(byName[s.Name()], s)
		if s.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Fatalf("span %s is in trace %s, not the request's", s.Name(), s.SpanContext().TraceID())
		}
	}
	for name, n := range map[string]int{"zasync.put default": 4, "zasync.run parent": 1, "zasync.run child": 2,
		"zasync.run report": 1, "zasync.commit": 4, "zasync.wait": 1} {
		if got := len(byName[name]); got != n {
			t.Fatalf("%d spans %q, want %d; all: %v", got, name, n, names(ended))
		}
	}
	spanOf := func(id trace.SpanID) sdktrace.ReadOnlySpan {
		for _, s := range ended {
			if s.SpanContext().SpanID() == id {
				return s
			}
		}
		return nil
	}
	// The parent's run is a child of its put, itself a child of the request.
	run := byName["zasync.run parent"][0]
	put := spanOf(run.Parent().SpanID())
	if put == nil || put.Name() != "zasync.put default" || put.Parent().SpanID() != request.SpanContext().SpanID() ||
		put.SpanKind() != trace.SpanKindProducer || run.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("the parent's run %v has parent %v", run, put)
	}
	// The sub-job's put is a child of that run, and its run a child of that put.
	var sub sdktrace.ReadOnlySpan
	for _, s := range byName["zasync.run child"] {
		if p := spanOf(s.Parent().SpanID()); p != nil && p.Parent().SpanID() == run.SpanContext().SpanID() {
			sub = s
		}
	}
	if sub == nil {
		t.Fatalf("no run of the child put from the parent's run")
	}
	// The failed child's run records its error.
	var failed bool
	for _, s := range byName["zasync.run child"] {
		for _, a := range s.Attributes() {
			if a.Key == zasyncotel.AttrJob && a.Value.AsString() == bad.String() && s.Status().Description == "negative" {
				failed = true
			}
		}
	}
	if !failed {
		t.Fatalf("the failed run's span does not record its error")
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}
