package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// position is a pending job's score: its begin_after if that is ahead, else the next tick of
// the store's queue clock (a job whose time has come goes to the end of the queue, reference
// §1.5).
func (s *Store) position(j *persistence.Job, now time.Time) float64 {
	if j.BeginAfter.After(now) {
		return float64(micros(j.BeginAfter))
	}
	return float64(s.tick(now))
}

// tick returns now in microseconds, or one more than the last tick if that is not later: due
// jobs put through one store keep their order even when the clock stands still or steps back.
func (s *Store) tick(now time.Time) int64 {
	us := micros(now)
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	if us <= s.lastTick {
		us = s.lastTick + 1
	}
	s.lastTick = us
	return us
}

// dueUntil is the highest position a claim at now takes: now, or the last tick this store
// gave if that ran ahead of the clock.
func (s *Store) dueUntil(now time.Time) int64 {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	return max(micros(now), s.lastTick)
}

// enqueue queues the writes that make j PENDING in its queue; was is as for writeJob.
func (s *Store) enqueue(ctx context.Context, p redis.Pipeliner, j *persistence.Job, now time.Time, was map[string]string) {
	j.Status, j.Owner, j.Holder = persistence.StatusPending, persistence.Owner{}, persistence.Owner{}
	s.writeJob(ctx, p, j, was)
	s.queueAt(ctx, p, j, s.position(j, now))
}

// callBuffers keeps buffers for encoded calls between puts.
var callBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxCallBuffer is the largest buffer kept for another put: larger calls are rare, and a
// buffer kept holds its memory.
const maxCallBuffer = 1 << 20

// Put creates a job and puts it in a queue.
func (s *Store) Put(ctx context.Context, q string, spec persistence.JobSpec) (*persistence.Job, error) {
	jobs, err := s.PutMany(ctx, q, []persistence.JobSpec{spec})
	if err != nil {
		return nil, err
	}
	return jobs[0], nil
}

// PutMany puts several jobs in one transaction: one round trip when none names a quota, two
// when some do (the quotas must exist; a quota removed right after the check is ignored at
// claim time, as any removed quota is).
func (s *Store) PutMany(ctx context.Context, q string, specs []persistence.JobSpec) ([]*persistence.Job, error) {
	jobs, errs, err := s.PutEach(ctx, q, [][]persistence.JobSpec{specs})
	if err != nil {
		return nil, err
	}
	return jobs[0], errs[0]
}

// PutEach puts groups of jobs in one transaction, each group checked on its own: one round
// trip when none names a quota, two when some do, as for PutMany. A group refused is left
// out of the transaction; the others are written together, in the order of groups.
func (s *Store) PutEach(ctx context.Context, q string, groups [][]persistence.JobSpec) ([][]*persistence.Job, []error, error) {
	const op = "put"
	if err := validQueue(op, q); err != nil {
		return nil, nil, err
	}
	if hasUnique(groups) {
		return s.putEachUnique(ctx, q, groups) // unique.go: a path of its own
	}
	errs := make([]error, len(groups))
	needQuotas := false // some group that may go names quotas: their sizes must be read
	// Each call is checked and encoded in one pass, into a buffer kept for the next puts once
	// Redis has it (a call is as large as its arguments: a new one each time was most of what
	// a put of large arguments gave the garbage collector to do).
	calls := make([][][]byte, len(groups))
	var bufs []*[]byte
	defer func() {
		for _, buf := range bufs {
			if cap(*buf) <= maxCallBuffer {
				callBuffers.Put(buf)
			}
		}
	}()
	for g, specs := range groups {
		calls[g] = make([][]byte, len(specs))
		for i := range specs {
			buf := callBuffers.Get().(*[]byte)
			bufs = append(bufs, buf)
			var err error
			if *buf, err = specs[i].AppendCall((*buf)[:0]); err != nil {
				errs[g] = fmt.Errorf("%s: %w", op, err)
				break
			}
			if len(*buf) > 0 { // else a pair of callbacks, which has no call of its own
				calls[g][i] = *buf
			}
		}
		for i := 0; errs[g] == nil && i < len(specs) && !needQuotas; i++ {
			needQuotas = len(specs[i].QuotaNames) > 0
		}
	}
	if needQuotas {
		if err := s.checkGroupQuotas(ctx, op, q, groups, errs); err != nil {
			return nil, nil, err
		}
	}
	n := 0
	for g, specs := range groups {
		if errs[g] == nil {
			n += len(specs)
		}
	}
	out := make([][]*persistence.Job, len(groups))
	if n == 0 {
		return out, errs, nil
	}
	if err := s.rememberQueue(ctx, q); err != nil {
		return nil, nil, err
	}
	now, err := s.now(ctx)
	if err != nil {
		return nil, nil, err
	}
	all, allCalls := make([]*persistence.Job, 0, n), make([][]byte, 0, n)
	for g, specs := range groups {
		if errs[g] != nil {
			continue
		}
		out[g] = make([]*persistence.Job, len(specs))
		for i, spec := range specs {
			out[g][i] = newJob(q, spec, queuedJob, now)
			all = append(all, out[g][i])
			allCalls = append(allCalls, calls[g][i])
		}
	}
	err = s.use(func(c redis.Cmdable) error {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			// One ZADD for all the jobs: Redis's cost of a command is mostly its own, not
			// its members'.
			scored := make([]redis.Z, len(all))
			for i, j := range all {
				j.Status = persistence.StatusPending
				s.writeNewJob(ctx, p, j, allCalls[i])
				scored[i] = redis.Z{Score: s.position(j, now), Member: j.ID}
			}
			if scored = s.queuePrioritized(ctx, p, q, all, scored); len(scored) > 0 {
				p.ZAdd(ctx, s.k.pending(q), scored...)
			}
			p.Publish(ctx, s.k.wake(q), wakePayload(q, all))
			return nil
		})
		return err
	})
	if err != nil {
		return nil, nil, s.fail(op, err)
	}
	h := s.heads.get(q, s.k)
	for _, j := range all[:min(len(all), maxExpected)] {
		h.expect(s.k.job(q, j.ID))
	}
	return out, errs, nil
}

