package redisstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

func validDispatcher(op, q, uuid string) error {
	if err := validQueue(op, q); err != nil {
		return err
	}
	if err := persistence.ValidateUUID(uuid); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// readDispatcher reads one record and its ping with c; ErrNotFound when absent.
func (s *Store) readDispatcher(ctx context.Context, r reader, q, uuid string) (*persistence.DispatcherRecord, dispatcherRecord, error) {
	var rec, ping *redis.StringCmd
	err := r.pipelined(ctx, func(p redis.Pipeliner) {
		rec, ping = p.HGet(ctx, s.k.dispatchers(q), uuid), p.Get(ctx, s.k.ping(q, uuid))
	})
	if err != nil {
		return nil, dispatcherRecord{}, err
	}
	if rec.Val() == "" {
		return nil, dispatcherRecord{}, fmt.Errorf("%w: dispatcher %s in queue %s", persistence.ErrNotFound, uuid, q)
	}
	d, err := decodeDispatcher(q, uuid, rec.Val(), ping.Val())
	if err != nil {
		return nil, dispatcherRecord{}, err
	}
	raw := newDispatcherRecord(d.DispatcherConfig)
	raw.Activated, raw.Buried = micros(d.Activated), micros(d.Buried)
	return d, raw, nil
}

// Register records a dispatcher UUID in a queue.
func (s *Store) Register(ctx context.Context, q, uuid string, c persistence.DispatcherConfig) error {
	const op = "register"
	if err := validDispatcher(op, q, uuid); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := s.rememberQueue(ctx, q); err != nil {
		return err
	}
	ok, err := s.rdb.HSetNX(ctx, s.k.dispatchers(q), uuid, newDispatcherRecord(c).encode()).Result()
	if err != nil {
		return s.fail(op, err)
	}
	if !ok {
		return fmt.Errorf("%s: %w: %s in queue %s", op, persistence.ErrAlreadyRegistered, uuid, q)
	}
	return nil
}

// Unregister removes a record that is not activated.
func (s *Store) Unregister(ctx context.Context, q, uuid string) error {
	const op = "unregister"
	if err := validDispatcher(op, q, uuid); err != nil {
		return err
	}
	return s.transact(ctx, op, []string{s.k.dispatchers(q)}, func(t *txn) (writes, error) {
		d, _, err := s.readDispatcher(ctx, t, q, uuid)
		if err != nil {
			return nil, err
		}
		if d.IsActivated() {
			return nil, fmt.Errorf("%w: %s in queue %s", persistence.ErrActivated, uuid, q)
		}
		return func(p redis.Pipeliner) error {
			p.HDel(ctx, s.k.dispatchers(q), uuid)
			p.Del(ctx, s.k.ping(q, uuid))
			return nil
		}, nil
	})
}

// updateRecord runs a transaction over one dispatcher record: change may modify the stored
// form (and sees the decoded record with Dead computed at the fresh store time).
func (s *Store) updateRecord(ctx context.Context, op, q, uuid string,
	change func(now time.Time, d *persistence.DispatcherRecord, raw *dispatcherRecord) (writes, error)) error {
	if err := validDispatcher(op, q, uuid); err != nil {
		return err
	}
	return s.transact(ctx, op, []string{s.k.dispatchers(q), s.k.ping(q, uuid)}, func(t *txn) (writes, error) {
		d, raw, err := s.readDispatcher(ctx, t, q, uuid)
		if err != nil {
			return nil, err
		}
		now, err := s.serverNow(ctx)
		if err != nil {
			return nil, err
		}
		d.Dead = d.IsDead(now)
		before := raw.encode()
		extra, err := change(now, d, &raw)
		if err != nil || extra == nil {
			return nil, err
		}
		after := raw.encode()
		return func(p redis.Pipeliner) error {
			// Write the record only when it changed: claims watch the dispatchers hash, and
			// an idle rewrite (a ping) would make them all lose their race.
			if after != before {
				p.HSet(ctx, s.k.dispatchers(q), uuid, after)
			}
			return extra(p)
		}, nil
	})
}

func noWrites(redis.Pipeliner) error { return nil }

// Configure replaces a record's intervals and agents.
func (s *Store) Configure(ctx context.Context, q, uuid string, c persistence.DispatcherConfig) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	return s.updateRecord(ctx, "configure", q, uuid, func(_ time.Time, _ *persistence.DispatcherRecord, raw *dispatcherRecord) (writes, error) {
		activated, buried := raw.Activated, raw.Buried
		*raw = newDispatcherRecord(c)
		raw.Activated, raw.Buried = activated, buried
		return noWrites, nil
	})
}

