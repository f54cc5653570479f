package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// Priorities. The pending jobs of the default priority are where they always were, in the
// queue's pending zset; those of each other priority are in a zset of their own (keys.pendingAt),
// scored the same way, and a field of the queue's dispatchers hash (priorityField) marks each
// priority whose zset may hold jobs. So a queue that never uses priorities has the keys it
// had, and its claims read a few absent fields more in a command they send anyway; a claim
// takes the due jobs of each priority in turn, the highest first, each zset read as pending
// is (O(log n) a read), and skips the priorities not marked.
//
// The marks are kept in the transactions that queue a job at a priority (every writer of a
// pendingAt zset sets its mark, in the same MULTI or script, with HSETNX, which leaves a
// hash that has the mark untouched and so disturbs no WATCH of it), and a mark is deleted
// only in claimScript, atomically with finding that priority's zset empty: every priority
// whose zset holds jobs is marked. Other writers that empty a zset (a cancel, a delete)
// leave its mark, which costs the next claims an empty read until one of them drops it.
// (A set of its own was a command more for every claim, marks or not.) One more field,
// anyPriorityField, is set with every mark and deleted with the last: a claim reads it
// alone, and the eight marks only when it is set, so that a queue without priorities
// pays one field's read.

// levels are the priorities in claim order, the highest first.
var levels = func() []int {
	var l []int
	for p := persistence.MaxPriority; p >= persistence.MinPriority; p-- {
		l = append(l, p)
	}
	return l
}()

// level is the priority j is queued at.
func level(j *persistence.Job) int { return persistence.PriorityOr(j.Priority) }

// priority reads the priority field; out of range is unreadable.
func (d *jobDecoder) priority(v string) {
	n := d.num(fPriority, v)
	if n < persistence.MinPriority || n > persistence.MaxPriority {
		if d.corrupt == nil || !slices.Contains(d.corrupt.Fields, fPriority) {
			d.bad(fPriority, fmt.Errorf("priority %q: want %d to %d", v, persistence.MinPriority, persistence.MaxPriority))
		}
		return
	}
	d.j.Priority = int(n)
}

// queueAt queues the write that puts j in its queue's pending jobs of its priority at score,
// and marks that priority in use when it is not the default.
func (s *Store) queueAt(ctx context.Context, p redis.Pipeliner, j *persistence.Job, score float64) {
	l := level(j)
	p.ZAdd(ctx, s.k.pendingAt(j.Queue, l), redis.Z{Score: score, Member: j.ID})
	if l != persistence.DefaultPriority {
		p.HSetNX(ctx, s.k.dispatchers(j.Queue), priorityField(l), "1")
		p.HSetNX(ctx, s.k.dispatchers(j.Queue), anyPriorityField, "1")
		s.heads.get(j.Queue, s.k).useLevel(l)
	}
}

// unqueue queues the writes that take j out of its queue's pending jobs: from the zset of
// its priority, or from every one when its priority could not be read.
func (s *Store) unqueue(ctx context.Context, p redis.Pipeliner, j *persistence.Job) {
	if j.Corrupt != nil && slices.Contains(j.Corrupt.Fields, fPriority) {
		for _, l := range levels {
			p.ZRem(ctx, s.k.pendingAt(j.Queue, l), j.ID)
		}
		return
	}
	p.ZRem(ctx, s.k.pendingAt(j.Queue, level(j)), j.ID)
}

// pendingKeys are the keys of every pendingAt zset of queue q, in claim order.
func (s *Store) pendingKeys(q string) []string {
	out := make([]string, len(levels))
	for i, l := range levels {
		out[i] = s.k.pendingAt(q, l)
	}
	return out
}

// pendingCounts reads, in one pipeline, how many jobs each priority of q holds (card) and
// how many of them are due at dueUntil.
func (s *Store) pendingCounts(ctx context.Context, p redis.Pipeliner, q string, dueUntil int64) (card, due []*redis.IntCmd) {
	card, due = make([]*redis.IntCmd, len(levels)), make([]*redis.IntCmd, len(levels))
	until := strconv.FormatInt(dueUntil, 10)
	for i, k := range s.pendingKeys(q) {
		card[i] = p.ZCard(ctx, k)
		due[i] = p.ZCount(ctx, k, "-inf", until)
	}
	return card, due
}

