package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// Fields of a job hash. Times and durations are integers in microseconds; structured parts
// are JSON. An empty field is not stored, nor are four common values (a put job has three
// fields, not six, and every put, claim and commit moves fewer): begin_after equal to
// created, the retry policy RetryCommonFourTimes, the log level ERROR, and, for a completed
// job, completed equal to active_end (a job without callbacks). Records that store them are
// read the same.
const (
	fCall        = "call"         // JSON persistence.Call
	fStatus      = "status"       // status name: new, pending, assigned, active, callbacks, completed
	fOwner       = "owner"        // "uuid/agent" allowed to write this run
	fAttempt     = "attempt"      // claims + adoptions so far
	fHolder      = "holder"       // "uuid/agent" whose slot the job takes
	fBeginAfter  = "begin_after"  // µs since the epoch; none: created
	fBeginBy     = "begin_by"     // µs
	fQuotas      = "quotas"       // JSON list of quota names
	fPolicy      = "policy"       // retry policy name; none: RetryCommonFourTimes
	fRetry       = "retry"        // JSON retry counters
	fLevel       = "log_level"    // slog level of its failure; none: ERROR
	fResult      = "result"       // JSON result
	fFailure     = "failure"      // JSON persistence.Failure
	fCallbacks   = "callbacks"    // JSON list of callback job ids
	fChoice      = "choice"       // JSON persistence.CallbackChoice
	fParent      = "parent"       // id of the job this is a callback of
	fTarget      = "target"       // id of the job a system job acts on
	fWaitingOn   = "waiting_on"   // id of the inner job it waits for
	fParked      = "parked"       // "1" when parked
	fAssigner    = "assigner"     // UUID of the dispatcher that put it
	fCreated     = "created"      // µs
	fActiveStart = "active_start" // µs
	fActiveEnd   = "active_end"   // µs
	fCompleted   = "completed"    // µs; none, for a completed job: active_end
	fChildren    = "children"     // JSON list of a composite's sub-job ids, in order
	fSealed      = "sealed"       // "1" when the children are final (no more may be added)
	fComposite   = "composite"    // id of the composite this is a sub-job of
	fAnnotated   = "annotated"    // "1" once the job has live annotations (its :ann hash)
	fAttempts    = "attempts"     // JSON list of persistence.PastAttempt: runs before a rerun
	fTimeout     = "timeout"      // µs, each run's timeout; none: 0
	// The job's priority, 1 to 9; none: persistence.DefaultPriority, so that the record of a
	// job put without one is what it was before priorities.
	fPriority = "priority"
	fUnique   = "unique" // JSON unique key and its options (unique.go); none: no key
)

var jobFields = []string{fCall, fStatus, fOwner, fAttempt, fHolder, fBeginAfter, fBeginBy, fQuotas,
	fPolicy, fRetry, fLevel, fResult, fFailure, fCallbacks, fChoice, fParent, fTarget, fWaitingOn,
	fParked, fAssigner, fCreated, fActiveStart, fActiveEnd, fCompleted, fChildren, fSealed, fComposite,
	fAttempts, fTimeout, fPriority, fUnique}

// encodeJob renders j as hash fields; empty ones are listed in del.
func encodeJob(j *persistence.Job) (set []any, del []string) {
	return encodeJobCall(j, nil, false)
}

// freshFields is how many fields a put's record usually has: its call, status and creation
// time, and room for a few options.
const freshFields = 6

