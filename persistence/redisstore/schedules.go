package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// The schedules' keys, in their queue's slot like everything else of a queue (after
// "<prefix>:{<queue>}:"):
//
//   - schedule:<name>: hash, one schedule's record: its newest declaration (spec, call,
//     missed, grace), when it was first declared (created), its last tick put and that
//     tick's job (last, last_job), and one field "d:<process>" per declaring process, JSON
//     with the declaration's expiry. Expires ScheduleForgetAfter after its newest
//     declaration's expiry, so a schedule no process declares any more goes away by itself.
//   - schedules: zset, the names of the queue's schedules scored by their newest
//     declaration's expiry in microseconds; members older than ScheduleForgetAfter are
//     removed by the declarations.
//
// The last tick is the fence of the ticks: the transaction that puts a tick's job also
// records it, so a tick at or before it is never put again, even once its job has expired
// or was deleted.
func (k keys) schedule(q, name string) string { return k.base(q) + "schedule:" + name }

func (k keys) schedules(q string) string { return k.base(q) + "schedules" }

// The fields of a schedule record.
const (
	schedSpec      = "spec"
	schedCall      = "call"
	schedMissed    = "missed"
	schedGrace     = "grace" // microseconds
	schedCreated   = "created"
	schedLast      = "last"
	schedLastJob   = "last_job"
	schedDeclPref  = "d:"
	maxDeclarerLen = 4 << 10 // a declarer's JSON is small; anything longer is not one
)

// declarerJSON is a declaring process as its field stores it.
type declarerJSON struct {
	persistence.ScheduleDeclarer
	Until int64 `json:"until"` // microseconds
}