// Enqueue puts an existing NEW job in its queue.
func (s *Store) Enqueue(ctx context.Context, ref persistence.Ref) (*persistence.Job, error) {
	return s.EnqueueWith(ctx, ref, persistence.Change{})
}

// EnqueueWith applies c to a NEW job and puts it in its queue, in one transaction.
func (s *Store) EnqueueWith(ctx context.Context, ref persistence.Ref, c persistence.Change) (*persistence.Job, error) {
	const op = "enqueue"
	if err := validChange(op, ref, c); err != nil {
		return nil, err
	}
	if err := s.rememberQueue(ctx, ref.Queue); err != nil {
		return nil, err
	}
	var out *persistence.Job
	err := s.transact(ctx, op, []string{s.k.job(ref.Queue, ref.ID), s.k.quotas(ref.Queue)}, func(t *txn) (writes, error) {
		j, was, err := s.readJob(ctx, t, ref)
		if err != nil {
			return nil, err
		}
		if err := persistence.CheckStatus("put a job in a queue (cannot add already-assigned job)", j.Status, persistence.StatusNew); err != nil {
			return nil, err
		}
		if err := s.applyChange(ctx, t, j, c); err != nil {
			return nil, err
		}
		if len(j.QuotaNames) > 0 {
			sizes, err := s.quotaSizes(ctx, t, ref.Queue)
			if err != nil {
				return nil, err
			}
			if err := checkQuotas(j.QuotaNames, sizes); err != nil {
				return nil, err
			}
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		out = j
		return func(p redis.Pipeliner) error {
			s.enqueue(ctx, p, j, now, was)
			p.Publish(ctx, s.k.wake(ref.Queue), ref.Queue)
			return nil
		}, nil
	})
	return out, err
}

// Pull takes the job at index (claim order) out of the queue.
func (s *Store) Pull(ctx context.Context, q string, index int) (*persistence.Job, error) {
	const op = "pull"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	var out *persistence.Job
	now, err := s.now(ctx)
	if err != nil {
		return nil, err
	}
	keys := s.pendingKeys(q)
	err = s.transact(ctx, op, append([]string{s.k.putback(q)}, keys...), func(t *txn) (writes, error) {
		var nPut *redis.IntCmd
		var card, due []*redis.IntCmd
		if err := t.pipelined(ctx, func(p redis.Pipeliner) {
			nPut = p.LLen(ctx, s.k.putback(q))
			card, due = s.pendingCounts(ctx, p, q, s.dueUntil(now))
		}); err != nil {
			return nil, err
		}
		spans := pendingSpans(keys, card, due)
		total, i := int(nPut.Val()+spanTotal(spans)), index
		if i < 0 {
			i += total
		}
		if i < 0 || i >= total {
			return nil, fmt.Errorf("%w: index %d of %d pending jobs", persistence.ErrNotInQueue, index, total)
		}
		var at *redis.StringSliceCmd
		if err := t.pipelined(ctx, func(p redis.Pipeliner) {
			if n := int(nPut.Val()); i < n {
				at = p.LRange(ctx, s.k.putback(q), int64(i), int64(i))
			} else {
				sp := spanWindow(spans, int64(i-n), 1)[0]
				at = p.ZRange(ctx, sp.key, sp.from, sp.from)
			}
		}); err != nil {
			return nil, err
		}
		ids := at.Val()
		if len(ids) != 1 {
			return nil, fmt.Errorf("%w: index %d", persistence.ErrNotInQueue, index)
		}
		return s.removeWrites(ctx, t, persistence.Ref{Queue: q, ID: ids[0]}, &out)
	})
	return out, err
}

// Remove takes a pending job out of its queue.
func (s *Store) Remove(ctx context.Context, ref persistence.Ref) (*persistence.Job, error) {
	const op = "remove"
	if err := validRef(op, ref); err != nil {
		return nil, err
	}
	var out *persistence.Job
	err := s.transact(ctx, op, []string{s.k.job(ref.Queue, ref.ID)}, func(t *txn) (writes, error) {
		return s.removeWrites(ctx, t, ref, &out)
	})
	return out, err
}

// removeWrites reads ref (watching it) and returns the writes that take it out of its queue,
// back to NEW; ErrNotInQueue unless it is PENDING.
func (s *Store) removeWrites(ctx context.Context, t *txn, ref persistence.Ref, out **persistence.Job) (writes, error) {
	t.watch(s.k.job(ref.Queue, ref.ID))
	j, was, err := s.readJob(ctx, t, ref)
	if err != nil {
		return nil, err
	}
	if j.Status != persistence.StatusPending {
		return nil, fmt.Errorf("%w: job %s is %s", persistence.ErrNotInQueue, ref, j.Status)
	}
	*out = j
	return func(p redis.Pipeliner) error {
		s.release(ctx, p, j, false)
		s.releaseUnique(ctx, p, j, false) // NEW holds no key
		j.Status, j.Assigner = persistence.StatusNew, ""
		s.writeJob(ctx, p, j, was)
		return nil
	}, nil
}

// Pending lists pending ids in claim order, reading only the window asked for.
func (s *Store) Pending(ctx context.Context, q string, offset, limit int) ([]string, error) {
	const op = "pending"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	if offset < 0 || limit < 0 {
		return nil, fmt.Errorf("%s: %w: negative offset %d or limit %d", op, persistence.ErrInvalid, offset, limit)
	}
	if limit == 0 {
		return nil, nil
	}
	now, err := s.now(ctx)
	if err != nil {
		return nil, err
	}
	var head *redis.StringSliceCmd
	var nPut *redis.IntCmd
	var card, due []*redis.IntCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		head = p.LRange(ctx, s.k.putback(q), int64(offset), int64(offset+limit-1))
		nPut = p.LLen(ctx, s.k.putback(q))
		card, due = s.pendingCounts(ctx, p, q, s.dueUntil(now))
		return nil
	}); err != nil {
		return nil, s.fail(op, err)
	}
	ids := head.Val()
	rest := limit - len(ids)
	if rest <= 0 {
		return ids, nil
	}
	spans := spanWindow(pendingSpans(s.pendingKeys(q), card, due), int64(max(0, offset-int(nPut.Val()))), int64(rest))
	if len(spans) == 0 {
		return ids, nil
	}
	reads := make([]*redis.StringSliceCmd, len(spans))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sp := range spans {
			reads[i] = p.ZRange(ctx, sp.key, sp.from, sp.to-1)
		}
		return nil
	}); err != nil {
		return nil, s.fail(op, err)
	}
	for _, r := range reads {
		ids = append(ids, r.Val()...)
	}
	return ids, nil
}

