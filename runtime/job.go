package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// Ref names a job: its queue and its id. Its String form, "queue/id", is what JobByRef reads.
// Every job of a queue, its callbacks and a composite's sub-jobs included, lives with the
// queue, so jobs that refer to each other keep only ids: In makes the ref of another.
type Ref struct {
	// Queue is the name of the job's queue.
	Queue string `json:"queue"`
	// ID is the job's id, unique in its queue.
	ID string `json:"id"`
}

// String renders the ref as "queue/id", the form JobByRef reads.
func (r Ref) String() string { return persistence.Ref(r).String() }

// In returns the ref of job id in the same queue as r.
func (r Ref) In(id string) Ref { return Ref{Queue: r.Queue, ID: id} }

// Validate checks both parts: each a name of 1 to 100 ASCII letters, digits, '.', '_' and
// '-'. A bad one gives ErrInvalid.
func (r Ref) Validate() error { return persistence.Ref(r).Validate() }

// Status is where a job stands in its life:
// NEW → PENDING → ASSIGNED → ACTIVE → CALLBACKS → COMPLETED, and a job never leaves COMPLETED.
// A rescheduled or interrupted job goes from ASSIGNED or ACTIVE back to PENDING. Statuses
// compare in that order: s >= StatusCallbacks means the job's outcome is stored.
type Status uint8

// The statuses, in the order of a job's life. Their values are those stored.
const (
	StatusNew       Status = iota // created, in no queue (a callback not yet run)
	StatusPending                 // waiting in its queue
	StatusAssigned                // claimed by an agent, not started
	StatusActive                  // running, or waiting on an inner job
	StatusCallbacks               // result stored, callbacks running
	StatusCompleted               // result stored and callbacks done; final
)

// String names the status in lower case ("pending", "completed"), as the command and the
// HTTP API show it.
func (s Status) String() string { return persistence.Status(s).String() }

// Job is a handle on a job: its runtime and its Ref. Getting one does no I/O; its methods
// read and change the stored job.
type Job struct {
	rt  *Runtime
	ref persistence.Ref
	put putOutcome // what the put that returned it learnt (unique.go)
}

// Job returns a handle on the job ref names.
func (rt *Runtime) Job(ref Ref) *Job { return rt.job(persistence.Ref(ref)) }

// job is Job for the ref of a record.
func (rt *Runtime) job(ref persistence.Ref) *Job { return &Job{rt: rt, ref: ref} }

// JobByRef returns a handle on the job named by s, in the "queue/id" form of Ref.String.
// A malformed s gives ErrInvalid; whether the job exists is known at the first read.
func (rt *Runtime) JobByRef(s string) (*Job, error) {
	ref, err := persistence.ParseRef(s)
	if err != nil {
		return nil, err
	}
	return rt.job(ref), nil
}

// ID returns the job's id, unique in its queue.
func (j *Job) ID() string { return j.ref.ID }

// Queue returns the queue the job belongs to (with its callbacks and sub-jobs).
func (j *Job) Queue() *Queue { return j.rt.Queue(j.ref.Queue) }

// Ref returns the job's queue and id.
func (j *Job) Ref() Ref { return Ref(j.ref) }

// String returns the job's ref as "queue/id".
func (j *Job) String() string { return j.ref.String() }

// Info reads the job's record. ErrNotFound if it does not exist, or has expired after its
// retention period.
func (j *Job) Info(ctx context.Context) (*JobRecord, error) {
	rec, err := j.info(ctx)
	if err != nil {
		return nil, err
	}
	return recordFrom(rec), nil
}

// info is Info as stored.
func (j *Job) info(ctx context.Context) (*persistence.Job, error) {
	rec, err := j.rt.store.Get(ctx, j.ref)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", j.ref, err)
	}
	return rec, nil
}

// Status reads the job's status.
func (j *Job) Status(ctx context.Context) (Status, error) {
	rec, err := j.info(ctx)
	if err != nil {
		return 0, err
	}
	return Status(rec.Status), nil
}

