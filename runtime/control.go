package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// ErrCancelled is the failure of a cancelled job: errors.Is(err, ErrCancelled) holds for its
// stored failure (Outcome.Failure, and the error Outcome.Decode returns).
var ErrCancelled = persistence.ErrCancelled

// CancelReport says what Cancel did.
type CancelReport struct {
	// Job is the job cancelled, and Was its status before: pending (waiting or scheduled),
	// new (not queued yet), assigned or active (its run was told to stop).
	Job Ref
	Was Status
	// Parts are the jobs of a composite cancelled with it: its postprocess and its sub-jobs
	// not done yet, and theirs in turn.
	Parts []Ref
}

// Cancel cancels a job whose outcome is not stored yet, wherever it is: waiting or scheduled
// in its queue, claimed, or running in any process. It completes as cancelled: its failure
// matches ErrCancelled, its callbacks run with that failure, and its waiters get it. A running
// job's handler has its context cancelled, with ErrCancelled as the cause, in the process that
// runs it, within the time a Redis message takes; whatever that run writes after the cancel
// is refused. A composite's parts not done yet are cancelled with it.
//
// The cancel and the run's own commit are each one fenced transaction, so exactly one of them
// wins: a job whose outcome was stored first gives ErrBadStatus (a *BadStatusError saying its
// status) and is left as it is. An unknown job gives ErrNotFound. Neither changes anything.
func (rt *Runtime) Cancel(ctx context.Context, ref Ref) (*CancelReport, error) {
	return rt.cancel(ctx, persistence.Ref(ref))
}

// cancel is Cancel for a ref as stored.
func (rt *Runtime) cancel(ctx context.Context, ref persistence.Ref) (*CancelReport, error) {
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("cancel %s: %w", ref, err)
	}
	// Was is read first: the revoke answers the job as it left it. (A claim or a start in
	// between makes it one step behind, which a report can live with.)
	was, err := rt.store.Get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("cancel %s: %w", ref, err)
	}
	j, err := rt.store.Revoke(ctx, ref, cancelFailure())
	if err != nil {
		return nil, fmt.Errorf("cancel %s: %w", ref, err)
	}
	rt.metrics.cancelled(ref.Queue)
	r := &CancelReport{Job: Ref(ref), Was: Status(was.Status)}
	if err := rt.cancelParts(ctx, j, &r.Parts); err != nil {
		return r, fmt.Errorf("cancel %s: the job is cancelled, not all of its parts: %w", ref, err)
	}
	return r, nil
}

// Cancel cancels the job: see Runtime.Cancel.
func (j *Job) Cancel(ctx context.Context) (*CancelReport, error) { return j.rt.cancel(ctx, j.ref) }

// cancelFailure is the failure a cancelled job stores.
func cancelFailure() *persistence.Failure {
	return persistence.NewFailure(ErrCancelled, "")
}

// cancelParts cancels what composite j still has to do: its postprocess first (so that no
// part's step queues it), then each sub-job not done, and their parts in turn. A part that
// stored its outcome meanwhile is left as it is.
func (rt *Runtime) cancelParts(ctx context.Context, j *persistence.Job, parts *[]Ref) error {
	post, ok := actors.CompositePostprocess(&j.Call)
	if !ok {
		return nil
	}
	for _, id := range append([]string{post}, j.Children...) {
		ref := j.Ref.In(id)
		part, err := rt.store.Revoke(ctx, ref, cancelFailure())
		switch {
		case errors.Is(err, ErrBadStatus) || errors.Is(err, ErrNotFound):
			continue // done already, or gone with its retention
		case err != nil:
			return err
		}
		rt.metrics.cancelled(ref.Queue)
		*parts = append(*parts, Ref(ref))
		if err := rt.cancelParts(ctx, part, parts); err != nil {
			return err
		}
	}
	return nil
}

// PauseQueue pauses a queue for every process: no dispatcher claims from it until ResumeQueue,
// while puts still succeed and running jobs go on. The pause is stored in Redis, so it
// outlives every process. changed is false when the queue was paused already. A queue that
// no process has used, and this runtime does not serve, gives ErrNotFound, so that a
// mistyped name is not paused in silence.
func (rt *Runtime) PauseQueue(ctx context.Context, queue string) (changed bool, err error) {
	return rt.setPaused(ctx, "pause", queue, true)
}

// ResumeQueue undoes PauseQueue: dispatchers serving the queue claim from it at once.
// changed is false when it was not paused.
func (rt *Runtime) ResumeQueue(ctx context.Context, queue string) (changed bool, err error) {
	return rt.setPaused(ctx, "resume", queue, false)
}

