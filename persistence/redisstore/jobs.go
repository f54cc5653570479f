package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// jobKind says which defaults a new job gets.
type jobKind uint8

const (
	queuedJob   jobKind = iota // a job put by a user: RetryCommonFourTimes, failures at ERROR
	callbackJob                // a callback: RetryCommonForever, failures at LevelCritical
	systemJob                  // a system job: as a callback
)

// newJob builds the record of a new job from a validated spec.
func newJob(q string, spec persistence.JobSpec, kind jobKind, now time.Time) *persistence.Job {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New() // NewV7 fails only if the system's randomness does
	}
	j := &persistence.Job{
		Ref:         persistence.Ref{Queue: q, ID: id.String()},
		Call:        spec.Call,
		Status:      persistence.StatusNew,
		BeginAfter:  spec.BeginAfter.UTC().Truncate(time.Microsecond),
		BeginBy:     spec.BeginBy.Truncate(time.Microsecond),
		Timeout:     spec.Timeout.Truncate(time.Microsecond),
		Priority:    persistence.PriorityOr(spec.Priority),
		QuotaNames:  slices.Clone(spec.QuotaNames),
		RetryPolicy: spec.RetryPolicy,
		Choice:      spec.Choice,
		Target:      spec.Target,
		Assigner:    spec.Assigner,
		Created:     now,
	}
	switch {
	case spec.BeginIn > 0:
		j.BeginAfter = now.Add(spec.BeginIn).Truncate(time.Microsecond)
	case spec.BeginAfter.IsZero():
		j.BeginAfter = now
	}
	if j.RetryPolicy == "" {
		j.RetryPolicy = persistence.RetryCommonFourTimesName
		if kind != queuedJob {
			j.RetryPolicy = persistence.RetryCommonForeverName
		}
	}
	switch {
	case spec.FailureLogLevel != nil:
		j.FailureLogLevel = *spec.FailureLogLevel
	case kind == queuedJob:
		j.FailureLogLevel = slog.LevelError
	default:
		j.FailureLogLevel = persistence.LevelCritical
	}
	return j
}

// validQueue checks a queue name, wrapping the error with op.
func validQueue(op, q string) error {
	if err := persistence.ValidateName("queue", q); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// validRef checks a job reference, wrapping the error with op.
func validRef(op string, r persistence.Ref) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Create stores a NEW job in no queue order.
func (s *Store) Create(ctx context.Context, q string, spec persistence.JobSpec) (*persistence.Job, error) {
	const op = "create"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	now, err := s.now(ctx)
	if err != nil {
		return nil, err
	}
	j := newJob(q, spec, queuedJob, now)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.writeJob(ctx, p, j, nil)
		return nil
	})
	return j, s.fail(op, err)
}

// readJob reads a job, and the hash it was read from (for writeJob): ErrNotFound when it does
// not exist. A record read in part gives the job as far as it was read, with its
// *persistence.CorruptError.
func (s *Store) readJob(ctx context.Context, r reader, ref persistence.Ref) (*persistence.Job, map[string]string, error) {
	var h *redis.MapStringStringCmd
	if err := r.pipelined(ctx, func(p redis.Pipeliner) { h = p.HGetAll(ctx, s.k.job(ref.Queue, ref.ID)) }); err != nil {
		return nil, nil, err
	}
	j, ok, err := decodeJob(ref, h.Val())
	if err != nil {
		return j, nil, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w: job %s", persistence.ErrNotFound, ref)
	}
	return j, h.Val(), nil
}

// readJobs reads several jobs of queue q in one round trip, as readJob reads one: each job and
// its hash, nil for one that does not exist. The first record that cannot be read whole
// gives its error.
func (s *Store) readJobs(ctx context.Context, r reader, q string, ids []string) ([]*persistence.Job, []map[string]string, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if err := r.pipelined(ctx, func(p redis.Pipeliner) {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.k.job(q, id))
		}
	}); err != nil {
		return nil, nil, err
	}
	jobs, hashes := make([]*persistence.Job, len(ids)), make([]map[string]string, len(ids))
	for i, c := range cmds {
		j, ok, err := decodeJob(persistence.Ref{Queue: q, ID: ids[i]}, c.Val())
		if err != nil {
			return nil, nil, err
		}
		if ok {
			jobs[i], hashes[i] = j, c.Val()
		}
	}
	return jobs, hashes, nil
}

