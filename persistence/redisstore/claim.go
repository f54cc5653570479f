package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// Claim takes up to the agent's free slots from the queue in one transaction.
//
// Three round trips on a single node: one pipeline that WATCHes and reads the dispatcher
// record, its ping, the agent's load, the quotas and the head of the queue; one that WATCHes
// and reads the candidate jobs and the quota holders; then MULTI … EXEC. Only the candidates
// are watched, not the queue itself, so claimers racing on one queue conflict only when they
// pick the same jobs, and the loser re-reads and takes the next ones.
func (s *Store) Claim(ctx context.Context, p persistence.ClaimParams) ([]*persistence.Job, error) {
	c, err := s.newClaim(p)
	if err != nil {
		return nil, err
	}
	if c.scripted() {
		for {
			now, err := s.now(ctx)
			if err != nil {
				if len(c.jobs) > 0 {
					return c.jobs, nil
				}
				return nil, err
			}
			r, err := s.runScript(ctx, c.call(now))
			step := c.answer(now, r, err)
			if step == claimDone {
				return c.jobs, c.err
			}
			if step == claimFallback {
				break // not the common case: the transaction claims, or says why not
			}
		}
	}
	return c.transaction(ctx)
}

// transaction claims in one optimistic transaction.
func (c *claim) transaction(ctx context.Context) ([]*persistence.Job, error) {
	var claimed []*persistence.Job
	// The agent's own set is read but not watched: commits of its jobs remove members all the
	// time, and watching it made every claim lose its race to them. A stale count only
	// overstates the load (jobs leave the set, and only this agent's actor adds to it), so a
	// claim may take fewer jobs than it could, never more. Candidates and quotas are watched.
	err := c.s.transact(ctx, "claim", []string{c.s.k.ping(c.q, c.o.Dispatcher)}, func(t *txn) (writes, error) {
		for {
			w, jobs, err := c.read(ctx, t)
			if err == errWiden {
				continue // read again, wider, before anything is written
			}
			claimed = jobs
			return w, err
		}
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// errWiden asks claim.read to be called again with a wider window.
var errWiden = errors.New("widen the claim window")

// claim is one Claim call's state across its transaction attempts.
type claim struct {
	s         *Store
	p         persistence.ClaimParams
	o         persistence.Owner
	q         string
	window    int // how many jobs of the head of the queue to read; doubles when too few pass
	scanLimit int // how far window may grow

	// The script's runs (see claimScript): the ids to declare in the next run, how many runs
	// were made, and the outcome.
	cands  []string
	mine   []string // the keys of cands the run on its way reserved in the queue's head
	rounds int
	jobs   []*persistence.Job
	err    error
	// The job keys whose calls the last run reads after the script, and their reads.
	callKeys  []string
	callReads []*redis.StringCmd
}

// read does the reads and checks of one attempt and returns its writes and the jobs claimed.
func (c *claim) read(ctx context.Context, t *txn) (writes, []*persistence.Job, error) {
	s, q, o := c.s, c.q, c.o
	now, err := s.now(ctx)
	if err != nil {
		return nil, nil, err
	}
	var rec, ping, paused *redis.StringCmd
	var held, parked *redis.IntCmd
	var quotas *redis.MapStringStringCmd
	var putback *redis.StringSliceCmd
	pendingKeys := s.pendingKeys(q)
	pending := make([]*redis.StringSliceCmd, len(pendingKeys)) // each priority's head, the highest first
	t.watch(s.k.dispatchers(q), s.k.ping(q, o.Dispatcher), s.k.parked(q, o), s.k.quotas(q))
	err = t.pipelined(ctx, func(p redis.Pipeliner) {
		rec, ping = p.HGet(ctx, s.k.dispatchers(q), o.Dispatcher), p.Get(ctx, s.k.ping(q, o.Dispatcher))
		paused = p.HGet(ctx, s.k.dispatchers(q), pausedField)
		held, parked = p.ZCard(ctx, s.k.agent(q, o)), p.SCard(ctx, s.k.parked(q, o))
		quotas = p.HGetAll(ctx, s.k.quotas(q))
		putback = p.LRange(ctx, s.k.putback(q), 0, int64(c.window-1))
		due := &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(s.dueUntil(now), 10), Count: int64(c.window)}
		for i, k := range pendingKeys {
			pending[i] = p.ZRangeByScore(ctx, k, due)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if paused.Val() != "" {
		return nil, nil, nil // the dispatchers hash is watched: a resume makes the claim read again
	}
	if rec.Val() == "" {
		return nil, nil, fmt.Errorf("%w: dispatcher %s has no record in queue %s", persistence.ErrNotActivated, o.Dispatcher, q)
	}
	d, err := decodeDispatcher(q, o.Dispatcher, rec.Val(), ping.Val())
	if err != nil {
		return nil, nil, err
	}
	if !d.IsActivated() {
		return nil, nil, fmt.Errorf("%w: dispatcher %s in queue %s", persistence.ErrNotActivated, o.Dispatcher, q)
	}
	if d.IsDead(now) {
		return nil, nil, fmt.Errorf("%w: dispatcher %s in queue %s is dead (no ping since %s)",
			persistence.ErrNotActivated, o.Dispatcher, q, d.LastPing.Format(time.RFC3339Nano))
	}
	free := c.p.Size - int(held.Val()-parked.Val())
	if c.p.Max > 0 {
		free = min(free, c.p.Max)
	}
	if free <= 0 {
		return nil, nil, fmt.Errorf("%w: agent %s holds %d jobs (%d parked), size %d",
			persistence.ErrFull, o, held.Val(), parked.Val(), c.p.Size)
	}
	sizes, err := parseQuotaSizes(quotas.Val())
	if err != nil {
		return nil, nil, err
	}

	// Candidates in claim order: put-back jobs, then due jobs.
	fromPutback := make(map[string]bool, len(putback.Val()))
	var ids []string
	for _, id := range putback.Val() {
		if !fromPutback[id] {
			fromPutback[id] = true
			ids = append(ids, id)
		}
	}
	// A read that filled the window (put-back jobs, or a priority's due jobs) may have left
	// out jobs that come before every candidate of the reads after it: those are no
	// candidates, or racing claimers would hand out a lower priority's jobs while a higher
	// one's are still due; a wider window reads further when these are taken or turned
	// down. At the scan limit they are taken all the same, so that jobs an agent's filter
	// turns down cannot hide the others for ever.
	cut := c.window < c.scanLimit
	full := len(putback.Val()) == c.window
	from := make(map[string]string) // the pending zset of each candidate that is in one
	for i, r := range pending {
		if full && cut {
			break
		}
		for _, id := range r.Val() {
			from[id] = pendingKeys[i]
			if !fromPutback[id] {
				ids = append(ids, id)
			}
		}
		full = full || len(r.Val()) == c.window
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}

	// Watch and read the candidates and the holders of every quota.
	names := make([]string, 0, len(sizes))
	for n := range sizes {
		names = append(names, n)
	}
	for _, id := range ids {
		t.watch(s.k.job(q, id))
	}
	for _, n := range names {
		t.watch(s.k.quota(q, n))
	}
	jobCmds := make([]*redis.MapStringStringCmd, len(ids))
	holderCmds := make([]*redis.StringSliceCmd, len(names))
	if err = t.pipelined(ctx, func(p redis.Pipeliner) {
		for i, id := range ids {
			jobCmds[i] = p.HGetAll(ctx, s.k.job(q, id))
		}
		for i, n := range names {
			holderCmds[i] = p.SMembers(ctx, s.k.quota(q, n))
		}
	}); err != nil {
		return nil, nil, err
	}
	jobs, err := decodeMany(q, ids, jobCmds)
	if err != nil {
		return nil, nil, err
	}
	was := make(map[string]map[string]string, len(ids)) // each candidate's hash, for writeJob
	for i, id := range ids {
		was[id] = jobCmds[i].Val()
	}
	holders := make(map[string]map[string]bool, len(names))
	for i, n := range names {
		holders[n] = make(map[string]bool)
		for _, id := range holderCmds[i].Val() {
			holders[n][id] = true
		}
	}

	// claimed is what is handed out, in claim order; taken are the queued jobs among them
	// (the others are HandlerFail system jobs for the expired jobs).
	var claimed, taken, expired []*persistence.Job
	var stale []string
	rejected := 0 // turned down by this agent's filter or by quotas
	for i, j := range jobs {
		if len(claimed) == free {
			break
		}
		statusUnread := j != nil && j.Corrupt != nil && slices.Contains(j.Corrupt.Fields, fStatus)
		if j == nil || j.Status != persistence.StatusPending && !statusUnread {
			// Taken by a racing claimer since the queue was read (or an entry left without a
			// pending job): drop the entry.
			stale = append(stale, ids[i])
			continue
		}
		if j.Corrupt != nil {
			// A record that cannot be read whole (its status too, when the queue lists it) is
			// claimed by whoever sees it, whatever the filter, the quotas and its deadline:
			// nothing runs it, its claimer fails it at once (persistence.Job.Corrupt).
			take(j, o, now, c.p.Start)
			claimed, taken = append(claimed, j), append(taken, j)
			continue
		}
		if c.p.Filter != nil && !c.p.Filter(j) {
			rejected++
			continue
		}
		if j.Expired(now) {
			// Hand out a system job that fails it (reference §1.5); the expired job needs no
			// quota slot, it will not run.
			w := newJob(q, persistence.JobSpec{Call: persistence.Call{Handler: persistence.HandlerFail}, Target: j.ID}, systemJob, now)
			w.Status, w.Owner, w.Holder, w.Attempt = persistence.StatusAssigned, o, o, 1
			if c.p.Start {
				w.Status, w.ActiveStart = persistence.StatusActive, now
			}
			j.Status = persistence.StatusNew
			expired = append(expired, j)
			claimed = append(claimed, w)
			continue
		}
		if !quotasAllow(j, sizes, holders) {
			rejected++
			continue
		}
		for _, n := range j.QuotaNames {
			if h, ok := holders[n]; ok {
				h[j.ID] = true
			}
		}
		take(j, o, now, c.p.Start)
		claimed, taken = append(claimed, j), append(taken, j)
	}
	if len(claimed) < free && rejected+len(stale) > 0 && full && c.window < c.scanLimit {
		// Slots are left because candidates were turned down or taken by racing claimers,
		// and the queue goes on: look further before claiming, doubling the window each
		// time, so that a busy head costs a few reads, not the scan limit.
		c.window = min(2*c.window, c.scanLimit)
		return nil, nil, errWiden
	}
	if len(claimed) == 0 && len(stale) == 0 {
		return nil, nil, nil
	}
	w := func(p redis.Pipeliner) error {
		for _, id := range stale {
			if k, ok := from[id]; ok {
				p.ZRem(ctx, k, id)
			} else { // a put-back entry: its job's queue entry, if any, is in one of them
				for _, k := range pendingKeys {
					p.ZRem(ctx, k, id)
				}
			}
			p.LRem(ctx, s.k.putback(q), 0, id)
		}
		for _, j := range expired {
			s.unqueue(ctx, p, j)
			p.LRem(ctx, s.k.putback(q), 0, j.ID)
			s.writeJob(ctx, p, j, was[j.ID])
		}
		for _, j := range taken {
			s.unqueue(ctx, p, j)
			if fromPutback[j.ID] {
				p.LRem(ctx, s.k.putback(q), 0, j.ID)
			}
			for _, n := range j.QuotaNames {
				if _, ok := sizes[n]; ok && j.Corrupt == nil {
					p.SAdd(ctx, s.k.quota(q, n), j.ID)
				}
			}
		}
		score := float64(micros(now))
		for _, j := range claimed {
			s.writeJob(ctx, p, j, was[j.ID]) // nil for the HandlerFail jobs, which are new
			p.ZAdd(ctx, s.k.agent(q, o), redis.Z{Score: score, Member: j.ID})
		}
		if len(claimed) > 0 {
			p.SAdd(ctx, s.k.agents(q), o.String())
		}
		return nil
	}
	return w, claimed, nil
}

// take makes j claimed by o at now: ASSIGNED, or ACTIVE when start, at its next attempt.
func take(j *persistence.Job, o persistence.Owner, now time.Time, start bool) {
	j.Status, j.Owner, j.Holder = persistence.StatusAssigned, o, o
	if start {
		j.Status, j.ActiveStart = persistence.StatusActive, now
	}
	j.Attempt++
}

// quotasAllow reports whether j may take (or already holds) a slot of each of its quotas
// that exists; a removed quota's name is ignored.
func quotasAllow(j *persistence.Job, sizes map[string]int, holders map[string]map[string]bool) bool {
	for _, n := range j.QuotaNames {
		size, ok := sizes[n]
		if !ok || holders[n][j.ID] {
			continue
		}
		if len(holders[n]) >= size {
			return false
		}
	}
	return true
}