// Subscribe returns a subscription to the wake-ups of queues.
func (s *Store) Subscribe(ctx context.Context, queues ...string) (persistence.Subscription, error) {
	const op = "subscribe"
	if len(queues) == 0 {
		return nil, fmt.Errorf("%s: %w: no queue", op, persistence.ErrInvalid)
	}
	channels := make(map[string]string, len(queues)) // channel → queue name
	for _, q := range queues {
		if err := validQueue(op, q); err != nil {
			return nil, err
		}
		channels[s.k.wake(q)] = q
	}
	return s.subscribe(ctx, op, channels, func(ch, payload string) []string {
		q := channels[ch]
		if id, ok := strings.CutPrefix(payload, revokePayload); ok {
			return []string{persistence.RevokeNotice(persistence.Ref{Queue: q, ID: id})}
		}
		// A put names the jobs it put after the queue: this store's next claim declares them.
		if ids := strings.Fields(payload); len(ids) > 1 {
			h := s.heads.get(q, s.k)
			for _, id := range ids[1:] {
				h.expect(s.k.job(q, id))
			}
		}
		return []string{q}
	})
}

// revokePayload starts the message Revoke publishes on a queue's wake-up channel, followed by
// the job's id. (A put's message starts with the queue's name, which has no '!'.)
const revokePayload = "!revoke "