// readRun is readJob for a fenced write, which may go on with a job read in part when its
// fence could be read (see fenceRead).
func (s *Store) readRun(ctx context.Context, r reader, ref persistence.Ref) (*persistence.Job, map[string]string, error) {
	var h *redis.MapStringStringCmd
	if err := r.pipelined(ctx, func(p redis.Pipeliner) { h = p.HGetAll(ctx, s.k.job(ref.Queue, ref.ID)) }); err != nil {
		return nil, nil, err
	}
	j, ok, err := decodeJob(ref, h.Val())
	if err != nil && !fenceRead(j) {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w: job %s", persistence.ErrNotFound, ref)
	}
	return j, h.Val(), nil
}

// Get reads a job. A record that cannot be read whole gives a *persistence.CorruptError,
// with the job as far as it could be read.
func (s *Store) Get(ctx context.Context, ref persistence.Ref) (*persistence.Job, error) {
	if err := validRef("get", ref); err != nil {
		return nil, err
	}
	j, _, err := s.readJob(ctx, plain{s.rdb}, ref)
	return j, s.fail("get", err)
}

// GetMany reads several jobs of one queue in one round trip; missing ones are nil, and those
// whose record cannot be read whole are read in part, their Corrupt set.
func (s *Store) GetMany(ctx context.Context, q string, ids []string) ([]*persistence.Job, error) {
	const op = "get many"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := persistence.ValidateName("job id", id); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.k.job(q, id))
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(op, err)
	}
	return decodeMany(q, ids, cmds)
}

// decodeMany decodes the hashes of ids; a record read in part is returned with its Corrupt
// set, so that one bad record does not hide the others.
func decodeMany(q string, ids []string, cmds []*redis.MapStringStringCmd) ([]*persistence.Job, error) {
	out := make([]*persistence.Job, len(ids))
	for i, c := range cmds {
		j, ok, err := partial(decodeJob(persistence.Ref{Queue: q, ID: ids[i]}, c.Val()))
		if err != nil {
			return nil, err
		}
		if ok {
			out[i] = j
		}
	}
	return out, nil
}

// quotaSizes reads the sizes of a queue's quotas.
func (s *Store) quotaSizes(ctx context.Context, r reader, q string) (map[string]int, error) {
	var h *redis.MapStringStringCmd
	if err := r.pipelined(ctx, func(p redis.Pipeliner) { h = p.HGetAll(ctx, s.k.quotas(q)) }); err != nil {
		return nil, err
	}
	return parseQuotaSizes(h.Val())
}

func parseQuotaSizes(h map[string]string) (map[string]int, error) {
	sizes := make(map[string]int, len(h))
	for name, v := range h {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil {
			return nil, fmt.Errorf("%w: quota %s size %q", persistence.ErrCorrupt, name, v)
		}
		sizes[name] = n
	}
	return sizes, nil
}

// checkQuotas fails with ErrUnknownQuota for a name not in sizes.
func checkQuotas(names []string, sizes map[string]int) error {
	for _, n := range names {
		if _, ok := sizes[n]; !ok {
			return fmt.Errorf("%w: %q", persistence.ErrUnknownQuota, n)
		}
	}
	return nil
}