// encodeJobCall is encodeJob with j's call already encoded (call), when it is not nil: a put
// encodes it as it checks it (persistence.JobSpec.AppendCall), once, and it goes to Redis
// as those bytes, not copied into a string.
//
// A new record (fresh) has nothing to delete: del is nil, and set is made for the few fields
// a put stores, not for all of them (most of a put's allocated bytes were these two slices).
func encodeJobCall(j *persistence.Job, call []byte, fresh bool) (set []any, del []string) {
	if fresh {
		set = make([]any, 0, 2*freshFields)
	} else {
		set, del = make([]any, 0, 2*len(jobFields)), make([]string, 0, len(jobFields))
	}
	put := func(f, v string) {
		switch {
		case v != "":
			set = append(set, f, v)
		case !fresh:
			del = append(del, f)
		}
	}
	num := func(f string, n int64) {
		if n == 0 {
			put(f, "")
		} else {
			put(f, strconv.FormatInt(n, 10))
		}
	}
	js := func(f string, v any, empty bool) {
		if empty {
			put(f, "")
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("zasync: encode %s: %v", f, err)) // only plain data types are encoded
		}
		put(f, string(b))
	}
	if call != nil {
		set = append(set, fCall, call)
	} else {
		put(fCall, encodeCall(&j.Call))
	}
	put(fStatus, j.Status.String())
	put(fOwner, j.Owner.String())
	num(fAttempt, j.Attempt)
	put(fHolder, j.Holder.String())
	switch {
	case j.BeginAfter.Equal(j.Created):
		put(fBeginAfter, "")
	case j.BeginAfter.IsZero():
		put(fBeginAfter, "0") // not created: its absence would mean "as created"
	default:
		num(fBeginAfter, micros(j.BeginAfter))
	}
	num(fBeginBy, j.BeginBy.Microseconds())
	num(fTimeout, j.Timeout.Microseconds())
	if j.Priority == persistence.DefaultPriority {
		put(fPriority, "")
	} else {
		num(fPriority, int64(j.Priority)) // 0: a job made without one, stored as the default
	}
	js(fQuotas, j.QuotaNames, len(j.QuotaNames) == 0)
	if j.RetryPolicy == persistence.RetryCommonFourTimesName {
		put(fPolicy, "")
	} else {
		put(fPolicy, j.RetryPolicy)
	}
	js(fRetry, j.Retry, len(j.Retry) == 0)
	if j.FailureLogLevel == slog.LevelError {
		put(fLevel, "")
	} else {
		put(fLevel, strconv.Itoa(int(j.FailureLogLevel)))
	}
	put(fResult, string(j.Result))
	js(fFailure, j.Failure, j.Failure == nil)
	js(fCallbacks, j.Callbacks, len(j.Callbacks) == 0)
	js(fChoice, j.Choice, j.Choice == nil)
	put(fParent, j.Parent)
	put(fTarget, j.Target)
	put(fWaitingOn, j.WaitingOn)
	if j.Parked {
		put(fParked, "1")
	} else {
		put(fParked, "")
	}
	put(fAssigner, j.Assigner)
	num(fCreated, micros(j.Created))
	num(fActiveStart, micros(j.ActiveStart))
	num(fActiveEnd, micros(j.ActiveEnd))
	switch {
	case j.Status != persistence.StatusCompleted:
		num(fCompleted, micros(j.Completed))
	case !j.Completed.IsZero() && j.Completed.Equal(j.ActiveEnd):
		put(fCompleted, "")
	case j.Completed.IsZero() && !j.ActiveEnd.IsZero():
		put(fCompleted, "0") // its absence would mean "at active_end"
	default:
		num(fCompleted, micros(j.Completed))
	}
	js(fChildren, j.Children, len(j.Children) == 0)
	if j.Sealed {
		put(fSealed, "1")
	} else {
		put(fSealed, "")
	}
	put(fComposite, j.Composite)
	js(fAttempts, j.Attempts, len(j.Attempts) == 0)
	put(fUnique, encodeUnique(j.Unique))
	return set, del
}

// keptWhenCorrupt reports whether writeJob leaves field f of a job read in part as it is
// stored: every field that could not be read, except those that decide a run, which a claim
// or a transition sets (a claim of a record whose status cannot be read makes it ASSIGNED).
func keptWhenCorrupt(j *persistence.Job, f string) bool {
	return j.Corrupt != nil && f != fStatus && f != fAttempt && slices.Contains(j.Corrupt.Fields, f)
}

// writeJob queues the writes that store j. was is the hash j was read from, nil for a new
// record: only the fields whose stored form changed are written, and only fields that were
// set and are now empty are deleted, so a transition writes a few fields, not the record.
// The status is always written: every write must change the key in a way that every WATCH
// notices, and miniredis does not count HDEL (a transition that only clears fields, such as
// cleaning a job's owner away, would slip past a concurrent fenced write).
func (s *Store) writeJob(ctx context.Context, p redis.Pipeliner, j *persistence.Job, was map[string]string) {
	key := s.k.job(j.Queue, j.ID)
	set, del := encodeJob(j)
	if j.Corrupt != nil {
		kept := set[:0]
		for i := 0; i < len(set); i += 2 {
			if !keptWhenCorrupt(j, set[i].(string)) {
				kept = append(kept, set[i], set[i+1])
			}
		}
		set = kept
		del = slices.DeleteFunc(del, func(f string) bool { return keptWhenCorrupt(j, f) })
	}
	if was != nil {
		changed := make([]any, 0, len(set))
		for i := 0; i < len(set); i += 2 {
			if v := set[i+1].(string); was[set[i].(string)] != v || set[i] == fStatus {
				changed = append(changed, set[i], v)
			}
		}
		set = changed
		gone := del[:0]
		for _, f := range del {
			if _, ok := was[f]; ok {
				gone = append(gone, f)
			}
		}
		del = gone
	} else {
		del = nil // a new record has nothing to delete
	}
	if len(set) > 0 {
		p.HSet(ctx, key, set...)
	}
	if len(del) > 0 {
		p.HDel(ctx, key, del...)
	}
}

