package runtime

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/zasync/zasync/persistence"
)

// How queries read jobs: pending jobs a window at a time per queue, merged; held jobs whole,
// sorted; completed histories a page at a time per agent, merged. A visit function gets each
// selected job in order and returns false to stop; each scan reports whether it ran to the
// end (true) or was stopped.

// scan visits the jobs p selects: pending, then held, then completed, stopping with the
// visitor or at p.Limit.
func (rt *Runtime) scan(ctx context.Context, p *plan, visit func(*persistence.Job) bool) error {
	n := 0
	limited := func(j *persistence.Job) bool {
		n++
		return visit(j) && (p.Limit == 0 || n < p.Limit)
	}
	if p.sel&selPending != 0 {
		if more, err := rt.scanPending(ctx, p, limited); err != nil || !more {
			return err
		}
	}
	if p.sel&selHeld != 0 {
		if more, err := rt.scanHeld(ctx, p, limited); err != nil || !more {
			return err
		}
	}
	if p.sel&selCompleted != 0 {
		if _, err := rt.scanCompleted(ctx, p, limited); err != nil {
			return err
		}
	}
	return nil
}

// firstWindow is the size of a stream's first window; each next one doubles, up to
// ScanWindow. A query that stops early (a limit, NextPending, LastCompleted) across many
// queues or agents then reads little from each, and a long scan soon reads full windows.
const firstWindow = 16

// window returns the size of a stream's window number n (from 0).
func window(n int) int { return min(ScanWindow, firstWindow<<min(n, 8)) }

// pendingStream reads one queue's pending jobs in claim order, a window of ids at a time,
// each window's records in one round trip.
type pendingStream struct {
	queue  string
	offset int
	reads  int // windows read
	buf    []*persistence.Job
	last   map[string]bool // ids of the previous window: a put ahead of it shifts them into the next
	done   bool
}

// head returns the stream's next pending job, reading the next window when the buffer is
// empty; nil at the end.
func (s *pendingStream) head(ctx context.Context, store persistence.Store) (*persistence.Job, error) {
	for len(s.buf) == 0 && !s.done {
		size := window(s.reads)
		s.reads++
		ids, err := store.Pending(ctx, s.queue, s.offset, size)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		s.offset += len(ids)
		s.done = len(ids) < size
		fresh := make([]string, 0, len(ids))
		for _, id := range ids {
			if !s.last[id] {
				fresh = append(fresh, id)
			}
		}
		s.last = make(map[string]bool, len(ids))
		for _, id := range ids {
			s.last[id] = true
		}
		if len(fresh) == 0 {
			continue
		}
		jobs, err := store.GetMany(ctx, s.queue, fresh)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		for _, j := range jobs {
			if j != nil && j.Status == persistence.StatusPending { // claimed since the window was read: not pending
				s.buf = append(s.buf, j)
			}
		}
	}
	if len(s.buf) == 0 {
		return nil, nil
	}
	return s.buf[0], nil
}

// scanPending visits the pending jobs p selects: each queue in claim order, the queues merged
// by begin_after (ties to the queue first by name), as zc.async's asyncdb does. Only the
// window at the head of each queue is in memory.
func (rt *Runtime) scanPending(ctx context.Context, p *plan, visit func(*persistence.Job) bool) (bool, error) {
	var streams []*pendingStream
	for _, q := range p.queues {
		if p.accept != nil && len(p.accept[q]) == 0 {
			continue // no agent the query names serves this queue
		}
		streams = append(streams, &pendingStream{queue: q})
	}
	for {
		var best *pendingStream
		var next *persistence.Job
		for _, s := range streams {
			j, err := s.head(ctx, rt.store)
			if err != nil {
				return false, err
			}
			if j != nil && (next == nil || j.BeginAfter.Before(next.BeginAfter)) {
				best, next = s, j
			}
		}
		if best == nil {
			return true, nil
		}
		best.buf = best.buf[1:]
		if p.matchPending(next) && !visit(next) {
			return false, nil
		}
	}
}

// scanHeld visits the jobs held by the agents p names in state p selects, by start time, the
// jobs not started (assigned) last, in claim order. Agents hold at most their size (plus
// parked composites), so all of them are read, ScanWindow records per round trip, and
// sorted.
func (rt *Runtime) scanHeld(ctx context.Context, p *plan, visit func(*persistence.Job) bool) (bool, error) {
	var held []*persistence.Job
	for _, q := range p.queues {
		owners, err := rt.store.HeldBy(ctx, q)
		if err != nil {
			return false, fmt.Errorf("query: %w", err)
		}
		for _, o := range owners {
			if !p.matchOwner(o) {
				continue
			}
			ids, err := rt.store.AgentJobs(ctx, q, o)
			if err != nil {
				return false, fmt.Errorf("query: %w", err)
			}
			for chunk := range slices.Chunk(ids, ScanWindow) {
				jobs, err := rt.store.GetMany(ctx, q, chunk)
				if err != nil {
					return false, fmt.Errorf("query: %w", err)
				}
				for _, j := range jobs {
					// A job that left the agent since its list was read has another holder.
					if j != nil && j.Holder == o && stateOf(j)&p.sel&selHeld != 0 && p.matchJob(j) {
						held = append(held, j)
					}
				}
			}
		}
	}
	startOf := func(j *persistence.Job) time.Time {
		if j.ActiveStart.IsZero() {
			return p.now
		}
		return j.ActiveStart
	}
	slices.SortStableFunc(held, func(a, b *persistence.Job) int { return startOf(a).Compare(startOf(b)) })
	for _, j := range held {
		if !visit(j) {
			return false, nil
		}
	}
	return true, nil
}

