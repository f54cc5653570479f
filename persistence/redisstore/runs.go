package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// batchTries is how many lost races a batch of several runs takes before it falls back to one
// transaction per run: a batch watches many jobs, and one busy job should not hold up the
// others for long.
const batchTries = 3

// fenced runs one fenced transition of f's job: WATCH the job, read it, check that it is
// still f's run (ErrReassigned) and in one of allowed (BadStatusError), then let change
// modify it and queue extra writes; the job is written back whole. change returning an error
// aborts without writing.
func (s *Store) fenced(ctx context.Context, op string, f persistence.Fence, allowed []persistence.Status,
	change func(now time.Time, j *persistence.Job) (writes, error)) (*persistence.Job, error) {
	jobs, errs, err := s.fencedMany(ctx, op, []persistence.Fence{f}, allowed,
		func(_ int, now time.Time, j *persistence.Job) (writes, error) { return change(now, j) })
	if err != nil {
		return nil, err
	}
	return jobs[0], errs[0]
}

// fencedMany runs the fenced transition op for several runs of one queue in one transaction,
// each checked and changed as fenced does. A run that fails (ErrNotFound, ErrReassigned,
// *BadStatusError, change's error) gets its error in errs and is not written; the others are.
// err is for the whole batch. After batchTries lost races a batch falls back to one
// transaction per run.
func (s *Store) fencedMany(ctx context.Context, op string, fences []persistence.Fence, allowed []persistence.Status,
	change func(i int, now time.Time, j *persistence.Job) (writes, error)) ([]*persistence.Job, []error, error) {
	if len(fences) == 0 {
		return nil, nil, nil
	}
	watch := make([]string, len(fences))
	for i, f := range fences {
		if err := validRef(op, f.Ref); err != nil {
			return nil, nil, err
		}
		if f.Queue != fences[0].Queue {
			return nil, nil, fmt.Errorf("%s: %w: a batch spans queues %s and %s", op, persistence.ErrInvalid, fences[0].Queue, f.Queue)
		}
		watch[i] = s.k.job(f.Queue, f.ID)
	}
	tries := s.maxRetries
	if len(fences) > 1 {
		tries = batchTries
	}
	jobs, errs := make([]*persistence.Job, len(fences)), make([]error, len(fences))
	err := s.transactN(ctx, op, tries, watch, func(t *txn) (writes, error) {
		clear(jobs)
		clear(errs)
		cmds := make([]*redis.MapStringStringCmd, len(fences))
		if err := t.pipelined(ctx, func(p redis.Pipeliner) {
			for i := range fences {
				cmds[i] = p.HGetAll(ctx, watch[i])
			}
		}); err != nil {
			return nil, err
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		var ws []writes
		for i, f := range fences {
			was := cmds[i].Val()
			j, w, err := s.fencedOne(op, f, was, allowed, now, func(now time.Time, j *persistence.Job) (writes, error) {
				return change(i, now, j)
			})
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", op, err)
				continue
			}
			jobs[i] = j
			ws = append(ws, func(p redis.Pipeliner) error {
				if w != nil {
					if err := w(p); err != nil {
						return err
					}
				}
				s.writeJob(ctx, p, j, was)
				return nil
			})
		}
		if len(ws) == 0 {
			return nil, nil
		}
		return func(p redis.Pipeliner) error {
			for _, w := range ws {
				if err := w(p); err != nil {
					return err
				}
			}
			return nil
		}, nil
	})
	if errors.Is(err, persistence.ErrConflict) && len(fences) > 1 {
		// One busy job keeps the batch losing: give each run a transaction of its own.
		for i := range fences {
			one, oneErrs, err := s.fencedMany(ctx, op, fences[i:i+1], allowed,
				func(_ int, now time.Time, j *persistence.Job) (writes, error) { return change(i, now, j) })
			if err != nil {
				return nil, nil, err
			}
			jobs[i], errs[i] = one[0], oneErrs[0]
		}
		return jobs, errs, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return jobs, errs, nil
}

// fencedOne decodes one run's job from its hash, checks fence and status, and applies change.
func (s *Store) fencedOne(op string, f persistence.Fence, h map[string]string, allowed []persistence.Status, now time.Time,
	change func(now time.Time, j *persistence.Job) (writes, error)) (*persistence.Job, writes, error) {
	j, ok, err := decodeJob(f.Ref, h)
	if err != nil && (j == nil || !fenceRead(j)) {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w: job %s", persistence.ErrNotFound, f.Ref)
	}
	// A job read in part goes on when its fence could be read: the run that holds it fails
	// it (see persistence.Job.Corrupt), and the fields it could not read stay as stored.
	if err := checkRun(op, f, j, allowed); err != nil {
		return nil, nil, err
	}
	w, err := change(now, j)
	if err != nil {
		return nil, nil, err
	}
	return j, w, nil
}

// checkRun checks that j is still in the run f names (ErrReassigned) and in one of allowed
// (*BadStatusError).
func checkRun(op string, f persistence.Fence, j *persistence.Job, allowed []persistence.Status) error {
	if err := checkFence(j, f); err != nil {
		return err
	}
	return persistence.CheckStatus(op, j.Status, allowed...)
}

// Start moves a job to ACTIVE.
func (s *Store) Start(ctx context.Context, f persistence.Fence) (*persistence.Job, error) {
	return s.fenced(ctx, "start", f, persistence.Runnable, start)
}

// StartMany starts several runs of one queue in one transaction.
func (s *Store) StartMany(ctx context.Context, fences []persistence.Fence) ([]*persistence.Job, []error, error) {
	return s.fencedMany(ctx, "start", fences, persistence.Runnable,
		func(_ int, now time.Time, j *persistence.Job) (writes, error) { return start(now, j) })
}

func start(now time.Time, j *persistence.Job) (writes, error) {
	j.Status, j.ActiveStart = persistence.StatusActive, now
	return nil, nil
}

// Commit stores the outcome of an ACTIVE job.
func (s *Store) Commit(ctx context.Context, f persistence.Fence, o persistence.Outcome) (*persistence.Job, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	jobs, errs, err := s.CommitMany(ctx, []persistence.Commit{{Fence: f, Outcome: o}})
	if err != nil {
		return nil, err
	}
	return jobs[0], errs[0]
}

// CommitMany commits several runs of one queue in one transaction.
func (s *Store) CommitMany(ctx context.Context, commits []persistence.Commit) ([]*persistence.Job, []error, error) {
	if err := validCommits(commits); err != nil {
		return nil, nil, err
	}
	if len(commits) == 0 {
		return nil, nil, nil
	}
	if s.noScripts {
		return s.settle(ctx, commits, time.Time{}, nil, nil)
	}
	now, err := s.now(ctx)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.runScript(ctx, s.commitCall(commits, now))
	return s.settle(ctx, commits, now, r, err)
}

// settle finishes commits of one queue: from commitScript's answer r (or its error rerr),
// the runs it left going through the transaction; without scripts, all of them through the
// transaction. Every commit the fence refused is then noted on its job (noteRefused), on
// every path a commit takes.
func (s *Store) settle(ctx context.Context, commits []persistence.Commit, now time.Time, r any, rerr error) ([]*persistence.Job, []error, error) {
	var jobs []*persistence.Job
	var errs []error
	var err error
	if s.noScripts {
		jobs, errs, err = s.commitWatched(ctx, commits)
	} else {
		var again []bool
		jobs, errs, again, err = s.commitAnswer(ctx, commits, now, r, rerr)
		if err == nil {
			err = s.commitRest(ctx, commits, jobs, errs, again)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	s.noteRefused(ctx, commits, errs)
	return jobs, errs, nil
}

// noteRefused records, in the attempts of each job whose commit the fence refused, that a late
// commit of that run came and was refused: the one trace the job keeps of a process that ran
// it after losing it (frozen past its death interval, say). It is rare, so it pays its own
// transactions; it is only a note, so a failure to write it is dropped.
func (s *Store) noteRefused(ctx context.Context, commits []persistence.Commit, errs []error) {
	for i, err := range errs {
		if errors.Is(err, persistence.ErrReassigned) {
			_ = s.noteLate(ctx, commits[i].Fence)
		}
	}
}

// noteLate marks the run f names as one whose late commit was refused now: its entry in the
// job's Attempts, or a new entry when the job kept none for it (a run taken by a revoke).
func (s *Store) noteLate(ctx context.Context, f persistence.Fence) error {
	const op = "note a refused commit"
	return s.transact(ctx, op, []string{s.k.job(f.Queue, f.ID)}, func(t *txn) (writes, error) {
		j, was, err := s.readJob(ctx, t, f.Ref)
		if err != nil {
			return nil, err
		}
		if checkFence(j, f) == nil {
			return nil, nil // the run holds it after all: nothing was refused for lateness
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		at := -1
		for k, a := range j.Attempts {
			if a.Attempt == f.Attempt && a.Owner == f.Owner.String() {
				at = k
			}
		}
		if at < 0 {
			j.KeepAttempt(persistence.PastAttempt{Attempt: f.Attempt, Owner: f.Owner.String()})
			at = len(j.Attempts) - 1
		}
		j.Attempts[at].LateCommit = now
		return func(p redis.Pipeliner) error {
			s.writeJob(ctx, p, j, was)
			return nil
		}, nil
	})
}

// commitWatched commits runs through the optimistic transaction.
func (s *Store) commitWatched(ctx context.Context, commits []persistence.Commit) ([]*persistence.Job, []error, error) {
	fences := make([]persistence.Fence, len(commits))
	for i, c := range commits {
		fences[i] = c.Fence
	}
	return s.fencedMany(ctx, "commit", fences, active, func(i int, now time.Time, j *persistence.Job) (writes, error) {
		return s.commit(ctx, now, j, commits[i].Outcome)
	})
}

var active = []persistence.Status{persistence.StatusActive}

// commit stores o in j and returns the writes around it: its quota slots and parking are
// released, and with o.Complete and no callbacks it is completed at once.
func (s *Store) commit(ctx context.Context, now time.Time, j *persistence.Job, o persistence.Outcome) (writes, error) {
	j.Result, j.Failure = o.Result, o.Failure
	switch {
	case len(o.Retry) > 0:
		j.Retry = maps.Clone(o.Retry)
	case o.Retry != nil:
		j.Retry = nil // cleared, as a record without counters reads
	}
	j.Status, j.ActiveEnd, j.WaitingOn, j.Parked = persistence.StatusCallbacks, now, "", false
	completing := o.Complete && len(j.Callbacks) == 0
	if completing {
		j.Status, j.Completed = persistence.StatusCompleted, now
	}
	return func(p redis.Pipeliner) error {
		for _, n := range j.QuotaNames {
			p.SRem(ctx, s.k.quota(j.Queue, n), j.ID)
		}
		if !j.Holder.IsZero() {
			p.SRem(ctx, s.k.parked(j.Queue, j.Holder), j.ID)
		}
		if completing {
			s.complete(ctx, p, j, now)
		}
		return nil
	}, nil
}

// Complete moves a job from CALLBACKS to COMPLETED.
func (s *Store) Complete(ctx context.Context, f persistence.Fence, seen int) (*persistence.Job, error) {
	var more *persistence.Job
	j, err := s.fenced(ctx, "complete", f, []persistence.Status{persistence.StatusCallbacks}, func(now time.Time, j *persistence.Job) (writes, error) {
		if len(j.Callbacks) > seen {
			more = j
			return nil, fmt.Errorf("%w: job %s has %d callbacks, %d were run", persistence.ErrMoreCallbacks, j.Ref, len(j.Callbacks), seen)
		}
		j.Status, j.Completed = persistence.StatusCompleted, now
		return func(p redis.Pipeliner) error { s.complete(ctx, p, j, now); return nil }, nil
	})
	if more != nil {
		return more, err
	}
	return j, err
}

// complete queues the writes around j completing (its status and completion time are set by
// the caller, which writes j itself): it leaves its holder for the holder's completed history
// (or its owner's, for an adopted job that had no holder), the history is trimmed to the
// retention period, and the record gets that period as its TTL.
func (s *Store) complete(ctx context.Context, p redis.Pipeliner, j *persistence.Job, now time.Time) {
	q := j.Queue
	by := j.Holder
	if !by.IsZero() {
		p.ZRem(ctx, s.k.agent(q, by), j.ID)
		p.SRem(ctx, s.k.parked(q, by), j.ID)
	} else {
		by = j.Owner
	}
	if !by.IsZero() {
		s.addHistory(ctx, p, q, by, j.ID, now)
	}
	if j.Failed() {
		s.addFailed(ctx, p, q, j.ID, now)
	}
	if s.retention > 0 {
		p.PExpire(ctx, s.k.job(q, j.ID), s.retention)
		p.PExpire(ctx, s.k.annotations(q, j.ID), s.retention)
	}
	s.releaseUnique(ctx, p, j, true)
	p.Publish(ctx, s.k.done(q), j.ID)
}

// addFailed records id as failed, completed at t, and trims the queue's index of failures to
// the retention period.
func (s *Store) addFailed(ctx context.Context, p redis.Pipeliner, q, id string, t time.Time) {
	key := s.k.failed(q)
	p.ZAdd(ctx, key, redis.Z{Score: float64(micros(t)), Member: id})
	if s.retention > 0 {
		p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(micros(t.Add(-s.retention)), 10))
	}
}

// addHistory records id as completed by o at t and trims o's history to the retention period.
func (s *Store) addHistory(ctx context.Context, p redis.Pipeliner, q string, o persistence.Owner, id string, t time.Time) {
	key := s.k.completed(q, o)
	p.ZAdd(ctx, key, redis.Z{Score: float64(micros(t)), Member: id})
	if s.retention > 0 {
		p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(micros(t.Add(-s.retention)), 10))
	}
}

// Reschedule puts an ASSIGNED or ACTIVE job back in its queue.
func (s *Store) Reschedule(ctx context.Context, f persistence.Fence, at time.Time, counts persistence.RetryCounts) (*persistence.Job, error) {
	if at.IsZero() {
		return nil, fmt.Errorf("reschedule: %w: zero time", persistence.ErrInvalid)
	}
	allowed := []persistence.Status{persistence.StatusAssigned, persistence.StatusActive}
	return s.fenced(ctx, "reschedule", f, allowed, func(now time.Time, j *persistence.Job) (writes, error) {
		putBack := !at.After(now)
		old := *j
		if counts != nil {
			j.Retry = maps.Clone(counts)
		}
		j.Status, j.Owner, j.Holder = persistence.StatusPending, persistence.Owner{}, persistence.Owner{}
		j.ActiveStart, j.WaitingOn, j.Parked = time.Time{}, "", false
		if !putBack {
			j.BeginAfter = at.UTC().Truncate(time.Microsecond)
		}
		return func(p redis.Pipeliner) error {
			s.release(ctx, p, &old, putBack)
			if putBack {
				p.RPush(ctx, s.k.putback(j.Queue), j.ID)
			} else {
				s.queueAt(ctx, p, j, float64(micros(j.BeginAfter)))
			}
			p.Publish(ctx, s.k.wake(j.Queue), j.Queue)
			return nil
		}, nil
	})
}

// SaveRetry stores the retry counters of a running job.
func (s *Store) SaveRetry(ctx context.Context, f persistence.Fence, counts persistence.RetryCounts) error {
	allowed := []persistence.Status{persistence.StatusAssigned, persistence.StatusActive, persistence.StatusCallbacks}
	_, err := s.fenced(ctx, "save retry counters", f, allowed, func(_ time.Time, j *persistence.Job) (writes, error) {
		j.Retry = maps.Clone(counts)
		return nil, nil
	})
	return err
}

// Wait records that an ACTIVE job waits for an inner job, parked or not.
func (s *Store) Wait(ctx context.Context, f persistence.Fence, inner string, park bool) (*persistence.Job, error) {
	if err := persistence.ValidateName("job id", inner); err != nil {
		return nil, fmt.Errorf("wait: %w", err)
	}
	return s.fenced(ctx, "wait", f, []persistence.Status{persistence.StatusActive}, func(_ time.Time, j *persistence.Job) (writes, error) {
		j.WaitingOn, j.Parked = inner, park && !j.Holder.IsZero()
		return func(p redis.Pipeliner) error {
			if !j.Holder.IsZero() {
				if j.Parked {
					p.SAdd(ctx, s.k.parked(j.Queue, j.Holder), j.ID)
				} else {
					p.SRem(ctx, s.k.parked(j.Queue, j.Holder), j.ID)
				}
			}
			return nil
		}, nil
	})
}

// Adopt gives target to the run of by.
func (s *Store) Adopt(ctx context.Context, by persistence.Fence, target string, statuses ...persistence.Status) (*persistence.Job, error) {
	return s.adopt(ctx, by, target, func(j *persistence.Job) error {
		return persistence.CheckStatus("be adopted", j.Status, statuses...)
	})
}

// AdoptWaiting adopts target only if it is ACTIVE and waits for inner.
func (s *Store) AdoptWaiting(ctx context.Context, by persistence.Fence, target, inner string) (*persistence.Job, error) {
	return s.adopt(ctx, by, target, func(j *persistence.Job) error {
		if j.Status != persistence.StatusActive || j.WaitingOn != inner {
			return &persistence.BadStatusError{Op: "be resumed by " + inner + " (it waits for " + j.WaitingOn + ")",
				Status: j.Status, Allowed: []persistence.Status{persistence.StatusActive}}
		}
		return nil
	})
}

// adopt gives target to the run of by when check accepts it.
func (s *Store) adopt(ctx context.Context, by persistence.Fence, target string, check func(*persistence.Job) error) (*persistence.Job, error) {
	const op = "adopt"
	if err := validRef(op, by.Ref); err != nil {
		return nil, err
	}
	ref := by.Ref.In(target)
	if err := validRef(op, ref); err != nil {
		return nil, err
	}
	var out *persistence.Job
	err := s.transact(ctx, op, []string{s.k.job(by.Queue, by.ID), s.k.job(ref.Queue, ref.ID)}, func(t *txn) (writes, error) {
		adopter, _, err := s.readJob(ctx, t, by.Ref)
		if err != nil {
			return nil, err
		}
		if err := checkFence(adopter, by); err != nil {
			return nil, err
		}
		if err := persistence.CheckStatus("adopt a job", adopter.Status, persistence.StatusActive, persistence.StatusCallbacks); err != nil {
			return nil, err
		}
		j, was, err := s.readRun(ctx, t, ref)
		if err != nil {
			return nil, err
		}
		if err := check(j); err != nil {
			return nil, err
		}
		j.Owner = by.Owner
		j.Attempt++
		out = j
		return func(p redis.Pipeliner) error { s.writeJob(ctx, p, j, was); return nil }, nil
	})
	return out, err
}

// AddCallback creates a NEW callback job and appends it to parent's callbacks.
func (s *Store) AddCallback(ctx context.Context, parent persistence.Ref, spec persistence.JobSpec) (*persistence.Job, persistence.Status, error) {
	const op = "add callback"
	if err := validRef(op, parent); err != nil {
		return nil, 0, err
	}
	if err := spec.Validate(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	var cb *persistence.Job
	var status persistence.Status
	err := s.transact(ctx, op, []string{s.k.job(parent.Queue, parent.ID)}, func(t *txn) (writes, error) {
		pj, _, err := s.readJob(ctx, t, parent)
		if err != nil {
			return nil, err
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		cb = newJob(parent.Queue, spec, callbackJob, now)
		cb.Parent = parent.ID
		status = pj.Status
		return func(p redis.Pipeliner) error {
			s.writeJob(ctx, p, cb, nil)
			ids := append(pj.Callbacks, cb.ID)
			p.HSet(ctx, s.k.job(parent.Queue, parent.ID), fCallbacks, mustJSON(ids))
			return nil
		}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return cb, status, nil
}