// Activate cleans a record's agents and activates it.
func (s *Store) Activate(ctx context.Context, q, uuid string) (*persistence.CleanReport, error) {
	const op = "activate"
	if err := validDispatcher(op, q, uuid); err != nil {
		return nil, err
	}
	d, err := s.Dispatcher(ctx, q, uuid)
	if err != nil {
		return nil, err
	}
	if d.IsActivated() && !d.Dead {
		return nil, alreadyActivated(q, uuid)
	}
	// Clean first (a fail-safe against anything left by an earlier run), then activate,
	// checking again in the activating transaction that nobody activated it meanwhile.
	report, err := s.cleanDispatcher(ctx, q, d)
	if err != nil {
		return nil, err
	}
	err = s.updateRecord(ctx, op, q, uuid, func(now time.Time, d *persistence.DispatcherRecord, raw *dispatcherRecord) (writes, error) {
		if d.IsActivated() && !d.Dead {
			return nil, alreadyActivated(q, uuid)
		}
		raw.Activated = micros(now)
		return func(p redis.Pipeliner) error {
			s.pushEvent(ctx, p, persistence.DispatcherEvent{Queue: q, Dispatcher: uuid, At: now, Kind: persistence.EventActivated, Jobs: report.Len()})
			return nil
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return report, nil
}

func alreadyActivated(q, uuid string) error {
	return fmt.Errorf("%w: UUID %s already activated in queue %s: another process?", persistence.ErrAlreadyActivated, uuid, q)
}

// Deactivate marks a record not activated and cleans its agents.
func (s *Store) Deactivate(ctx context.Context, q, uuid string) (*persistence.CleanReport, error) {
	var rec *persistence.DispatcherRecord
	var at time.Time
	err := s.updateRecord(ctx, "deactivate", q, uuid, func(now time.Time, d *persistence.DispatcherRecord, raw *dispatcherRecord) (writes, error) {
		rec, at = d, now
		raw.Activated = 0
		// A record that never pinged keeps its activation as its ping: the last moment it was
		// known alive, so that it still reads dead once that is past the death interval. A
		// record that pinged is judged by its last ping alone (reference §2.1).
		if !d.LastPing.IsZero() || d.Activated.IsZero() {
			return noWrites, nil
		}
		return func(p redis.Pipeliner) error {
			p.Set(ctx, s.k.ping(q, uuid), strconv.FormatInt(micros(d.Activated), 10), 0)
			return nil
		}, nil
	})
	if err != nil {
		return nil, err
	}
	report, err := s.cleanDispatcher(ctx, q, rec)
	if err == nil && rec.IsActivated() {
		s.logEvent(ctx, persistence.DispatcherEvent{Queue: q, Dispatcher: uuid, At: at, Kind: persistence.EventStopped, Jobs: report.Len()})
	}
	return report, err
}

// Bury deactivates a dead record, checking in the deactivating transaction that it is still
// dead, and cleans its agents.
func (s *Store) Bury(ctx context.Context, q, uuid string) (*persistence.CleanReport, bool, error) {
	var rec *persistence.DispatcherRecord
	var buried time.Time
	alive := false
	err := s.updateRecord(ctx, "bury", q, uuid, func(now time.Time, d *persistence.DispatcherRecord, raw *dispatcherRecord) (writes, error) {
		rec, alive, buried = d, false, time.Time{}
		switch {
		case !d.IsActivated():
			return nil, nil // deactivated already: only what is left is cleaned below
		case !d.Dead:
			alive = true
			return nil, nil
		}
		raw.Activated, raw.Buried = 0, micros(now)
		buried = now
		if !d.LastPing.IsZero() {
			return noWrites, nil
		}
		// Never pinged: its activation becomes its ping, as in Deactivate.
		return func(p redis.Pipeliner) error {
			p.Set(ctx, s.k.ping(q, uuid), strconv.FormatInt(micros(d.Activated), 10), 0)
			return nil
		}, nil
	})
	if err != nil || alive {
		return nil, false, err
	}
	report, err := s.cleanDispatcher(ctx, q, rec)
	if err == nil && !buried.IsZero() {
		s.logEvent(ctx, persistence.DispatcherEvent{Queue: q, Dispatcher: uuid, At: buried, Kind: persistence.EventFoundDead, Jobs: report.Len()})
	}
	return report, err == nil, err
}

// Reactivate activates a record without cleaning it.
func (s *Store) Reactivate(ctx context.Context, q, uuid string) error {
	return s.updateRecord(ctx, "reactivate", q, uuid, func(now time.Time, d *persistence.DispatcherRecord, raw *dispatcherRecord) (writes, error) {
		raw.Activated = micros(now)
		if d.IsActivated() {
			return noWrites, nil
		}
		return func(p redis.Pipeliner) error {
			s.pushEvent(ctx, p, persistence.DispatcherEvent{Queue: q, Dispatcher: uuid, At: now, Kind: persistence.EventCameBack})
			return nil
		}, nil
	})
}

// Ping rewrites the ping when the ping interval has passed, reactivating a record found not
// activated.
func (s *Store) Ping(ctx context.Context, q, uuid string) (persistence.PingResult, error) {
	var res persistence.PingResult
	err := s.updateRecord(ctx, "ping", q, uuid, func(now time.Time, d *persistence.DispatcherRecord, raw *dispatcherRecord) (writes, error) {
		res = persistence.PingResult{At: now}
		if !d.IsActivated() {
			raw.Activated, res.Reactivated = micros(now), true
		}
		res.Wrote = d.LastPing.IsZero() || now.Sub(d.LastPing) >= d.PingInterval
		if !res.Wrote && !res.Reactivated {
			return nil, nil
		}
		return func(p redis.Pipeliner) error {
			if res.Wrote {
				p.Set(ctx, s.k.ping(q, uuid), strconv.FormatInt(micros(now), 10), 0)
			}
			if res.Reactivated {
				s.pushEvent(ctx, p, persistence.DispatcherEvent{Queue: q, Dispatcher: uuid, At: now, Kind: persistence.EventCameBack})
			}
			return nil
		}, nil
	})
	return res, err
}

// Dispatcher reads one record.
func (s *Store) Dispatcher(ctx context.Context, q, uuid string) (*persistence.DispatcherRecord, error) {
	const op = "dispatcher"
	if err := validDispatcher(op, q, uuid); err != nil {
		return nil, err
	}
	d, _, err := s.readDispatcher(ctx, plain{s.rdb}, q, uuid)
	if err != nil {
		return nil, s.fail(op, err)
	}
	now, err := s.serverNow(ctx)
	if err != nil {
		return nil, err
	}
	d.Dead = d.IsDead(now)
	return d, nil
}

// Dispatchers reads every record of a queue, ordered by UUID.
func (s *Store) Dispatchers(ctx context.Context, q string) ([]*persistence.DispatcherRecord, error) {
	const op = "dispatchers"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	recs, err := s.rdb.HGetAll(ctx, s.k.dispatchers(q)).Result()
	if err != nil {
		return nil, s.fail(op, err)
	}
	maps.DeleteFunc(recs, func(f, _ string) bool { return strings.HasPrefix(f, "!") }) // pausedField, priorityField
	uuids := make([]string, 0, len(recs))
	for u := range recs {
		uuids = append(uuids, u)
	}
	slices.Sort(uuids)
	pings := make([]*redis.StringCmd, len(uuids))
	if _, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range uuids {
			pings[i] = p.Get(ctx, s.k.ping(q, u))
		}
		return nil
	}); pipelineErr(err) != nil {
		return nil, s.fail(op, err)
	}
	now, err := s.serverNow(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*persistence.DispatcherRecord, len(uuids))
	for i, u := range uuids {
		d, err := decodeDispatcher(q, u, recs[u], pings[i].Val())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		d.Dead = d.IsDead(now)
		out[i] = d
	}
	return out, nil
}

// NextSibling returns the next activated record after uuid in UUID order, wrapping around.
func (s *Store) NextSibling(ctx context.Context, q, uuid string) (*persistence.DispatcherRecord, error) {
	if err := validDispatcher("next sibling", q, uuid); err != nil {
		return nil, err
	}
	all, err := s.Dispatchers(ctx, q)
	if err != nil {
		return nil, err
	}
	var first, next *persistence.DispatcherRecord
	for _, d := range all {
		if !d.IsActivated() || d.UUID == uuid {
			continue
		}
		if first == nil {
			first = d
		}
		if next == nil && d.UUID > uuid {
			next = d
		}
	}
	if next == nil {
		next = first
	}
	if next == nil {
		return nil, fmt.Errorf("next sibling: %w: no other activated dispatcher in queue %s", persistence.ErrNotFound, q)
	}
	return next, nil
}

// AgentJobs lists the ids an agent holds, in claim order.
func (s *Store) AgentJobs(ctx context.Context, q string, o persistence.Owner) ([]string, error) {
	const op = "agent jobs"
	if err := validAgent(op, q, o); err != nil {
		return nil, err
	}
	ids, err := s.rdb.ZRange(ctx, s.k.agent(q, o), 0, -1).Result()
	return ids, s.fail(op, err)
}

// AgentLoads counts the jobs each of agents holds in q, with one ZCARD each, pipelined.
func (s *Store) AgentLoads(ctx context.Context, q string, agents []persistence.Owner) ([]int, error) {
	const op = "agent loads"
	for _, o := range agents {
		if err := validAgent(op, q, o); err != nil {
			return nil, err
		}
	}
	out := make([]int, len(agents))
	if len(agents) == 0 {
		return out, nil
	}
	cmds := make([]*redis.IntCmd, len(agents))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, o := range agents {
			cmds[i] = p.ZCard(ctx, s.k.agent(q, o))
		}
		return nil
	}); err != nil {
		return nil, s.fail(op, err)
	}
	for i, c := range cmds {
		out[i] = int(c.Val())
	}
	return out, nil
}