// SetPaused pauses or resumes a queue: its mark is a field of the dispatchers hash, which
// every claim reads (see pausedField).
func (s *Store) SetPaused(ctx context.Context, q string, paused bool) (bool, error) {
	op := "resume"
	if paused {
		op = "pause"
	}
	if err := validQueue(op, q); err != nil {
		return false, err
	}
	var changed bool
	err := s.use(func(c redis.Cmdable) error {
		if !paused {
			n, err := c.HDel(ctx, s.k.dispatchers(q), pausedField).Result()
			changed = n > 0
			if err == nil && changed {
				err = c.Publish(ctx, s.k.wake(q), q).Err()
			}
			return err
		}
		now, err := s.now(ctx)
		if err != nil {
			return err
		}
		changed, err = c.HSetNX(ctx, s.k.dispatchers(q), pausedField, strconv.FormatInt(micros(now), 10)).Result()
		return err
	})
	return changed, s.fail(op, err)
}

// Paused reports whether a queue is paused.
func (s *Store) Paused(ctx context.Context, q string) (bool, error) {
	const op = "paused"
	if err := validQueue(op, q); err != nil {
		return false, err
	}
	n, err := s.rdb.HExists(ctx, s.k.dispatchers(q), pausedField).Result()
	return n, s.fail(op, err)
}

// Completions returns a subscription to the ids of a queue's jobs as they complete.
func (s *Store) Completions(ctx context.Context, q string) (persistence.Subscription, error) {
	const op = "completions"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	// A commit of several jobs publishes their ids in one message, separated by spaces.
	return s.subscribe(ctx, op, map[string]string{s.k.done(q): q}, func(_, payload string) []string { return strings.Fields(payload) })
}

// subscribe subscribes to channels and delivers values(channel, payload) for each message.
func (s *Store) subscribe(ctx context.Context, op string, channels map[string]string, values func(channel, payload string) []string) (persistence.Subscription, error) {
	names := make([]string, 0, len(channels))
	for ch := range channels {
		names = append(names, ch)
	}
	ps := s.rdb.Subscribe(ctx, names...)
	// Wait for every confirmation, so that what is published after this returns is delivered.
	for range names {
		if _, err := ps.Receive(ctx); err != nil {
			ps.Close()
			return nil, s.fail(op, err)
		}
	}
	sub := &subscription{ps: ps, c: make(chan string, 256), done: make(chan struct{})}
	go sub.run(values)
	return sub, nil
}

type subscription struct {
	ps        *redis.PubSub
	c         chan string
	done      chan struct{}
	closeOnce sync.Once
}

func (s *subscription) run(values func(channel, payload string) []string) {
	defer close(s.done)
	defer close(s.c)
	for m := range s.ps.Channel() {
		for _, v := range values(m.Channel, m.Payload) {
			select {
			case s.c <- v:
			default: // the reader is behind: drop (a wake-up is already waiting; a waiter re-reads)
			}
		}
	}
}

func (s *subscription) C() <-chan string { return s.c }

func (s *subscription) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if e := s.ps.Close(); e != nil && !strings.Contains(e.Error(), "closed") {
			err = fmt.Errorf("close subscription: %w: %s", persistence.ErrUnavailable, e.Error())
		}
		<-s.done
	})
	return err
}

// checkGroupQuotas reads the sizes of q's quotas and refuses, in errs, each group not yet
// refused that names a quota q does not have.
func (s *Store) checkGroupQuotas(ctx context.Context, op, q string, groups [][]persistence.JobSpec, errs []error) error {
	sizes, err := s.quotaSizes(ctx, plain{s.rdb}, q)
	if err != nil {
		return s.fail(op, err)
	}
	for g, specs := range groups {
		for i := 0; errs[g] == nil && i < len(specs); i++ {
			if err := checkQuotas(specs[i].QuotaNames, sizes); err != nil {
				errs[g] = fmt.Errorf("%s: %w", op, err)
			}
		}
	}
	return nil
}
