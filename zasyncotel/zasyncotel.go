// Package zasyncotel traces zasync's jobs with OpenTelemetry. Give a runtime its Tracer:
//
//	rt, err := runtime.New(runtime.Config{Tracer: zasyncotel.New(), …})
//
// Each put, wait, handler run and commit is a span. A put writes its trace context into the
// metadata of the calls it stores (W3C traceparent by default), so that the run of the job, in
// whatever process, continues the trace of the code that put it: the run and commit spans are
// children of the put span, and a job put, a callback added or a sub-job appended from inside
// a handler is a child of that handler's run. It lives apart from package runtime, so that a
// program that does not trace does not link this package.
package zasyncotel

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/zasync/zasync/runtime"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/zasync/zasync/zasyncotel"

// Attribute keys of the spans.
const (
	AttrQueue   = attribute.Key("zasync.queue")
	AttrJob     = attribute.Key("zasync.job")
	AttrHandler = attribute.Key("zasync.handler")
	AttrAttempt = attribute.Key("zasync.attempt")
	AttrJobs    = attribute.Key("zasync.jobs") // how many jobs a put stores
)

// Tracer traces a runtime's jobs: a runtime.Tracer over OpenTelemetry.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

var _ runtime.Tracer = (*Tracer)(nil)

// Option configures New.
type Option func(*settings)

type settings struct {
	provider trace.TracerProvider
	prop     propagation.TextMapPropagator
}

// WithTracerProvider makes the spans with p. Default: otel.GetTracerProvider(), the global one.
func WithTracerProvider(p trace.TracerProvider) Option {
	return func(s *settings) { s.provider = p }
}

// WithPropagator carries the trace context in the calls' metadata with p. Default: W3C trace
// context (traceparent, tracestate). Every process of an installation must use the same.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(s *settings) { s.prop = p }
}

// New returns a Tracer for Config.Tracer.
func New(opts ...Option) *Tracer {
	s := settings{}
	for _, o := range opts {
		o(&s)
	}
	if s.provider == nil {
		s.provider = otel.GetTracerProvider()
	}
	if s.prop == nil {
		s.prop = propagation.TraceContext{}
	}
	return &Tracer{tracer: s.provider.Tracer(ScopeName), prop: s.prop}
}

// Put starts a producer span "zasync.put QUEUE" and writes its context into every call's
// metadata.
func (t *Tracer) Put(ctx context.Context, queue string, calls []*runtime.Call) func([]runtime.Ref, error) {
	attrs := []attribute.KeyValue{AttrQueue.String(queue), AttrJobs.Int(len(calls))}
	if len(calls) == 1 {
		attrs = append(attrs, AttrHandler.String(calls[0].Handler))
	}
	ctx, span := t.tracer.Start(ctx, "zasync.put "+queue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	for _, c := range calls {
		t.prop.Inject(ctx, propagation.MapCarrier(c.Meta))
	}
	return func(jobs []runtime.Ref, err error) {
		if len(jobs) == 1 {
			span.SetAttributes(AttrJob.String(jobs[0].String()))
		}
		end(span, err)
	}
}

// Wait starts a span "zasync.wait" for the wait of job.
func (t *Tracer) Wait(ctx context.Context, job runtime.Ref) func(error) {
	_, span := t.tracer.Start(ctx, "zasync.wait", trace.WithAttributes(AttrJob.String(job.String()), AttrQueue.String(job.Queue)))
	return func(err error) { end(span, err) }
}

// Run starts a consumer span "zasync.run HANDLER", a child of the put whose trace context
// the call carries; the handler runs in its context.
func (t *Tracer) Run(ctx context.Context, job runtime.Ref, attempt int64, call *runtime.Call) (context.Context, func(error)) {
	ctx = t.prop.Extract(ctx, propagation.MapCarrier(call.Meta))
	ctx, span := t.tracer.Start(ctx, "zasync.run "+call.Handler, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(AttrJob.String(job.String()), AttrQueue.String(job.Queue), AttrHandler.String(call.Handler),
			AttrAttempt.Int64(attempt)))
	return ctx, func(err error) { end(span, err) }
}

// Commit starts a span "zasync.commit", a child of the put whose trace context the call
// carries.
func (t *Tracer) Commit(ctx context.Context, job runtime.Ref, call *runtime.Call) func(error) {
	ctx = t.prop.Extract(ctx, propagation.MapCarrier(call.Meta))
	_, span := t.tracer.Start(ctx, "zasync.commit", trace.WithAttributes(AttrJob.String(job.String()),
		AttrQueue.String(job.Queue), AttrHandler.String(call.Handler)))
	return func(err error) { end(span, err) }
}

// end records err on span, if any, and ends it.
func end(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