func validAgent(op, q string, o persistence.Owner) error {
	if err := validDispatcher(op, q, o.Dispatcher); err != nil {
		return err
	}
	if err := persistence.ValidateName("agent", o.Agent); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// HeldBy lists the agents that hold jobs in a queue.
func (s *Store) HeldBy(ctx context.Context, q string) ([]persistence.Owner, error) {
	const op = "held by"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	all, err := s.agentsOf(ctx, q)
	if err != nil {
		return nil, s.fail(op, err)
	}
	counts := make([]*redis.IntCmd, len(all))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, o := range all {
			counts[i] = p.ZCard(ctx, s.k.agent(q, o))
		}
		return nil
	}); err != nil {
		return nil, s.fail(op, err)
	}
	var out []persistence.Owner
	for i, o := range all {
		if counts[i].Val() > 0 {
			out = append(out, o)
		}
	}
	return out, nil
}

// agentsOf lists every agent that ever claimed in q, sorted.
func (s *Store) agentsOf(ctx context.Context, q string) ([]persistence.Owner, error) {
	names, err := s.rdb.SMembers(ctx, s.k.agents(q)).Result()
	if err != nil {
		return nil, err
	}
	return owners(names), nil
}

// owners reads the members of an agents set ("uuid/agent"), sorted; malformed ones are left out.
func owners(names []string) []persistence.Owner {
	slices.Sort(names)
	out := make([]persistence.Owner, 0, len(names))
	for _, n := range names {
		if o := parseOwner(n); !o.IsZero() {
			out = append(out, o)
		}
	}
	return out
}

