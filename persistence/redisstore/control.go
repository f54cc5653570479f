package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// An operator's actions on jobs after the fact: Rerun and Delete. (Revoke, the cancel, is
// with Fail in jobs.go; a queue's pause with the queues.)

// Rerun puts a failed completed job back in its queue as a new attempt.
func (s *Store) Rerun(ctx context.Context, ref persistence.Ref) (*persistence.Job, error) {
	const op = "retry"
	if err := validRef(op, ref); err != nil {
		return nil, err
	}
	var out *persistence.Job
	err := s.transact(ctx, op, []string{s.k.job(ref.Queue, ref.ID)}, func(t *txn) (writes, error) {
		j, was, err := s.readJob(ctx, t, ref)
		if err != nil {
			return nil, err
		}
		if err := persistence.CheckStatus(op, j.Status, persistence.StatusCompleted); err != nil {
			return nil, err
		}
		if j.Failure == nil {
			return nil, fmt.Errorf("%s: %w: job %s succeeded; only a failed or cancelled job runs again", op, persistence.ErrBadStatus, ref)
		}
		if len(j.Children) > 0 {
			return nil, fmt.Errorf("%s: %w: job %s is a composite; retry its failed parts", op, persistence.ErrBadStatus, ref)
		}
		cbs := make([]*persistence.Job, len(j.Callbacks))
		cbWas := make([]map[string]string, len(j.Callbacks))
		for i, id := range j.Callbacks {
			t.watch(s.k.job(ref.Queue, id))
			if cbs[i], cbWas[i], err = s.readJob(ctx, t, ref.In(id)); err != nil {
				return nil, fmt.Errorf("callback %s: %w", id, err)
			}
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		done := j.Owner
		if !j.Holder.IsZero() {
			done = j.Holder
		}
		j.Attempts = append(j.Attempts, persistence.PastAttempt{Attempt: j.Attempt, Owner: done.String(),
			Start: j.ActiveStart, End: j.ActiveEnd, Completed: j.Completed, Failure: j.Failure})
		completers := []persistence.Owner{j.Owner, j.Holder}
		reset(j)
		j.Status, j.BeginAfter = persistence.StatusPending, now
		out = j
		return func(p redis.Pipeliner) error {
			s.writeJob(ctx, p, j, was)
			s.keep(ctx, p, j, completers)
			p.ZAdd(ctx, s.k.pending(ref.Queue), redis.Z{Score: s.position(j, now), Member: j.ID})
			for i, cb := range cbs {
				if cb.Status != persistence.StatusCompleted {
					continue // never ran: it runs when the job completes
				}
				completers := []persistence.Owner{cb.Owner, cb.Holder}
				reset(cb)
				cb.Status = persistence.StatusNew
				s.writeJob(ctx, p, cb, cbWas[i])
				s.keep(ctx, p, cb, completers)
			}
			p.Publish(ctx, s.k.wake(ref.Queue), ref.Queue)
			return nil
		}, nil
	})
	return out, err
}

// reset clears what a run of j left: its owner, outcome, times and retry counters.
func reset(j *persistence.Job) {
	j.Owner, j.Holder, j.Result, j.Failure, j.Retry = persistence.Owner{}, persistence.Owner{}, nil, nil, nil
	j.ActiveStart, j.ActiveEnd, j.Completed = time.Time{}, time.Time{}, time.Time{}
	j.WaitingOn, j.Parked = "", false
}

// keep queues the writes that make completed job j live again: no expiry for it and its
// annotations, and no entry in the histories of the agents that may have completed it.
func (s *Store) keep(ctx context.Context, p redis.Pipeliner, j *persistence.Job, completers []persistence.Owner) {
	p.Persist(ctx, s.k.job(j.Queue, j.ID))
	p.Persist(ctx, s.k.annotations(j.Queue, j.ID))
	for _, o := range completers {
		if !o.IsZero() {
			p.ZRem(ctx, s.k.completed(j.Queue, o), j.ID)
		}
	}
}

// Delete removes jobs that nothing runs, all or none.
func (s *Store) Delete(ctx context.Context, q string, ids []string) ([]*persistence.Job, error) {
	const op = "delete"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: %w: no job", op, persistence.ErrInvalid)
	}
	watch := make([]string, len(ids))
	for i, id := range ids {
		if err := validRef(op, persistence.Ref{Queue: q, ID: id}); err != nil {
			return nil, err
		}
		watch[i] = s.k.job(q, id)
	}
	var out []*persistence.Job
	err := s.transact(ctx, op, watch, func(t *txn) (writes, error) {
		jobs := make([]*persistence.Job, 0, len(ids))
		for i, id := range ids {
			j, _, err := s.readJob(ctx, t, persistence.Ref{Queue: q, ID: id})
			if errors.Is(err, persistence.ErrNotFound) && i > 0 {
				continue // a part that expired already
			}
			if err != nil {
				return nil, err
			}
			if err := persistence.CheckStatus(op, j.Status, persistence.Deletable...); err != nil {
				return nil, fmt.Errorf("job %s: %w", j.Ref, err)
			}
			for _, part := range slices.Concat(j.Callbacks, j.Children) {
				if !slices.Contains(ids, part) {
					return nil, fmt.Errorf("%s: %w: job %s has %s, which is not deleted with it", op, persistence.ErrConflict, j.Ref, part)
				}
			}
			jobs = append(jobs, j)
		}
		out = jobs
		return func(p redis.Pipeliner) error {
			for _, j := range jobs {
				s.release(ctx, p, j, false)
				for _, o := range []persistence.Owner{j.Owner, j.Holder} {
					if !o.IsZero() {
						p.ZRem(ctx, s.k.completed(q, o), j.ID)
					}
				}
				p.Del(ctx, s.k.job(q, j.ID), s.k.annotations(q, j.ID))
			}
			return nil
		}, nil
	})
	return out, err
}