// writeNewJob queues the writes that store j, a new record, whose call is already encoded
// (see encodeJobCall).
func (s *Store) writeNewJob(ctx context.Context, p redis.Pipeliner, j *persistence.Job, call []byte) {
	set, _ := encodeJobCall(j, call, true)
	p.HSet(ctx, s.k.job(j.Queue, j.ID), set...)
}

// decodeJob reads a job hash; ok is false when the hash is empty (no such job). A hash some
// of whose fields cannot be read gives the job as far as it could be read, its Corrupt set,
// with Corrupt as the error: a caller that needs the whole job stops at the error, one that
// can do with part of it (a claim, a fenced transition, a listing) goes on (see partial).
func decodeJob(ref persistence.Ref, h map[string]string) (j *persistence.Job, ok bool, err error) {
	if len(h) == 0 {
		return nil, false, nil
	}
	d := jobDecoder{j: &persistence.Job{Ref: ref}}
	for f, v := range h {
		d.field(f, v)
	}
	return d.done()
}

// decodePairsCall reads a job hash given as field, value, field, value…; ok is false when it
// is empty (no such job). Its call field, when call is not nil, is given apart as bytes the
// job may keep (its arguments are slices of them).
func decodePairsCall(ref persistence.Ref, kv []string, call []byte) (j *persistence.Job, ok bool, err error) {
	if len(kv) == 0 && call == nil {
		return nil, false, nil
	}
	if len(kv)%2 != 0 {
		return nil, false, fmt.Errorf("%w: job %s: %d values for its fields", persistence.ErrCorrupt, ref, len(kv))
	}
	d := jobDecoder{j: &persistence.Job{Ref: ref}}
	for i := 0; i < len(kv); i += 2 {
		d.field(kv[i], kv[i+1])
	}
	if call != nil {
		d.call(call)
	}
	return d.done()
}

// jobDecoder fills a job from its hash fields, in any order. Unknown fields are ignored. A
// field that cannot be read is left zero and noted; the others are read all the same.
type jobDecoder struct {
	j         *persistence.Job
	corrupt   *persistence.CorruptError // the fields that could not be read
	hasStatus bool
	// Fields whose absence stands for a common value.
	hasBeginAfter, hasPolicy, hasLevel, hasCompleted bool
}

func (d *jobDecoder) bad(f string, e error) {
	if d.corrupt == nil {
		d.corrupt = &persistence.CorruptError{Ref: d.j.Ref, Err: e}
	}
	d.corrupt.Fields = append(d.corrupt.Fields, f)
}

func (d *jobDecoder) num(f, v string) int64 {
	if v == "" {
		return 0
	}
	n, e := strconv.ParseInt(v, 10, 64)
	if e != nil {
		d.bad(f, e)
		return 0 // not the bound ParseInt gives for a number out of range
	}
	return n
}

// json decodes v into into, a pointer, which is left zero when v cannot be read (not half
// filled, as json.Unmarshal may leave it).
func (d *jobDecoder) json(f, v string, into any) {
	if v == "" {
		return
	}
	if e := json.Unmarshal([]byte(v), into); e != nil {
		d.bad(f, e)
		reflect.ValueOf(into).Elem().SetZero()
	}
}

// call reads the call field from b, which the job's arguments keep.
func (d *jobDecoder) call(b []byte) {
	c, err := persistence.DecodeCall(b)
	if err != nil {
		d.bad(fCall, err)
	}
	d.j.Call = c
}