// QueuePaused reports whether a queue is paused.
func (rt *Runtime) QueuePaused(ctx context.Context, queue string) (bool, error) {
	if err := persistence.ValidateName("queue", queue); err != nil {
		return false, err
	}
	return rt.store.Paused(ctx, queue)
}

// CheckQueue tells whether queue names a queue an operator can act on: ErrInvalid for a
// malformed name, ErrNotFound for a queue that no process has used and this runtime does not
// serve.
func (rt *Runtime) CheckQueue(ctx context.Context, queue string) error {
	if err := persistence.ValidateName("queue", queue); err != nil {
		return err
	}
	if slices.ContainsFunc(rt.cfg.Queues, func(q QueueConfig) bool { return q.Name == queue }) {
		return nil
	}
	known, err := rt.store.Queues(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(known, queue) {
		return fmt.Errorf("%w: no process has used queue %q", ErrNotFound, queue)
	}
	return nil
}

func (rt *Runtime) setPaused(ctx context.Context, op, queue string, paused bool) (bool, error) {
	if err := rt.CheckQueue(ctx, queue); err != nil {
		return false, fmt.Errorf("%s %s: %w", op, queue, err)
	}
	changed, err := rt.store.SetPaused(ctx, queue, paused)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", op, queue, err)
	}
	return changed, nil
}

// RetryReport says what Retry did.
type RetryReport struct {
	// Job is the job put back to run again; Attempts how many earlier runs it keeps (the one
	// just ended included), in its record's Attempts.
	Job      Ref
	Attempts int
}

// Retry puts a completed job whose outcome is a failure (a cancelled one too) back in its
// queue, due now, to run again as a new attempt of the same job: same id, its earlier runs
// kept in its record (JobRecord.Attempts) with how each ended, its callbacks run again when it
// completes. A composite runs again with its sub-jobs that failed or were cancelled and its
// postprocess, all in the same transaction; the sub-jobs that succeeded keep their results
// (a part that is still finishing its callbacks, as one cancelled with the composite may be
// for a moment, is waited for up to five seconds). A job not completed, or that succeeded,
// gives ErrBadStatus; an unknown job ErrNotFound. Neither changes anything.
func (rt *Runtime) Retry(ctx context.Context, ref Ref) (*RetryReport, error) {
	return rt.retry(ctx, persistence.Ref(ref))
}

// retry is Retry for a ref as stored.
func (rt *Runtime) retry(ctx context.Context, ref persistence.Ref) (*RetryReport, error) {
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("retry %s: %w", ref, err)
	}
	var j *persistence.Job
	for wait := time.Now().Add(partsWait); ; {
		rec, err := rt.store.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("retry %s: %w", ref, err)
		}
		parts, err := rt.retryParts(ctx, rec)
		if err == nil {
			j, err = rt.store.Rerun(ctx, ref, parts)
		}
		if err == nil {
			break
		}
		// A composite completes as its postprocess's callback runs, and a part cancelled
		// with it completes through a job of its own: right after, a part may still be in
		// its callbacks for a moment.
		var bad *persistence.BadStatusError
		if !errors.As(err, &bad) || bad.Status != persistence.StatusCallbacks || time.Now().After(wait) {
			return nil, fmt.Errorf("retry %s: %w", ref, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("retry %s: %w", ref, ctx.Err())
		case <-time.After(partsPause):
		}
	}
	rt.metrics.retriedByOperator(ref.Queue)
	return &RetryReport{Job: Ref(ref), Attempts: len(j.Attempts)}, nil
}

// How long Retry waits, and how often it looks again, for the parts of a composite that are
// finishing their callbacks.
const (
	partsWait  = 5 * time.Second
	partsPause = 20 * time.Millisecond
)

