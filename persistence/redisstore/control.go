package redisstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// An operator's actions on jobs after the fact: Rerun and Delete. (Revoke, the cancel, is
// with Fail in jobs.go; a queue's pause with the queues.)

// Rerun puts a failed completed job back in its queue as a new attempt, with its parts.
func (s *Store) Rerun(ctx context.Context, ref persistence.Ref, parts []persistence.RerunPart) (*persistence.Job, error) {
	const op = "retry"
	if err := validRef(op, ref); err != nil {
		return nil, err
	}
	for _, p := range parts {
		if err := validRef(op, ref.In(p.ID)); err != nil {
			return nil, err
		}
		if p.Call != nil {
			if _, err := p.Call.Encode(); err != nil {
				return nil, fmt.Errorf("%s: part %s: %w", op, p.ID, err)
			}
		}
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
		if len(j.Children) > 0 && len(parts) == 0 {
			return nil, fmt.Errorf("%s: %w: job %s is a composite: its postprocess and failed parts must run again with it", op, persistence.ErrBadStatus, ref)
		}
		// Each job reset with its completed callbacks, read and watched first.
		type resetJob struct {
			j     *persistence.Job
			was   map[string]string
			call  *persistence.Call
			cbs   []*persistence.Job
			cbWas []map[string]string
		}
		all := []*resetJob{{j: j, was: was}}
		// The parts in one round trip, then every callback of the job and its parts in one.
		partIDs := make([]string, len(parts))
		for i, p := range parts {
			partIDs[i] = p.ID
		}
		pjs, pwas, err := s.readWatched(ctx, t, ref.Queue, partIDs)
		if err != nil {
			return nil, err
		}
		for i, p := range parts {
			if pjs[i] == nil {
				return nil, fmt.Errorf("part %s: %w: job %s", p.ID, persistence.ErrNotFound, ref.In(p.ID))
			}
			if err := persistence.CheckStatus(op+" part "+p.ID, pjs[i].Status, persistence.StatusCompleted, persistence.StatusNew); err != nil {
				return nil, err
			}
			all = append(all, &resetJob{j: pjs[i], was: pwas[i], call: p.Call})
		}
		var cbIDs []string
		for _, r := range all {
			cbIDs = append(cbIDs, r.j.Callbacks...)
		}
		cbs, cbWas, err := s.readWatched(ctx, t, ref.Queue, cbIDs)
		if err != nil {
			return nil, err
		}
		k := 0
		for _, r := range all {
			for _, id := range r.j.Callbacks {
				if cbs[k] == nil {
					return nil, fmt.Errorf("callback %s: %w: job %s", id, persistence.ErrNotFound, ref.In(id))
				}
				r.cbs, r.cbWas = append(r.cbs, cbs[k]), append(r.cbWas, cbWas[k])
				k++
			}
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		out = j
		return func(p redis.Pipeliner) error {
			for i, r := range all {
				if r.j.Status == persistence.StatusCompleted {
					status := persistence.StatusNew
					if i == 0 {
						status = persistence.StatusPending
						s.retakeUnique(ctx, p, r.j)
					}
					s.again(ctx, p, r.j, r.was, status, r.call, now)
				} else if r.call != nil { // a part that never ran: only its call changes
					r.j.Call = *r.call
					s.writeJob(ctx, p, r.j, r.was)
				}
				for k, cb := range r.cbs {
					if cb.Status == persistence.StatusCompleted {
						s.again(ctx, p, cb, r.cbWas[k], persistence.StatusNew, nil, now)
					}
				}
			}
			p.Publish(ctx, s.k.wake(ref.Queue), ref.Queue)
			return nil
		}, nil
	})
	return out, err
}

// again queues the writes that make completed job j, as read in was, run again in status
// (PENDING: queued, due at now; NEW: to be queued by whoever runs it), with call when it is
// not nil: its run kept in its Attempts, the rest of that run cleared, no expiry, no entry in
// a history.
func (s *Store) again(ctx context.Context, p redis.Pipeliner, j *persistence.Job, was map[string]string, status persistence.Status,
	call *persistence.Call, now time.Time) {
	done := j.Owner
	if !j.Holder.IsZero() {
		done = j.Holder
	}
	j.KeepAttempt(persistence.PastAttempt{Attempt: j.Attempt, Owner: done.String(),
		Start: j.ActiveStart, End: j.ActiveEnd, Completed: j.Completed, Failure: j.Failure})
	completers := []persistence.Owner{j.Owner, j.Holder}
	reset(j)
	j.Status = status
	if call != nil {
		j.Call = *call
	}
	if status == persistence.StatusPending {
		j.BeginAfter = now
	}
	s.writeJob(ctx, p, j, was)
	s.keep(ctx, p, j, completers)
	if status == persistence.StatusPending {
		s.queueAt(ctx, p, j, s.position(j, now))
	}
}

// readWatched watches the jobs ids of queue q in t and reads them in one round trip (see
// readJobs).
func (s *Store) readWatched(ctx context.Context, t *txn, q string, ids []string) ([]*persistence.Job, []map[string]string, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	for _, id := range ids {
		t.watch(s.k.job(q, id))
	}
	return s.readJobs(ctx, t, q, ids)
}

// reset clears what a run of j left: its owner, outcome, times and retry counters.
func reset(j *persistence.Job) {
	j.Owner, j.Holder, j.Result, j.Failure, j.Retry = persistence.Owner{}, persistence.Owner{}, nil, nil, nil
	j.ActiveStart, j.ActiveEnd, j.Completed = time.Time{}, time.Time{}, time.Time{}
	j.WaitingOn, j.Parked, j.Sealed = "", false, false
}

// keep queues the writes that make completed job j live again: no expiry for it and its
// annotations, and no entry in the histories of the agents that may have completed it.
func (s *Store) keep(ctx context.Context, p redis.Pipeliner, j *persistence.Job, completers []persistence.Owner) {
	p.Persist(ctx, s.k.job(j.Queue, j.ID))
	p.Persist(ctx, s.k.annotations(j.Queue, j.ID))
	p.ZRem(ctx, s.k.failed(j.Queue), j.ID)
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
		read, _, err := s.readJobs(ctx, t, q, ids)
		if err != nil {
			return nil, err
		}
		jobs := make([]*persistence.Job, 0, len(ids))
		for i, j := range read {
			if j == nil && i > 0 {
				continue // a part that expired already
			}
			if j == nil {
				return nil, fmt.Errorf("%w: job %s", persistence.ErrNotFound, persistence.Ref{Queue: q, ID: ids[i]})
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
				s.releaseUnique(ctx, p, j, false)
				for _, o := range []persistence.Owner{j.Owner, j.Holder} {
					if !o.IsZero() {
						p.ZRem(ctx, s.k.completed(q, o), j.ID)
					}
				}
				p.ZRem(ctx, s.k.failed(q), j.ID)
				p.Del(ctx, s.k.job(q, j.ID), s.k.annotations(q, j.ID))
			}
			return nil
		}, nil
	})
	return out, err
}