func (d *jobDecoder) field(f, v string) {
	j := d.j
	switch f {
	case fCall:
		if !decodePlainCall(v, &j.Call) {
			d.call([]byte(v)) // one copy, which the arguments share
		}
	case fStatus:
		d.hasStatus = true
		var err error
		if j.Status, err = persistence.ParseStatus(v); err != nil {
			d.bad(f, err)
		}
	case fOwner:
		j.Owner = parseOwner(v)
	case fHolder:
		j.Holder = parseOwner(v)
	case fAttempt:
		j.Attempt = d.num(f, v)
	case fBeginAfter:
		d.hasBeginAfter = true
		j.BeginAfter = fromMicros(d.num(f, v))
	case fBeginBy:
		j.BeginBy = time.Duration(d.num(f, v)) * time.Microsecond
	case fTimeout:
		j.Timeout = time.Duration(d.num(f, v)) * time.Microsecond
	case fPriority:
		d.priority(v)
	case fLevel:
		d.hasLevel = true
		j.FailureLogLevel = slog.Level(d.num(f, v))
	case fCreated:
		j.Created = fromMicros(d.num(f, v))
	case fActiveStart:
		j.ActiveStart = fromMicros(d.num(f, v))
	case fActiveEnd:
		j.ActiveEnd = fromMicros(d.num(f, v))
	case fCompleted:
		d.hasCompleted = true
		j.Completed = fromMicros(d.num(f, v))
	case fQuotas:
		d.json(f, v, &j.QuotaNames)
	case fRetry:
		d.json(f, v, &j.Retry)
	case fCallbacks:
		d.json(f, v, &j.Callbacks)
	case fChoice:
		d.json(f, v, &j.Choice)
	case fFailure:
		d.json(f, v, &j.Failure)
	case fChildren:
		d.json(f, v, &j.Children)
	case fAttempts:
		d.json(f, v, &j.Attempts)
	case fResult:
		if v != "" {
			j.Result = json.RawMessage(v)
		}
	case fPolicy:
		d.hasPolicy = true
		j.RetryPolicy = v
	case fParent:
		j.Parent = v
	case fTarget:
		j.Target = v
	case fWaitingOn:
		j.WaitingOn = v
	case fAssigner:
		j.Assigner = v
	case fParked:
		j.Parked = v == "1"
	case fSealed:
		j.Sealed = v == "1"
	case fComposite:
		j.Composite = v
	case fUnique:
		var e error
		if j.Unique, e = decodeUnique(v); e != nil {
			d.bad(f, e)
		}
	}
}

func (d *jobDecoder) done() (*persistence.Job, bool, error) {
	if !d.hasStatus {
		_, err := persistence.ParseStatus("")
		d.bad(fStatus, err)
	}
	if !d.hasBeginAfter {
		d.j.BeginAfter = d.j.Created
	}
	if !d.hasPolicy {
		d.j.RetryPolicy = persistence.RetryCommonFourTimesName
	}
	if !d.hasLevel {
		d.j.FailureLogLevel = slog.LevelError
	}
	if !d.hasCompleted && d.j.Status == persistence.StatusCompleted {
		d.j.Completed = d.j.ActiveEnd
	}
	if d.j.Priority == 0 { // none stored, or one that cannot be read
		d.j.Priority = persistence.DefaultPriority
	}
	if d.corrupt != nil {
		d.j.Corrupt = d.corrupt
		return d.j, true, d.corrupt
	}
	return d.j, true, nil
}

// partial is for the callers of decodeJob that can do with a job read in part: it drops the
// error of a record that was read in part, which the job carries (Corrupt).
func partial(j *persistence.Job, ok bool, err error) (*persistence.Job, bool, error) {
	if j != nil && j.Corrupt != nil && err == error(j.Corrupt) {
		return j, ok, nil
	}
	return j, ok, err
}

// fenceRead reports whether the fields that decide a run (its status and attempt; the
// owner and holder are always read) of a job read in part were read: a fenced write may go
// on with such a job.
func fenceRead(j *persistence.Job) bool {
	return j.Corrupt == nil || !slices.ContainsFunc(j.Corrupt.Fields, func(f string) bool { return f == fStatus || f == fAttempt })
}

// A call without arguments whose handler name is printable ASCII with nothing for JSON to
// escape (most of them) is {"handler":"name"}: encodeCall and decodePlainCall write and read
// it as it is, which costs less than the rest of a put or a claim's decoding. Other calls go
// through persistence's one-pass encoding (Call.Encode, DecodeCall).

// encodeCall renders c as json.Marshal does.
func encodeCall(c *persistence.Call) string {
	if len(c.Args) == 0 && len(c.Kwargs) == 0 && len(c.Meta) == 0 && plainName(c.Handler) {
		return `{"handler":"` + c.Handler + `"}`
	}
	b, err := c.Encode()
	if err != nil {
		// A call Put would refuse (a record written by hand, read and written back): as
		// encoding/json writes it.
		if b, err = json.Marshal(c); err != nil {
			panic(fmt.Sprintf("zasync: encode %s: %v", fCall, err)) // only plain data types are encoded
		}
	}
	return string(b)
}

// decodePlainCall reads the JSON of a call without arguments as encodeCall writes it; anything
// else is left to encoding/json (false).
func decodePlainCall(v string, c *persistence.Call) bool {
	rest, ok := strings.CutPrefix(v, `{"handler":"`)
	if !ok {
		return false
	}
	name, ok := strings.CutSuffix(rest, `"}`)
	if !ok || !plainName(name) {
		return false
	}
	c.Handler = name
	return true
}