// DeclareSchedule records or refreshes a declaration: one transaction over the record.
func (s *Store) DeclareSchedule(ctx context.Context, d persistence.ScheduleDecl) error {
	const op = "declare schedule"
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	call, err := d.Job.AppendCall(nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := s.rememberQueue(ctx, d.Queue); err != nil {
		return err
	}
	now, err := s.now(ctx)
	if err != nil {
		return err
	}
	until := now.Add(d.TTL)
	me, err := json.Marshal(declarerJSON{
		ScheduleDeclarer: persistence.ScheduleDeclarer{Process: d.Process, Host: d.Host, PID: d.PID, Spec: d.Spec},
		Until:            micros(until),
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	key := s.k.schedule(d.Queue, d.Name)
	grace := d.Grace
	if grace == 0 {
		grace = persistence.DefaultTickGrace
	}
	missed := d.Missed
	if missed == "" {
		missed = persistence.MissedRunOnce
	}
	return s.transact(ctx, op, []string{key}, func(t *txn) (writes, error) {
		var h *redis.MapStringStringCmd
		if err := t.pipelined(ctx, func(p redis.Pipeliner) { h = p.HGetAll(ctx, key) }); err != nil {
			return nil, err
		}
		// The declarations that expired go, so that processes that come and go with new
		// names do not grow the record; the newest expiry keeps the record and its index.
		newest := until
		var gone []string
		for f, v := range h.Val() {
			p, ok := strings.CutPrefix(f, schedDeclPref)
			if !ok || p == d.Process {
				continue
			}
			dj, err := decodeDeclarer(v)
			switch {
			case err != nil || !fromMicros(dj.Until).After(now):
				gone = append(gone, f)
			case fromMicros(dj.Until).After(newest):
				newest = fromMicros(dj.Until)
			}
		}
		return func(p redis.Pipeliner) error {
			p.HSetNX(ctx, key, schedCreated, micros(now))
			p.HSet(ctx, key, schedSpec, d.Spec, schedCall, call, schedMissed, string(missed),
				schedGrace, grace.Microseconds(), schedDeclPref+d.Process, me)
			if len(gone) > 0 {
				p.HDel(ctx, key, gone...)
			}
			// Relative: the store's clock may be a test's, not Redis's.
			p.PExpire(ctx, key, newest.Sub(now)+persistence.ScheduleForgetAfter)
			p.ZAdd(ctx, s.k.schedules(d.Queue), redis.Z{Score: float64(micros(newest)), Member: d.Name})
			p.ZRemRangeByScore(ctx, s.k.schedules(d.Queue), "-inf",
				"("+strconv.FormatInt(micros(now.Add(-persistence.ScheduleForgetAfter)), 10))
			return nil
		}, nil
	})
}

// UndeclareSchedule removes one process's declaration.
func (s *Store) UndeclareSchedule(ctx context.Context, q, name, process string) error {
	const op = "undeclare schedule"
	if err := validQueue(op, q); err != nil {
		return err
	}
	if err := persistence.ValidateScheduleName(name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.fail(op, s.rdb.HDel(ctx, s.k.schedule(q, name), schedDeclPref+process).Err())
}

// PutTick puts a tick's job, fenced by the schedule's last tick, in one WATCH … MULTI/EXEC
// over the record and the job: of several processes racing for a tick, or one retrying a
// put whose reply was lost, exactly one writes, and the others read the tick as the last.
func (s *Store) PutTick(ctx context.Context, d persistence.ScheduleDecl, tick time.Time) (persistence.TickResult, error) {
	const op = "put tick"
	var res persistence.TickResult
	if err := d.Validate(); err != nil {
		return res, fmt.Errorf("%s: %w", op, err)
	}
	tick = tick.UTC()
	if tick.IsZero() || !tick.Truncate(time.Second).Equal(tick) {
		return res, fmt.Errorf("%s: %w: tick %s is not a whole second", op, persistence.ErrInvalid, tick.Format(time.RFC3339Nano))
	}
	spec := d.Job
	spec.BeginIn, spec.BeginAfter = 0, tick
	call, err := spec.AppendCall(nil)
	if err != nil {
		return res, fmt.Errorf("%s: %w", op, err)
	}
	if len(spec.QuotaNames) > 0 {
		sizes, err := s.quotaSizes(ctx, plain{s.rdb}, d.Queue)
		if err != nil {
			return res, s.fail(op, err)
		}
		if err := checkQuotas(spec.QuotaNames, sizes); err != nil {
			return res, fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := s.rememberQueue(ctx, d.Queue); err != nil {
		return res, err
	}
	grace := d.Grace
	if grace == 0 {
		grace = persistence.DefaultTickGrace
	}
	id := persistence.TickJobID(d.Name, tick)
	rkey, jkey := s.k.schedule(d.Queue, d.Name), s.k.job(d.Queue, id)
	err = s.transact(ctx, op, []string{rkey, jkey}, func(t *txn) (writes, error) {
		res = persistence.TickResult{}
		var fields *redis.SliceCmd
		var exists *redis.IntCmd
		// The job is read before the record: a racer writes both in one EXEC, so a job
		// found here has its tick in the record read after it, and an answer that no write
		// follows (already put) never reports an older last tick than the job it found.
		if err := t.pipelined(ctx, func(p redis.Pipeliner) {
			exists = p.Exists(ctx, jkey)
			fields = p.HMGet(ctx, rkey, schedCreated, schedLast, schedLastJob)
		}); err != nil {
			return nil, err
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		v := fields.Val()
		created, cerr := microsField(v[0])
		last, lerr := microsField(v[1])
		if cerr != nil || lerr != nil {
			return nil, fmt.Errorf("%w: schedule %s/%s: unreadable record", persistence.ErrCorrupt, d.Queue, d.Name)
		}
		res.LastTick = fromMicros(last)
		res.LastJob, _ = v[2].(string)
		late := now.Sub(tick) > grace
		switch {
		case last != 0 && !tick.After(res.LastTick):
			res.Outcome = persistence.TickAlreadyPut
			return nil, nil
		case created != 0 && !tick.After(fromMicros(created)):
			res.Outcome = persistence.TickBeforeSchedule
			return nil, nil
		case exists.Val() > 0:
			res.Outcome = persistence.TickAlreadyPut
			return nil, nil
		case created == 0 && late:
			// No record (lost with a Redis that restarted empty): a late tick is of a
			// schedule that did not exist here then.
			res.Outcome = persistence.TickBeforeSchedule
			return nil, nil
		case late && d.Missed == persistence.MissedSkip:
			res.Outcome = persistence.TickMissed
			return nil, nil
		}
		j := newJob(d.Queue, spec, queuedJob, now)
		j.ID = id
		j.Status = persistence.StatusPending
		res = persistence.TickResult{Outcome: persistence.TickPut, LastTick: tick, LastJob: id}
		return func(p redis.Pipeliner) error {
			s.writeNewJob(ctx, p, j, call)
			// Queued as a put queues it: in its priority's zset when it has one.
			scored := []redis.Z{{Score: s.position(j, now), Member: id}}
			if scored = s.queuePrioritized(ctx, p, d.Queue, []*persistence.Job{j}, scored); len(scored) > 0 {
				p.ZAdd(ctx, s.k.pending(d.Queue), scored...)
			}
			p.HSet(ctx, rkey, schedLast, micros(tick), schedLastJob, id)
			if created == 0 {
				p.HSetNX(ctx, rkey, schedCreated, micros(now))
				p.PExpire(ctx, rkey, d.TTL+persistence.ScheduleForgetAfter)
			}
			p.Publish(ctx, s.k.wake(d.Queue), wakePayload(d.Queue, []*persistence.Job{j}))
			return nil
		}, nil
	})
	if err != nil {
		return persistence.TickResult{}, err
	}
	return res, nil
}

// microsField reads an HMGET reply holding microseconds; nil (no field) is 0.
func microsField(v any) (int64, error) {
	if v == nil {
		return 0, nil
	}
	str, ok := v.(string)
	if !ok {
		return 0, errors.New("not a string")
	}
	return strconv.ParseInt(str, 10, 64)
}

// ScheduleRecords lists a queue's schedules: one round trip for the index, one for the
// records.
func (s *Store) ScheduleRecords(ctx context.Context, q string) ([]*persistence.ScheduleRecord, error) {
	const op = "schedules"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	now, err := s.now(ctx)
	if err != nil {
		return nil, err
	}
	names, err := s.rdb.ZRange(ctx, s.k.schedules(q), 0, -1).Result()
	if err != nil {
		return nil, s.fail(op, err)
	}
	slices.Sort(names)
	cmds := make([]*redis.MapStringStringCmd, len(names))
	if len(names) > 0 {
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, n := range names {
				cmds[i] = p.HGetAll(ctx, s.k.schedule(q, n))
			}
			return nil
		}); err != nil {
			return nil, s.fail(op, err)
		}
	}
	out := make([]*persistence.ScheduleRecord, 0, len(names))
	for i, n := range names {
		h := cmds[i].Val()
		if len(h) == 0 {
			continue // forgotten, its index entry not yet
		}
		r := decodeSchedule(q, n, h)
		r.Declarers = slices.DeleteFunc(r.Declarers, func(d persistence.ScheduleDeclarer) bool { return !d.Until.After(now) })
		out = append(out, r)
	}
	return out, nil
}

// decodeDeclarer reads a declaring process's field.
func decodeDeclarer(v string) (declarerJSON, error) {
	var d declarerJSON
	if len(v) > maxDeclarerLen {
		return d, errors.New("declaration too long")
	}
	if err := json.Unmarshal([]byte(v), &d); err != nil {
		return d, err
	}
	if d.Process == "" || d.Until <= 0 {
		return d, errors.New("declaration without process or expiry")
	}
	return d, nil
}

// decodeSchedule reads a schedule record as far as it can: a field it cannot read is left
// zero and named in Corrupt. Declarers are ordered by process.
func decodeSchedule(q, name string, h map[string]string) *persistence.ScheduleRecord {
	r := &persistence.ScheduleRecord{Queue: q, Name: name, Spec: h[schedSpec], LastJob: h[schedLastJob],
		Missed: persistence.Missed(h[schedMissed])}
	var bad []string
	if r.Missed.Validate() != nil {
		r.Missed, bad = "", append(bad, schedMissed)
	}
	if v, ok := h[schedCall]; ok {
		if c, err := persistence.DecodeCall([]byte(v)); err == nil {
			r.Call, r.Handler = &c, c.Handler
		} else {
			bad = append(bad, schedCall)
		}
	}
	for f, dst := range map[string]*time.Time{schedCreated: &r.Created, schedLast: &r.LastTick} {
		if v, ok := h[f]; ok {
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil || us < 0 {
				bad = append(bad, f)
				continue
			}
			*dst = fromMicros(us)
		}
	}
	if v, ok := h[schedGrace]; ok {
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil || us < 0 || us > int64(365*24*time.Hour/time.Microsecond) {
			bad = append(bad, schedGrace)
		} else {
			r.Grace = time.Duration(us) * time.Microsecond
		}
	}
	for f, v := range h {
		p, ok := strings.CutPrefix(f, schedDeclPref)
		if !ok {
			continue
		}
		d, err := decodeDeclarer(v)
		if err != nil || d.Process != p {
			bad = append(bad, f)
			continue
		}
		d.ScheduleDeclarer.Until = fromMicros(d.Until)
		r.Declarers = append(r.Declarers, d.ScheduleDeclarer)
	}
	slices.SortFunc(r.Declarers, func(a, b persistence.ScheduleDeclarer) int { return strings.Compare(a.Process, b.Process) })
	if len(bad) > 0 {
		slices.Sort(bad)
		r.Corrupt = fmt.Errorf("%w: schedule %s/%s, field %s", persistence.ErrCorrupt, q, name, strings.Join(bad, ", "))
	}
	return r
}