// Outcome is what a completed job produced: exactly one of Result and Failure.
type Outcome struct {
	// Result is the handler's result as JSON, when it succeeded.
	Result json.RawMessage
	// Failure is the job's error, when it failed.
	Failure *Failure
}

// Decode decodes the result into v (a pointer, as for json.Unmarshal), or returns the
// Failure when the job failed.
func (o *Outcome) Decode(v any) error {
	if o.Failure != nil {
		return o.Failure
	}
	if err := json.Unmarshal(o.Result, v); err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	return nil
}

// outcome returns the outcome of a completed record.
func outcome(rec *persistence.Job) *Outcome {
	return &Outcome{Result: rec.Result, Failure: failureFrom(rec.Failure)}
}

// Wait blocks until the job is COMPLETED (its result stored and its callbacks run) and
// returns its outcome. It does not poll: it listens for the queue's completion
// notifications, and re-reads the job every 2 seconds only in case one was lost. When ctx
// ends first it returns an error wrapping ctx.Err().
func (j *Job) Wait(ctx context.Context) (*Outcome, error) {
	if j.rt.cfg.Tracer != nil {
		end := j.rt.traceWait(ctx, Ref(j.ref))
		out, err := j.wait(ctx)
		end(err)
		return out, err
	}
	return j.wait(ctx)
}

// wait is Wait without the tracer.
func (j *Job) wait(ctx context.Context) (*Outcome, error) {
	// Watch before the first read: a completion between the read and the watch would
	// otherwise be missed until the next re-read. The watch shares the queue's one
	// subscription with the runtime's other waits.
	done, ended, stop, err := j.rt.waits.watch(ctx, j.ref)
	if err != nil {
		return nil, j.waitErr(ctx, err)
	}
	defer stop()
	rec, err := j.record(ctx)
	if err != nil {
		return nil, j.waitErr(ctx, err)
	}
	if rec.Status == persistence.StatusCompleted {
		return outcome(rec), nil
	}
	if j.rt.onWaitSubscribed != nil {
		j.rt.onWaitSubscribed(j.ref)
	}
	ticker := time.NewTicker(j.rt.waitRecheck)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, j.waitErr(ctx, ctx.Err())
		case <-done:
		case <-ended: // the subscription ended: carry on with the re-reads alone
			ended = nil
			continue
		case <-ticker.C:
		}
		rec, err := j.record(ctx)
		switch {
		case err == nil && rec.Status == persistence.StatusCompleted:
			return outcome(rec), nil
		case err == nil:
		case ctx.Err() == nil && errors.Is(err, persistence.ErrUnavailable):
			// A blip in a long wait: the next re-read tries again.
			j.rt.logger.Debug("zasync: wait: re-reading the job failed", "logger", "zasync.trace", "job", j.ref.String(), "err", err)
		default:
			return nil, j.waitErr(ctx, err)
		}
	}
}

// record reads the job for Wait. A record read in part will do (persistence.Job.Corrupt):
// a job that could not be read whole is failed with a CorruptRecordError, and its waiter
// must see that outcome, which is readable, not the fields that are not.
func (j *Job) record(ctx context.Context) (*persistence.Job, error) {
	rec, err := j.rt.store.Get(ctx, j.ref)
	var corrupt *persistence.CorruptError
	if rec != nil && rec.Corrupt != nil && errors.As(err, &corrupt) {
		return rec, nil
	}
	return rec, err
}

// waitErr wraps an error that ends a Wait. When ctx has ended, the error is ctx's whatever
// the store made of it: a deadline that expires inside a Redis read surfaces from the store
// as ErrUnavailable (an i/o timeout), and the caller should see that its own deadline
// ended the wait.
func (j *Job) waitErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("wait for %s: %w", j.ref, ctxErr)
	}
	return fmt.Errorf("wait for %s: %w", j.ref, err)
}