// plainName reports whether json.Marshal writes s as it is (encoding/json escapes '<', '>'
// and '&' as well).
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
			return false
		}
	}
	return true
}

func parseOwner(s string) persistence.Owner {
	d, a, ok := strings.Cut(s, "/")
	if !ok {
		return persistence.Owner{}
	}
	return persistence.Owner{Dispatcher: d, Agent: a}
}

// dispatcherRecord is a dispatcher's record as stored in the dispatchers hash.
type dispatcherRecord struct {
	Activated         int64                   `json:"activated,omitempty"` // µs, 0 when not activated
	PingInterval      int64                   `json:"ping_interval"`       // µs
	PingDeathInterval int64                   `json:"ping_death_interval"` // µs
	Agents            []persistence.AgentSpec `json:"agents,omitempty"`
	Host              string                  `json:"host,omitempty"`
	PID               int                     `json:"pid,omitempty"`
	Buried            int64                   `json:"buried,omitempty"` // µs, 0 when never buried
}

func newDispatcherRecord(c persistence.DispatcherConfig) dispatcherRecord {
	return dispatcherRecord{PingInterval: c.PingInterval.Microseconds(), PingDeathInterval: c.PingDeathInterval.Microseconds(),
		Agents: c.Agents, Host: c.Host, PID: c.PID}
}

func (r dispatcherRecord) encode() string {
	b, _ := json.Marshal(r) // plain data: cannot fail
	return string(b)
}

func decodeDispatcher(q, uuid, raw, ping string) (*persistence.DispatcherRecord, error) {
	var r dispatcherRecord
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return nil, fmt.Errorf("%w: dispatcher %s in %s: %v", persistence.ErrCorrupt, uuid, q, err)
	}
	d := &persistence.DispatcherRecord{
		Queue: q, UUID: uuid, Activated: fromMicros(r.Activated), Buried: fromMicros(r.Buried),
		DispatcherConfig: persistence.DispatcherConfig{
			PingInterval:      time.Duration(r.PingInterval) * time.Microsecond,
			PingDeathInterval: time.Duration(r.PingDeathInterval) * time.Microsecond,
			Agents:            r.Agents,
			Host:              r.Host,
			PID:               r.PID,
		},
	}
	if ping != "" {
		us, err := strconv.ParseInt(ping, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: dispatcher %s in %s: ping %q", persistence.ErrCorrupt, uuid, q, ping)
		}
		d.LastPing = fromMicros(us)
	}
	return d, nil
}

// mustJSON encodes plain data, which cannot fail.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("zasync: encode: %v", err))
	}
	return string(b)
}

// eventRecord is a dispatcher event as the queue's log stores it (keys.events): its queue is
// the key's.
type eventRecord struct {
	Dispatcher string `json:"dispatcher"`
	At         int64  `json:"at"` // µs
	Kind       string `json:"kind"`
	Jobs       int    `json:"jobs,omitempty"`
}

func encodeEvent(ev persistence.DispatcherEvent) string {
	b, _ := json.Marshal(eventRecord{Dispatcher: ev.Dispatcher, At: micros(ev.At), Kind: string(ev.Kind), Jobs: ev.Jobs})
	return string(b)
}

// decodeEvent reads one entry of q's log of dispatcher events; ErrCorrupt when it is not one.
func decodeEvent(q, v string) (persistence.DispatcherEvent, error) {
	var r eventRecord
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return persistence.DispatcherEvent{}, fmt.Errorf("%w: dispatcher event %q: %v", persistence.ErrCorrupt, v, err)
	}
	switch k := persistence.DispatcherEventKind(r.Kind); {
	case r.Dispatcher == "" || r.At <= 0 || r.Jobs < 0:
		return persistence.DispatcherEvent{}, fmt.Errorf("%w: dispatcher event %q: no dispatcher, time or count", persistence.ErrCorrupt, v)
	case k != persistence.EventActivated && k != persistence.EventStopped && k != persistence.EventFoundDead && k != persistence.EventCameBack:
		return persistence.DispatcherEvent{}, fmt.Errorf("%w: dispatcher event %q: unknown kind", persistence.ErrCorrupt, v)
	}
	return persistence.DispatcherEvent{Queue: q, Dispatcher: r.Dispatcher, At: fromMicros(r.At), Kind: persistence.DispatcherEventKind(r.Kind), Jobs: r.Jobs}, nil
}