// historyEntry is a completed job read from a history, nil when its record has expired.
type historyEntry struct {
	at  time.Time
	job *persistence.Job
}

// historyStream reads one agent's completed history newest first, a window of entries at a
// time, each window's records in one round trip. It pages by time: the next window ends just
// after the last entry read, skipping the entries of that microsecond already read.
type historyStream struct {
	queue string
	owner persistence.Owner
	// failed: the stream reads the queue's index of failures, not an agent's history.
	failed bool
	since  time.Time
	before time.Time
	offset int
	reads  int // windows read
	buf    []historyEntry
	done   bool
}

func (s *historyStream) head(ctx context.Context, store persistence.Store) (*historyEntry, error) {
	for len(s.buf) == 0 && !s.done {
		size := window(s.reads)
		s.reads++
		var page []persistence.Completion
		var err error
		if s.failed {
			page, err = store.FailedPage(ctx, s.queue, s.since, s.before, s.offset, size)
		} else {
			page, err = store.CompletedPage(ctx, s.queue, s.owner, s.since, s.before, s.offset, size)
		}
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		s.done = len(page) < size
		if len(page) == 0 {
			break
		}
		last := page[len(page)-1].At
		if next := last.Add(time.Microsecond); next.Equal(s.before) {
			s.offset += len(page) // the whole page shares one microsecond
		} else {
			s.before, s.offset = next, 0
			for _, c := range page {
				if c.At.Equal(last) {
					s.offset++
				}
			}
		}
		ids := make([]string, len(page))
		for i, c := range page {
			ids[i] = c.ID
		}
		jobs, err := store.GetMany(ctx, s.queue, ids)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		for i, j := range jobs {
			s.buf = append(s.buf, historyEntry{at: page[i].At, job: j})
		}
	}
	if len(s.buf) == 0 {
		return nil, nil
	}
	return &s.buf[0], nil
}

// historyStreams opens a stream on the completed history of each agent p names, bounded by
// p's callbacks-completed window (a history is ordered by completion time).
func (rt *Runtime) historyStreams(ctx context.Context, p *plan) ([]*historyStream, error) {
	var streams []*historyStream
	if p.failedIndex() {
		for _, q := range p.queues {
			streams = append(streams, &historyStream{queue: q, failed: true,
				since: p.CallbacksCompleted.Since, before: p.CallbacksCompleted.Before})
		}
		return streams, nil
	}
	for _, q := range p.queues {
		owners, err := rt.store.Agents(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		for _, o := range owners {
			if p.matchOwner(o) {
				streams = append(streams, &historyStream{queue: q, owner: o,
					since: p.CallbacksCompleted.Since, before: p.CallbacksCompleted.Before})
			}
		}
	}
	return streams, nil
}

// scanCompleted visits the completed jobs p selects, newest first across every agent named
// (ties to the agent first by queue, dispatcher and name). Jobs whose record has expired
// are skipped.
func (rt *Runtime) scanCompleted(ctx context.Context, p *plan, visit func(*persistence.Job) bool) (bool, error) {
	streams, err := rt.historyStreams(ctx, p)
	if err != nil {
		return false, err
	}
	for {
		var best *historyStream
		var next *historyEntry
		for _, s := range streams {
			e, err := s.head(ctx, rt.store)
			if err != nil {
				return false, err
			}
			if e != nil && (next == nil || e.at.After(next.at)) {
				best, next = s, e
			}
		}
		if best == nil {
			return true, nil
		}
		j := next.job
		best.buf = best.buf[1:]
		if j != nil && j.Status == persistence.StatusCompleted && stateOf(j)&p.sel != 0 && p.matchJob(j) && !visit(j) {
			return false, nil
		}
	}
}

// failedIndex reports whether the completed jobs p selects are the failed ones of whole
// queues: the queues' indexes of failures list them, no history need be read.
func (p *plan) failedIndex() bool {
	return p.sel&selCompleted == selFailed && p.Agent == "" && p.uuid == ""
}

// countCompleted counts the history entries of the agents p names in p's callbacks-completed
// window, or the entries of the queues' indexes of failures (see failedIndex): one ZCOUNT per
// agent or queue. An agent idle for longer than the retention period may still list jobs
// whose records have expired; they are counted.
func (rt *Runtime) countCompleted(ctx context.Context, p *plan) (int, error) {
	streams, err := rt.historyStreams(ctx, p)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range streams {
		var m int64
		var err error
		if s.failed {
			m, err = rt.store.CountFailed(ctx, s.queue, s.since, s.before)
		} else {
			m, err = rt.store.CountCompleted(ctx, s.queue, s.owner, s.since, s.before)
		}
		if err != nil {
			return 0, fmt.Errorf("count: %w", err)
		}
		n += int(m)
		if p.Limit > 0 && n >= p.Limit {
			break
		}
	}
	return n, nil
}