// cleanDispatcher cleans every agent of d: those in its record and any other that claimed
// under its UUID.
func (s *Store) cleanDispatcher(ctx context.Context, q string, d *persistence.DispatcherRecord) (*persistence.CleanReport, error) {
	owners := make([]persistence.Owner, 0, len(d.Agents))
	for _, a := range d.Agents {
		owners = append(owners, persistence.Owner{Dispatcher: d.UUID, Agent: a.Name})
	}
	all, err := s.agentsOf(ctx, q)
	if err != nil {
		return nil, s.fail("clean", err)
	}
	for _, o := range all {
		if o.Dispatcher == d.UUID && !slices.Contains(owners, o) {
			owners = append(owners, o)
		}
	}
	report := &persistence.CleanReport{}
	for _, o := range owners {
		if err := s.cleanAgent(ctx, q, o, report); err != nil {
			return report, err
		}
	}
	return report, nil
}

// CleanAgent cleans one agent's jobs.
func (s *Store) CleanAgent(ctx context.Context, q string, o persistence.Owner) (*persistence.CleanReport, error) {
	if err := validAgent("clean agent", q, o); err != nil {
		return nil, err
	}
	report := &persistence.CleanReport{}
	return report, s.cleanAgent(ctx, q, o, report)
}

// cleanAgent takes every job out of agent o (reference §2.2), one transaction per job: a job
// another cleaner took out first is skipped, so racing cleaners handle each job once.
func (s *Store) cleanAgent(ctx context.Context, q string, o persistence.Owner, report *persistence.CleanReport) error {
	ids, err := s.rdb.ZRange(ctx, s.k.agent(q, o), 0, -1).Result()
	if err != nil {
		return s.fail("clean", err)
	}
	for _, id := range ids {
		if err := s.cleanJob(ctx, q, o, id, nil, report); err != nil {
			return err
		}
	}
	return nil
}