// span is a run of entries of one zset in the claim order of a queue: ranks from to to
// (excluded) of key.
type span struct {
	key      string
	from, to int64
}

// pendingSpans are the queue's pending entries, put-back ones apart, in the order of a
// listing: the due jobs of each priority, the highest first, then the scheduled ones of each
// priority, the highest first. It is the claim order of the due jobs; a scheduled job is
// listed with those of its priority, by begin_after.
func pendingSpans(keys []string, card, due []*redis.IntCmd) []span {
	out := make([]span, 0, 2*len(keys))
	for i, k := range keys {
		if d := due[i].Val(); d > 0 {
			out = append(out, span{k, 0, d})
		}
	}
	for i, k := range keys {
		if c, d := card[i].Val(), due[i].Val(); c > d {
			out = append(out, span{k, d, c})
		}
	}
	return out
}

// spanWindow returns the parts of spans from offset (counted in them), at most limit entries.
func spanWindow(spans []span, offset, limit int64) []span {
	var out []span
	for _, sp := range spans {
		if limit <= 0 {
			break
		}
		n := sp.to - sp.from
		if offset >= n {
			offset -= n
			continue
		}
		from := sp.from + offset
		to := min(sp.to, from+limit)
		out = append(out, span{sp.key, from, to})
		limit -= to - from
		offset = 0
	}
	return out
}

// spanTotal is how many entries spans hold.
func spanTotal(spans []span) int64 {
	var n int64
	for _, sp := range spans {
		n += sp.to - sp.from
	}
	return n
}

// queuePrioritized queues the writes that put the jobs of a put that have a priority other
// than the default in their zsets (one ZADD a priority) and marks those priorities, and
// returns the entries of the others, scored[i] being jobs[i]'s, for the pending zset. A put
// without priorities gets scored back as it is, with nothing written.
func (s *Store) queuePrioritized(ctx context.Context, p redis.Pipeliner, q string, jobs []*persistence.Job, scored []redis.Z) []redis.Z {
	var at map[int][]redis.Z
	for _, j := range jobs {
		if level(j) != persistence.DefaultPriority {
			at = make(map[int][]redis.Z)
			break
		}
	}
	if at == nil {
		return scored
	}
	plain := scored[:0:0]
	for i, j := range jobs {
		if l := level(j); l != persistence.DefaultPriority {
			at[l] = append(at[l], scored[i])
		} else {
			plain = append(plain, scored[i])
		}
	}
	for _, l := range levels {
		if zs := at[l]; len(zs) > 0 {
			p.ZAdd(ctx, s.k.pendingAt(q, l), zs...)
			p.HSetNX(ctx, s.k.dispatchers(q), priorityField(l), "1")
			p.HSetNX(ctx, s.k.dispatchers(q), anyPriorityField, "1")
			s.heads.get(q, s.k).useLevel(l) // a hint: a put that fails leaves it to a claim
		}
	}
	return plain
}

// levelSet is a set of priorities other than the default, as claimScript takes them: digits,
// the highest first, and the keys of their zsets in the same order.
type levelSet struct {
	digits string
	keys   []string
}

// levels returns the priorities h's next claim declares (nil: none).
func (h *queueHead) levels() *levelSet { return h.inUse.Load() }

// setLevels records the priorities in use as a claim answered them (digits, in any order).
func (h *queueHead) setLevels(digits string) {
	if old := h.inUse.Load(); old == nil && digits == "" || old != nil && old.digits == digits {
		return
	}
	var ls *levelSet
	for _, l := range levels {
		if d := strconv.Itoa(l); l != persistence.DefaultPriority && strings.Contains(digits, d) {
			if ls == nil {
				ls = &levelSet{}
			}
			ls.digits += d
			ls.keys = append(ls.keys, h.k.pendingAt(h.q, l))
		}
	}
	h.inUse.Store(ls)
}

// useLevel records that a put through this store used priority l, so that the queue's next
// claim declares it at once.
func (h *queueHead) useLevel(l int) {
	d := strconv.Itoa(l)
	if ls := h.inUse.Load(); l == persistence.DefaultPriority || ls != nil && strings.Contains(ls.digits, d) {
		return
	}
	ls := h.inUse.Load()
	if ls != nil {
		d += ls.digits
	}
	h.setLevels(d)
}