// Update changes a job that is not running, following reference §1.2.
func (s *Store) Update(ctx context.Context, ref persistence.Ref, c persistence.Change) (*persistence.Job, error) {
	const op = "update"
	if err := validChange(op, ref, c); err != nil {
		return nil, err
	}
	var out *persistence.Job
	err := s.transact(ctx, op, []string{s.k.job(ref.Queue, ref.ID), s.k.quotas(ref.Queue)}, func(t *txn) (writes, error) {
		j, was, err := s.readJob(ctx, t, ref)
		if err != nil {
			return nil, err
		}
		if err := s.applyChange(ctx, t, j, c); err != nil {
			return nil, err
		}
		out = j
		return func(p redis.Pipeliner) error { s.writeJob(ctx, p, j, was); return nil }, nil
	})
	return out, err
}

// validChange checks a change's values before anything is read.
func validChange(op string, ref persistence.Ref, c persistence.Change) error {
	if err := validRef(op, ref); err != nil {
		return err
	}
	if c.Call != nil {
		if err := c.Call.Validate(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if c.BeginAfter != nil && c.BeginAfter.IsZero() {
		return fmt.Errorf("%s: %w: zero begin_after", op, persistence.ErrInvalid)
	}
	if c.BeginAfter != nil {
		if err := persistence.ValidateTime("begin_after", *c.BeginAfter); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if c.BeginBy != nil && *c.BeginBy < 0 {
		return fmt.Errorf("%s: %w: negative begin_by %s", op, persistence.ErrInvalid, *c.BeginBy)
	}
	if c.QuotaNames != nil {
		if err := persistence.ValidateQuotaNames(*c.QuotaNames); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return nil
}

// applyChange applies c to j read in t, checking the status rules and, for a PENDING job, that
// its new quota names exist.
func (s *Store) applyChange(ctx context.Context, t *txn, j *persistence.Job, c persistence.Change) error {
	if c.Call != nil || c.BeginAfter != nil {
		if err := persistence.CheckStatus("change the call or begin_after", j.Status, persistence.CallMutable...); err != nil {
			return err
		}
	}
	if c.BeginBy != nil || c.QuotaNames != nil {
		if err := persistence.CheckStatus("change begin_by or quota names", j.Status, persistence.ScheduleMutable...); err != nil {
			return err
		}
	}
	if c.QuotaNames != nil && j.Status == persistence.StatusPending {
		sizes, err := s.quotaSizes(ctx, t, j.Queue)
		if err != nil {
			return err
		}
		if err := checkQuotas(*c.QuotaNames, sizes); err != nil {
			return err
		}
	}
	if c.Call != nil {
		j.Call = *c.Call
	}
	if c.BeginAfter != nil {
		j.BeginAfter = c.BeginAfter.UTC().Truncate(time.Microsecond)
	}
	if c.BeginBy != nil {
		j.BeginBy = c.BeginBy.Truncate(time.Microsecond)
	}
	if c.QuotaNames != nil {
		j.QuotaNames = slices.Clone(*c.QuotaNames)
	}
	return nil
}

// checkFence fails with ErrReassigned unless j is still in the run f names.
func checkFence(j *persistence.Job, f persistence.Fence) error {
	if j.Owner != f.Owner || j.Attempt != f.Attempt {
		return fmt.Errorf("%w: job %s is now owned by %q at attempt %d, not by %q at attempt %d",
			persistence.ErrReassigned, j.Ref, j.Owner, j.Attempt, f.Owner, f.Attempt)
	}
	return nil
}

// release queues the writes that take j out of every queue, agent and quota it is in.
// keepQuotas leaves its quota slots (a job put back to be retried now keeps them).
func (s *Store) release(ctx context.Context, p redis.Pipeliner, j *persistence.Job, keepQuotas bool) {
	q := j.Queue
	s.unqueue(ctx, p, j)
	p.LRem(ctx, s.k.putback(q), 0, j.ID)
	if !j.Holder.IsZero() {
		p.ZRem(ctx, s.k.agent(q, j.Holder), j.ID)
		p.SRem(ctx, s.k.parked(q, j.Holder), j.ID)
	}
	if !keepQuotas {
		for _, n := range j.QuotaNames {
			p.SRem(ctx, s.k.quota(q, n), j.ID)
		}
	}
}

// Fail completes a job that has not started with failure f.
func (s *Store) Fail(ctx context.Context, ref persistence.Ref, fence *persistence.Fence, f *persistence.Failure) (*persistence.Job, error) {
	return s.failJob(ctx, "fail", ref, fence, f, false, false)
}

// Cancel fails a job that has not started and queues a resumeCallbacks job for it.
func (s *Store) Cancel(ctx context.Context, ref persistence.Ref, f *persistence.Failure) (*persistence.Job, error) {
	return s.failJob(ctx, "cancel", ref, nil, f, true, false)
}

// Revoke cancels a job whose outcome is not stored yet, fencing out any run of it.
func (s *Store) Revoke(ctx context.Context, ref persistence.Ref, f *persistence.Failure) (*persistence.Job, error) {
	return s.failJob(ctx, "revoke", ref, nil, f, true, true)
}

// failJob stores failure f as the outcome of a job that has not started (with revoke: that
// has not stored one, fencing out its run); with resume, a resumeCallbacks system job is
// queued for it in the same transaction.
func (s *Store) failJob(ctx context.Context, op string, ref persistence.Ref, fence *persistence.Fence, f *persistence.Failure, resume, revoke bool) (*persistence.Job, error) {
	if err := validRef(op, ref); err != nil {
		return nil, err
	}
	if f == nil {
		return nil, fmt.Errorf("%s: %w: nil failure", op, persistence.ErrInvalid)
	}
	var out *persistence.Job
	err := s.transact(ctx, op, []string{s.k.job(ref.Queue, ref.ID)}, func(t *txn) (writes, error) {
		j, was, err := s.readJob(ctx, t, ref)
		if err != nil {
			return nil, err
		}
		if fence != nil {
			if err := checkFence(j, *fence); err != nil {
				return nil, err
			}
		}
		out = j
		allowed := persistence.Failable
		if revoke {
			allowed = persistence.Revocable
		} else if j.Status == persistence.StatusCallbacks {
			return nil, nil // only its callbacks are left to resume
		}
		if err := persistence.CheckStatus(op, j.Status, allowed...); err != nil {
			return nil, err
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		// A run that may hold the job (claimed or started) is told to stop, and fenced out:
		// with no owner, each of its writes gets ErrReassigned.
		running := revoke && (j.Status == persistence.StatusAssigned || j.Status == persistence.StatusActive)
		return func(p redis.Pipeliner) error {
			s.release(ctx, p, j, false)
			s.releaseUnique(ctx, p, j, false) // failed before its run stored an outcome: no keep period
			j.Status, j.Failure, j.Result, j.Holder, j.ActiveEnd = persistence.StatusCallbacks, f, nil, persistence.Owner{}, now
			if revoke {
				j.Owner, j.WaitingOn, j.Parked = persistence.Owner{}, "", false
			}
			s.writeJob(ctx, p, j, was)
			if running {
				p.Publish(ctx, s.k.wake(ref.Queue), revokePayload+ref.ID)
			}
			if resume {
				sys := newJob(ref.Queue, persistence.JobSpec{Call: persistence.Call{Handler: persistence.HandlerResumeCallbacks}, Target: j.ID}, systemJob, now)
				s.enqueue(ctx, p, sys, now, nil)
				p.Publish(ctx, s.k.wake(ref.Queue), ref.Queue)
			}
			return nil
		}, nil
	})
	return out, err
}

// SetAnnotation writes a live annotation. The record is marked annotated (once), so that its
// completion expires the annotations with it, and an annotation of a job that completed
// already expires with the record.
func (s *Store) SetAnnotation(ctx context.Context, ref persistence.Ref, name string, value json.RawMessage) error {
	return s.setAnnotation(ctx, "set annotation", ref, nil, name, value)
}

// SetRunAnnotation writes a live annotation as SetAnnotation does, only while run f holds the
// job: the job's record is watched, not written (unless to mark it annotated, once).
func (s *Store) SetRunAnnotation(ctx context.Context, f persistence.Fence, name string, value json.RawMessage) error {
	return s.setAnnotation(ctx, "set a run's annotation", f.Ref, &f, name, value)
}

// annotatingRun are the statuses in which a run may still annotate its job.
var annotatingRun = []persistence.Status{persistence.StatusAssigned, persistence.StatusActive, persistence.StatusCallbacks}

// setAnnotation writes a live annotation of ref, fenced to run f when f is not nil.
func (s *Store) setAnnotation(ctx context.Context, op string, ref persistence.Ref, f *persistence.Fence, name string, value json.RawMessage) error {
	if err := validRef(op, ref); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("%s: %w: empty annotation name", op, persistence.ErrInvalid)
	}
	if !json.Valid(value) {
		return fmt.Errorf("%s: %w: value of %q is not JSON: %.40q", op, persistence.ErrInvalid, name, value)
	}
	key := s.k.job(ref.Queue, ref.ID)
	// The commit script is told to declare this job's annotations key (see commitCall).
	s.annotated.Store(key, struct{}{})
	return s.transact(ctx, op, []string{key}, func(t *txn) (writes, error) {
		// A fenced write reads the record whole, which tells whether it is marked; an
		// unfenced one reads only the mark.
		var ttl *redis.DurationCmd
		var marked *redis.BoolCmd
		var record *redis.MapStringStringCmd
		if err := t.pipelined(ctx, func(p redis.Pipeliner) {
			ttl = p.PTTL(ctx, key)
			if f != nil {
				record = p.HGetAll(ctx, key)
			} else {
				marked = p.HExists(ctx, key, fAnnotated)
			}
		}); err != nil {
			return nil, err
		}
		if ttl.Val() == -2 { // PTTL's answer for a key that does not exist
			return nil, fmt.Errorf("%w: job %s", persistence.ErrNotFound, ref)
		}
		var isMarked bool
		if f != nil {
			h := record.Val()
			j, ok, err := decodeJob(ref, h)
			if err != nil && (j == nil || !fenceRead(j)) {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("%w: job %s", persistence.ErrNotFound, ref)
			}
			if err := checkRun(op, *f, j, annotatingRun); err != nil {
				return nil, err
			}
			_, isMarked = h[fAnnotated]
		} else {
			isMarked = marked.Val()
		}
		return func(p redis.Pipeliner) error {
			ann := s.k.annotations(ref.Queue, ref.ID)
			p.HSet(ctx, ann, name, string(value))
			if !isMarked {
				// Once: later annotations leave the record alone, so that a handler reporting
				// progress does not keep the job's own transactions retrying.
				p.HSet(ctx, key, fAnnotated, "1")
			}
			if ttl.Val() > 0 {
				p.PExpire(ctx, ann, ttl.Val())
			}
			return nil
		}, nil
	})
}

// Annotation reads one live annotation.
func (s *Store) Annotation(ctx context.Context, ref persistence.Ref, name string) (json.RawMessage, bool, error) {
	all, err := s.Annotations(ctx, ref)
	if err != nil {
		return nil, false, err
	}
	v, ok := all[name]
	return v, ok, nil
}

// Annotations reads all live annotations of a job.
func (s *Store) Annotations(ctx context.Context, ref persistence.Ref) (map[string]json.RawMessage, error) {
	const op = "annotations"
	if err := validRef(op, ref); err != nil {
		return nil, err
	}
	var h *redis.MapStringStringCmd
	var exists *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, s.k.annotations(ref.Queue, ref.ID))
		exists = p.Exists(ctx, s.k.job(ref.Queue, ref.ID))
		return nil
	})
	if err != nil {
		return nil, s.fail(op, err)
	}
	if exists.Val() == 0 {
		return nil, fmt.Errorf("%s: %w: job %s", op, persistence.ErrNotFound, ref)
	}
	out := make(map[string]json.RawMessage, len(h.Val()))
	for k, v := range h.Val() {
		out[k] = json.RawMessage(v)
	}
	return out, nil
}
