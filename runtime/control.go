package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
	if err := validRef(ref); err != nil {
		return nil, fmt.Errorf("cancel %s: %w", ref, err)
	}
	was, err := rt.store.Get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("cancel %s: %w", ref, err)
	}
	j, err := rt.store.Revoke(ctx, ref, cancelFailure())
	if err != nil {
		return nil, fmt.Errorf("cancel %s: %w", ref, err)
	}
	rt.metrics.cancelled(ref.Queue)
	r := &CancelReport{Job: ref, Was: was.Status}
	if j.Status != was.Status && slices.Contains(persistence.Revocable, j.Status) {
		r.Was = j.Status // changed between the read and the revoke; the revoke saw this
	}
	if err := rt.cancelParts(ctx, j, &r.Parts); err != nil {
		return r, fmt.Errorf("cancel %s: the job is cancelled, not all of its parts: %w", ref, err)
	}
	return r, nil
}

// Cancel cancels the job: see Runtime.Cancel.
func (j *Job) Cancel(ctx context.Context) (*CancelReport, error) { return j.rt.Cancel(ctx, j.ref) }

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
		*parts = append(*parts, ref)
		if err := rt.cancelParts(ctx, part, parts); err != nil {
			return err
		}
	}
	return nil
}

// validRef checks a job reference given by a caller.
func validRef(ref Ref) error {
	if err := persistence.ValidateName("queue", ref.Queue); err != nil {
		return err
	}
	if ref.ID == "" {
		return invalidf("empty job id")
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