// JobFrom returns the job a handler is running, from the handler's context; false outside
// a handler. Inside a handler registered with a Runtime the Job belongs to that runtime;
// with a context made only by actors.WithRunning it belongs to a detached runtime over the
// running job's store, which knows the built-in retry policies only and has no handlers.
func JobFrom(ctx context.Context) (*Job, bool) {
	r, ok := actors.RunningFrom(ctx)
	if !ok || r.Job == nil {
		return nil, false
	}
	rt, _ := ctx.Value(runtimeKey{}).(*Runtime)
	if rt == nil {
		if r.Store == nil {
			return nil, false
		}
		rt = detached(r.Store)
	}
	return rt.job(r.Job.Ref), true
}

// Attempt returns which claim or adoption of its job the running handler is, from the
// handler's context: 1 for a job's first run, more once it was retried, interrupted or taken
// over from a dispatcher presumed dead. Only the run with the job's latest attempt can store
// an outcome. False outside a handler.
func Attempt(ctx context.Context) (int64, bool) {
	r, ok := actors.RunningFrom(ctx)
	if !ok || r.Job == nil {
		return 0, false
	}
	return r.Job.Attempt, true
}

// detached returns a runtime over store alone, for a Job found in a context that carries no
// runtime. It owns nothing, so it needs no Close.
func detached(store persistence.Store) *Runtime {
	// Its waits subscribe each on their own, closed with the wait: there is no Close to end
	// a shared subscription.
	waits := newWaiters(store)
	waits.closed = true
	return &Runtime{
		waits:       waits,
		cfg:         Config{}.withDefaults(),
		store:       store,
		policies:    persistence.NewRetryPolicies(),
		logger:      slog.New(slog.DiscardHandler),
		handlers:    map[string]HandlerFunc{},
		waitRecheck: waitRecheck,
		isDetached:  true,
	}
}

// SetAnnotation sets the job's live annotation name to v, marshalled to JSON: progress, say,
// which any process can read at once with Annotation, even while the job runs. Annotations
// are kept apart from the job's state, so writing them never conflicts with its transitions.
func (j *Job) SetAnnotation(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return invalidf("annotation %q of %s: %w", name, j.ref, err)
	}
	if err := j.rt.store.SetAnnotation(ctx, j.ref, name, b); err != nil {
		return fmt.Errorf("annotate %s: %w", j.ref, err)
	}
	return nil
}

// Annotate sets a live annotation of the job the handler with ctx runs, v marshalled to JSON,
// as SetAnnotation does but fenced to the handler's run: once the job was taken from this run
// (its process presumed dead, say), the write is refused with ErrReassigned and the job's new
// run keeps what it reported. Calls for one name made while an earlier one is on its way are
// coalesced: only the newest value is written next, and each call returns the outcome of the
// write that carried its value or a newer one, so a handler may report progress as often as
// it likes. Outside a handler's context it is ErrInvalid.
func Annotate(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return invalidf("annotation %q: %w", name, err)
	}
	if err := actors.Annotate(ctx, name, b); err != nil {
		return fmt.Errorf("annotate the running job: %w", err)
	}
	return nil
}

// Annotation decodes the job's live annotation name into v (a pointer). It reports false,
// leaving v alone, when the annotation is not set.
func (j *Job) Annotation(ctx context.Context, name string, v any) (bool, error) {
	raw, ok, err := j.rt.store.Annotation(ctx, j.ref, name)
	if err != nil {
		return false, fmt.Errorf("annotation %q of %s: %w", name, j.ref, err)
	}
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, invalidf("annotation %q of %s: %w", name, j.ref, err)
	}
	return true, nil
}

// Annotations returns every live annotation of the job, by name, as JSON.
func (j *Job) Annotations(ctx context.Context) (map[string]json.RawMessage, error) {
	m, err := j.rt.store.Annotations(ctx, j.ref)
	if err != nil {
		return nil, fmt.Errorf("annotations of %s: %w", j.ref, err)
	}
	return m, nil
}