// CleanJobs cleans the jobs fences name out of their agents, as CleanAgent does, for a live
// dispatcher's own use.
func (s *Store) CleanJobs(ctx context.Context, fences []persistence.Fence) (*persistence.CleanReport, error) {
	const op = "clean jobs"
	for _, f := range fences {
		if err := validRef(op, f.Ref); err != nil {
			return nil, err
		}
		if err := validAgent(op, f.Queue, f.Owner); err != nil {
			return nil, err
		}
	}
	report := &persistence.CleanReport{}
	for _, f := range fences {
		if err := s.cleanJob(ctx, f.Queue, f.Owner, f.ID, &f, report); err != nil {
			return report, err
		}
	}
	return report, nil
}

// cleanJob takes job id out of agent o in one transaction, and records what it did in report.
// A job no longer in the agent is skipped. Without a fence, the agent's dispatcher must not be
// activated and alive (ErrActivated); with one, the job is cleaned only while it is still the
// run the fence names, held by its owner and not parked, whatever the dispatcher's state.
func (s *Store) cleanJob(ctx context.Context, q string, o persistence.Owner, id string, fence *persistence.Fence, report *persistence.CleanReport) error {
	agentKey := s.k.agent(q, o)
	ref := persistence.Ref{Queue: q, ID: id}
	var outcome *[]string
	var sysID string
	// The dispatcher's record and ping are watched and checked with each job: a job is
	// never taken from a dispatcher that is activated and alive, however stale the
	// cleaner's view (a sweep racing the dispatcher's own restart).
	watch := []string{agentKey, s.k.job(q, id), s.k.dispatchers(q), s.k.ping(q, o.Dispatcher)}
	err := s.transact(ctx, "clean", watch, func(t *txn) (writes, error) {
		outcome, sysID = nil, ""
		var held *redis.FloatCmd
		var h *redis.MapStringStringCmd
		var rec, ping *redis.StringCmd
		if err := t.pipelined(ctx, func(p redis.Pipeliner) {
			held, h = p.ZScore(ctx, agentKey, id), p.HGetAll(ctx, s.k.job(q, id))
			rec, ping = p.HGet(ctx, s.k.dispatchers(q), o.Dispatcher), p.Get(ctx, s.k.ping(q, o.Dispatcher))
		}); err != nil {
			return nil, err
		}
		if held.Err() == redis.Nil {
			return nil, nil // cleaned by someone else meanwhile
		}
		now, err2 := s.now(ctx)
		if err2 != nil {
			return nil, err2
		}
		if rec.Val() != "" && fence == nil {
			d, err := decodeDispatcher(q, o.Dispatcher, rec.Val(), ping.Val())
			if err != nil {
				return nil, err
			}
			if d.IsActivated() && !d.IsDead(now) {
				return nil, fmt.Errorf("clean: %w: dispatcher %s in queue %s is alive", persistence.ErrActivated, o.Dispatcher, q)
			}
		}
		// A record read in part is cleaned all the same (its status unread, it goes back
		// to the queue), for the claim that takes it next to fail it.
		j, _, err := partial(decodeJob(ref, h.Val()))
		if err != nil {
			return nil, err
		}
		if j == nil { // a stale entry
			return func(p redis.Pipeliner) error { p.ZRem(ctx, agentKey, id); return nil }, nil
		}
		if fence != nil && (j.Owner != fence.Owner || j.Holder != fence.Owner || j.Attempt != fence.Attempt || j.Parked) {
			return nil, nil // another run's now, or parked: not the caller's to clean
		}
		old := *j
		var sys *persistence.Job
		switch j.Status {
		case persistence.StatusActive, persistence.StatusCallbacks:
			handler, list := persistence.HandlerHandleInterrupt, &report.Interrupted
			if j.Status == persistence.StatusCallbacks {
				handler, list = persistence.HandlerResumeCallbacks, &report.Resumed
			}
			sys = newJob(q, persistence.JobSpec{Call: persistence.Call{Handler: handler}, Target: id, Assigner: o.Dispatcher}, systemJob, now)
			if j.Status == persistence.StatusActive && j.Corrupt == nil {
				// The run is taken from the job: kept as an earlier run, interrupted.
				j.KeepAttempt(persistence.PastAttempt{Attempt: j.Attempt, Owner: j.Owner.String(), Start: j.ActiveStart, End: now, Interrupted: true})
			}
			j.Owner, j.Holder, j.Parked = persistence.Owner{}, persistence.Owner{}, false
			outcome, sysID = list, sys.ID
		case persistence.StatusCompleted:
			outcome = &report.Completed
		default: // NEW, PENDING or ASSIGNED: back to the end of the queue
			outcome = &report.Requeued
		}
		return func(p redis.Pipeliner) error {
			p.ZRem(ctx, agentKey, id)
			p.SRem(ctx, s.k.parked(q, o), id)
			switch {
			case sys != nil:
				s.writeJob(ctx, p, j, h.Val())
				// At the head of the queue, as an interrupted job retried now: a dead
				// dispatcher's work must not wait behind the whole backlog.
				sys.Status = persistence.StatusPending
				s.writeJob(ctx, p, sys, nil)
				p.RPush(ctx, s.k.putback(q), sys.ID)
				p.Publish(ctx, s.k.wake(q), q)
			case j.Status == persistence.StatusCompleted:
				at := j.Completed
				if at.IsZero() {
					at = now
				}
				s.addHistory(ctx, p, q, o, id, at)
				if j.Failed() {
					s.addFailed(ctx, p, q, id, at)
				}
			default:
				s.release(ctx, p, &old, false)
				s.enqueue(ctx, p, j, now, h.Val())
				p.Publish(ctx, s.k.wake(q), q)
			}
			return nil
		}, nil
	})
	if err != nil {
		return err
	}
	if outcome != nil {
		*outcome = append(*outcome, id)
	}
	if sysID != "" {
		report.SystemJobs = append(report.SystemJobs, sysID)
	}
	return nil
}