// retryParts returns what runs again with composite j: its postprocess, given back its own
// arguments, and its sub-jobs that failed (a cancelled one too), with their own parts when
// they are composites. Sub-jobs that succeeded keep their results, which the postprocess
// gets again. Any other job has none.
func (rt *Runtime) retryParts(ctx context.Context, j *persistence.Job) ([]persistence.RerunPart, error) {
	post, ok := actors.CompositePostprocess(&j.Call)
	if !ok {
		return nil, nil
	}
	jobs, err := rt.store.GetMany(ctx, j.Queue, append([]string{post}, j.Children...))
	if err != nil {
		return nil, err
	}
	var parts []persistence.RerunPart
	if pj := jobs[0]; pj != nil {
		call := actors.PostprocessOwnCall(pj, j.Children)
		parts = append(parts, persistence.RerunPart{ID: post, Call: &call})
	}
	for i, sub := range jobs[1:] {
		switch {
		case sub == nil:
			return nil, fmt.Errorf("%w: sub-job %s has expired", ErrNotFound, j.Children[i])
		case sub.Status != persistence.StatusCompleted && sub.Status != persistence.StatusNew:
			// A part cancelled with the composite completes through a job of its own: it
			// may still be running its callbacks.
			return nil, &persistence.BadStatusError{Op: "retry a composite whose sub-job " + sub.ID + " has not completed",
				Status: sub.Status, Allowed: []persistence.Status{persistence.StatusNew, persistence.StatusCompleted}}
		case sub.Status == persistence.StatusNew || !sub.Failed():
			continue // it has not run, or it succeeded: it stays as it is
		}
		parts = append(parts, persistence.RerunPart{ID: sub.ID})
		more, err := rt.retryParts(ctx, sub)
		if err != nil {
			return nil, err
		}
		parts = append(parts, more...)
	}
	return parts, nil
}

// Retry retries the job: see Runtime.Retry.
func (j *Job) Retry(ctx context.Context) (*RetryReport, error) { return j.rt.retry(ctx, j.ref) }

// DeleteReport says what Delete did.
type DeleteReport struct {
	// Job is the job deleted, and Was its status: pending, new or completed.
	Job Ref
	Was Status
	// Parts are the jobs deleted with it: its callbacks, a composite's sub-jobs and
	// postprocess, and theirs in turn.
	Parts []Ref
}

// deleteTries bounds how many times Delete reads a job's parts again when one is added
// while it deletes them.
const deleteTries = 5

// Delete removes a job that nothing runs (waiting, scheduled, not queued, or completed) with
// its callbacks and, for a composite, its parts, in one transaction: records, annotations,
// queue entries and history entries. A job that may be running (assigned, active, running its
// callbacks) gives ErrBadStatus: cancel it first. So does a callback or sub-job of a job that
// has not completed: delete or cancel that one. An unknown job gives ErrNotFound. Neither
// changes anything.
func (rt *Runtime) Delete(ctx context.Context, ref Ref) (*DeleteReport, error) {
	return rt.delete(ctx, persistence.Ref(ref))
}

// delete is Delete for a ref as stored.
func (rt *Runtime) delete(ctx context.Context, ref persistence.Ref) (*DeleteReport, error) {
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("delete %s: %w", ref, err)
	}
	for try := 1; ; try++ {
		r, err := rt.deleteTree(ctx, ref)
		if errors.Is(err, ErrConflict) && try < deleteTries {
			continue // a part was added meanwhile: read them again
		}
		if err != nil {
			return nil, fmt.Errorf("delete %s: %w", ref, err)
		}
		return r, nil
	}
}

// Delete deletes the job: see Runtime.Delete.
func (j *Job) Delete(ctx context.Context) (*DeleteReport, error) { return j.rt.delete(ctx, j.ref) }

// deleteTree reads the job and its parts and deletes them all.
func (rt *Runtime) deleteTree(ctx context.Context, ref persistence.Ref) (*DeleteReport, error) {
	root, err := rt.store.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	for _, owner := range []string{root.Parent, root.Composite} {
		if owner == "" {
			continue
		}
		o, err := rt.store.Get(ctx, ref.In(owner))
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		case o.Status != persistence.StatusCompleted:
			return nil, fmt.Errorf("%w: the job is part of %s, which is %s: delete or cancel that one", ErrBadStatus, o.Ref, o.Status)
		}
	}
	ids := []string{ref.ID}
	seen := map[string]bool{ref.ID: true}
	for next := []*persistence.Job{root}; len(next) > 0; {
		var more []string
		for _, j := range next {
			parts := slices.Concat(j.Callbacks, j.Children)
			if post, ok := actors.CompositePostprocess(&j.Call); ok {
				parts = append(parts, post)
			}
			for _, id := range parts {
				if !seen[id] {
					seen[id] = true
					more = append(more, id)
				}
			}
		}
		if len(more) == 0 {
			break
		}
		jobs, err := rt.store.GetMany(ctx, ref.Queue, more)
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...) // an expired one too: the store skips it
		next = next[:0]
		for _, j := range jobs {
			if j != nil {
				next = append(next, j)
			}
		}
	}
	if _, err := rt.store.Delete(ctx, ref.Queue, ids); err != nil {
		return nil, err
	}
	r := &DeleteReport{Job: Ref(ref), Was: Status(root.Status)}
	for _, id := range ids[1:] {
		r.Parts = append(r.Parts, Ref(ref.In(id)))
	}
	return r, nil
}