// pushEvent queues the writes that add ev to its queue's log of dispatcher events, trimmed to
// the newest persistence.MaxDispatcherEvents: in the transaction of the change it records.
func (s *Store) pushEvent(ctx context.Context, p redis.Pipeliner, ev persistence.DispatcherEvent) {
	p.LPush(ctx, s.k.events(ev.Queue), encodeEvent(ev))
	p.LTrim(ctx, s.k.events(ev.Queue), 0, persistence.MaxDispatcherEvents-1)
}

// logEvent adds ev to the log on its own, after the change it records: a stop's or a death's
// event carries the count of the cleaning that follows the record's change. It is only an
// operator's log, so a failure to write it is dropped.
func (s *Store) logEvent(ctx context.Context, ev persistence.DispatcherEvent) {
	_, _ = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.pushEvent(ctx, p, ev)
		return nil
	})
}

// DispatcherEvents reads the newest limit events of q's dispatchers, newest first.
func (s *Store) DispatcherEvents(ctx context.Context, q string, limit int) ([]persistence.DispatcherEvent, error) {
	const op = "dispatcher events"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > persistence.MaxDispatcherEvents {
		return nil, fmt.Errorf("%s: %w: limit %d is not between 1 and %d", op, persistence.ErrInvalid, limit, persistence.MaxDispatcherEvents)
	}
	raw, err := s.rdb.LRange(ctx, s.k.events(q), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, s.fail(op, err)
	}
	out := make([]persistence.DispatcherEvent, 0, len(raw))
	for _, r := range raw {
		ev, err := decodeEvent(q, r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, ev)
	}
	return out, nil
}
