package persistence

import (
	"context"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// A periodic job is a schedule, declared under a name in a queue by any number of
// processes, that puts one job at each of its ticks. Every declaring process tries every
// tick; the job of a tick has an id derived from the schedule's name and the tick's time
// (TickJobID), and the store puts it in one transaction that also records the tick in the
// schedule's record, so a tick is put once whoever races for it (see Schedules.PutTick).

// MaxScheduleNameLen is the longest schedule name: its tick jobs' ids hold it, and a job id
// is at most MaxNameLen characters.
const MaxScheduleNameLen = 64

// tickIDPrefix starts every tick job's id. A job id cannot hold ':' (ValidateName), so the
// tick is written in the basic ISO 8601 form.
const tickIDPrefix = "tick."

// tickIDTime is the layout of a tick's time in its job's id: UTC, to the second.
const tickIDTime = "20060102T150405Z"

// TickJobID returns the id of the job schedule name puts for its tick at t:
// "tick.<name>.<UTC time, YYYYMMDDTHHMMSSZ>". Every process computes the same id for the same
// tick. Ticks are whole seconds (a cron schedule's are; an interval is whole seconds).
func TickJobID(name string, t time.Time) string {
	return tickIDPrefix + name + "." + t.UTC().Format(tickIDTime)
}

// ParseTickJobID returns the schedule name and the tick of a tick job's id; ok is false for
// any other id.
func ParseTickJobID(id string) (name string, tick time.Time, ok bool) {
	rest, ok := strings.CutPrefix(id, tickIDPrefix)
	if !ok {
		return "", time.Time{}, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", time.Time{}, false
	}
	t, err := time.Parse(tickIDTime, rest[i+1:])
	if err != nil {
		return "", time.Time{}, false
	}
	return rest[:i], t, true
}

// ValidateScheduleName checks a schedule's name: a name as ValidateName allows, at most
// MaxScheduleNameLen characters.
func ValidateScheduleName(name string) error {
	if err := ValidateName("schedule", name); err != nil {
		return err
	}
	if len(name) > MaxScheduleNameLen {
		return invalidf("schedule name longer than %d characters", MaxScheduleNameLen)
	}
	return nil
}

// Missed says what a schedule does with ticks that no process put while they were due (every
// declaring process was down, or frozen, across them).
type Missed string

const (
	// MissedRunOnce puts one job for the newest missed tick, late, and nothing for the
	// older ones: work that piles up (a sweep, a report) is caught up once, never in a
	// burst. It is the default: losing a nightly run to a deploy across midnight is the
	// worse surprise.
	MissedRunOnce Missed = "run-once"
	// MissedSkip puts nothing for missed ticks: the schedule goes on at its next tick, for
	// work that means something only at its time (a reminder at nine).
	MissedSkip Missed = "skip"
)

// Validate checks the policy; the empty policy is MissedRunOnce.
func (m Missed) Validate() error {
	switch m {
	case "", MissedRunOnce, MissedSkip:
		return nil
	}
	return invalidf("missed ticks policy %q: want %q or %q", string(m), MissedRunOnce, MissedSkip)
}

// DefaultTickGrace is how late a tick may be put and still count as on time, when a
// declaration gives no grace: a tick put later than that is a missed tick (see Missed).
const DefaultTickGrace = time.Minute

// MaxScheduleLookback is how far back Schedule.Latest looks for a tick.
const MaxScheduleLookback = 5 * 366 * 24 * time.Hour

// Schedule tells when a periodic job's ticks are: a cron expression or a fixed interval.
// It is immutable and safe for concurrent use.
type Schedule struct {
	spec  string
	cron  cron.Schedule // nil for an interval
	every time.Duration // the interval, or 0 for cron
}

// cronParser takes five fields (minute to day of week), or six with seconds first, and the
// descriptors (@daily, …).
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a schedule:
//
//   - "@every D": a fixed interval D (a Go duration, whole seconds, at least 1s). Its ticks
//     are the multiples of D since the Unix epoch (1970-01-01T00:00:00Z), so every process
//     computes the same ticks whenever it started;
//   - a cron expression of five fields (minute hour day-of-month month day-of-week) or six
//     (seconds first), or a descriptor (@yearly, @monthly, @weekly, @daily, @hourly), as
//     github.com/robfig/cron/v3 reads them, with an optional "CRON_TZ=<zone> " or
//     "TZ=<zone> " prefix. Without a prefix its times are in loc, and in UTC when loc is
//     nil (not the process's local zone, which may differ between processes); loc must be
//     an IANA zone (time.LoadLocation), since the spec names it for the other processes.
//
// A bad spec gives an error wrapping ErrInvalid.
func ParseSchedule(spec string, loc *time.Location) (*Schedule, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, invalidf("empty schedule")
	}
	if rest, ok := strings.CutPrefix(s, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		switch {
		case err != nil:
			return nil, invalidf("schedule %q: %v", spec, err)
		case d < time.Second:
			return nil, invalidf("schedule %q: interval must be at least 1s", spec)
		case d%time.Second != 0:
			return nil, invalidf("schedule %q: interval must be whole seconds", spec)
		}
		return &Schedule{spec: "@every " + d.String(), every: d}, nil
	}
	c, err := cronParser.Parse(s)
	if err != nil {
		return nil, invalidf("schedule %q: %v", spec, err)
	}
	prefixed := strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=")
	if cs, ok := c.(*cron.SpecSchedule); ok && prefixed && cs.Location.String() == "Local" {
		return nil, invalidf("schedule %q: zone Local differs between processes; name the zone", spec)
	}
	if cs, ok := c.(*cron.SpecSchedule); ok && !prefixed {
		// The parser reads a spec without a prefix in the process's local zone.
		if loc == nil {
			loc = time.UTC
		}
		if loc != time.UTC {
			// The zone goes into the spec, which every process and listing reads back: it
			// must be one they can load by name.
			if _, err := time.LoadLocation(loc.String()); err != nil || loc.String() == "Local" {
				return nil, invalidf("schedule %q: zone %q is not an IANA zone name every process can load", spec, loc.String())
			}
			s = "CRON_TZ=" + loc.String() + " " + s
		}
		cs.Location = loc
	}
	return &Schedule{spec: s, cron: c}, nil
}

// String returns the schedule as parsed: the interval normalised ("@every 1m0s"), a cron
// expression with its zone prefix when it has one.
func (s *Schedule) String() string { return s.spec }

// Interval returns the interval of an "@every" schedule, 0 for a cron one.
func (s *Schedule) Interval() time.Duration { return s.every }

// Next returns the first tick strictly after t; zero if there is none (a cron expression
// that never matches, such as February 30th).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return s.Latest(t).Add(s.every)
	}
	n := s.cron.Next(t)
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// Latest returns the newest tick at or before t; zero if there is none in the
// MaxScheduleLookback before t.
func (s *Schedule) Latest(t time.Time) time.Time {
	if s.every > 0 {
		// Not Time.Truncate, whose multiples are counted from year 1, not from the epoch.
		e, u := int64(s.every/time.Second), t.Unix()
		k := u / e
		if u%e < 0 {
			k--
		}
		return time.Unix(k*e, 0).UTC()
	}
	// Look back in growing windows from t for a tick, then walk forward to the last one
	// at or before t: a window holds few ticks unless the schedule is dense, and a dense
	// schedule has a tick in the first window.
	for _, w := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 366 * 24 * time.Hour, MaxScheduleLookback} {
		n := s.Next(t.Add(-w))
		if n.IsZero() || n.After(t) {
			continue
		}
		for {
			m := s.Next(n)
			if m.IsZero() || m.After(t) {
				return n
			}
			n = m
		}
	}
	return time.Time{}
}

// ScheduleDecl is one process's declaration of a schedule: what DeclareSchedule refreshes
// and PutTick puts.
type ScheduleDecl struct {
	Queue string
	Name  string
	// Spec is the schedule as Schedule.String gives it.
	Spec string
	// Job is the job each tick puts (its call and options); its BeginAfter and BeginIn are
	// ignored: a tick's job is due at its tick.
	Job JobSpec
	// Missed is the missed ticks policy ("" is MissedRunOnce).
	Missed Missed
	// Grace is how late a tick may be put and still be on time (0: DefaultTickGrace).
	Grace time.Duration
	// Process names the declaring process (its dispatcher UUID), Host and PID where it runs.
	Process string
	Host    string
	PID     int
	// TTL is how long the declaration lasts unless refreshed.
	TTL time.Duration
}

// Validate checks a declaration before anything is written.
func (d *ScheduleDecl) Validate() error {
	if err := ValidateName("queue", d.Queue); err != nil {
		return err
	}
	if err := ValidateScheduleName(d.Name); err != nil {
		return err
	}
	if _, err := ParseSchedule(d.Spec, nil); err != nil {
		return err
	}
	if err := d.Missed.Validate(); err != nil {
		return err
	}
	if err := d.Job.Validate(); err != nil {
		return err
	}
	if d.Job.Choice != nil || d.Job.Target != "" {
		return invalidf("a schedule puts a plain call")
	}
	if d.Job.Unique != nil {
		// A tick's job is unique by its id already; a key of its own would be a second
		// fence the tick's transaction does not hold.
		return invalidf("schedule %q: a periodic job takes no unique key", d.Name)
	}
	if d.Grace < 0 || d.TTL <= 0 {
		return invalidf("schedule %q: negative grace or no declaration TTL", d.Name)
	}
	return ValidateUUID(d.Process)
}

// TickOutcome says what PutTick did.
type TickOutcome int

const (
	// TickPut: the tick's job was put now.
	TickPut TickOutcome = iota + 1
	// TickAlreadyPut: this tick, or a later one, was put before (by any process).
	TickAlreadyPut
	// TickMissed: the tick was late and the policy is MissedSkip: nothing was put.
	TickMissed
	// TickBeforeSchedule: the tick is not after the schedule's first declaration.
	TickBeforeSchedule
)

// String names the outcome.
func (o TickOutcome) String() string {
	switch o {
	case TickPut:
		return "put"
	case TickAlreadyPut:
		return "already put"
	case TickMissed:
		return "missed"
	case TickBeforeSchedule:
		return "before the schedule"
	}
	return "unknown"
}

// TickResult is PutTick's answer: what it did, and the schedule's last tick put and its job
// after it.
type TickResult struct {
	Outcome  TickOutcome
	LastTick time.Time
	LastJob  string
}

// ScheduleDeclarer is a process declaring a schedule, as its last refresh said.
type ScheduleDeclarer struct {
	Process string    `json:"process"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Spec    string    `json:"spec"`
	Until   time.Time `json:"-"` // the declaration's expiry
}

// ScheduleRecord is a schedule as stored in its queue.
type ScheduleRecord struct {
	Queue string
	Name  string
	// Spec, Handler, Call, Missed and Grace are those of the newest declaration.
	Spec    string
	Handler string
	Call    *Call
	Missed  Missed
	Grace   time.Duration
	// Created is when it was first declared: ticks at or before it are not its own.
	Created time.Time
	// LastTick and LastJob are its last tick put and that tick's job id (zero and "" when
	// none was put yet).
	LastTick time.Time
	LastJob  string
	// Declarers are the processes whose declarations have not expired, by process name.
	Declarers []ScheduleDeclarer
	// Corrupt is set when some field could not be read: the record is as far as it was.
	Corrupt error
}

// Schedules keeps the schedules of periodic jobs, in their queues.
type Schedules interface {
	// DeclareSchedule records (or refreshes) d.Process's declaration of a schedule until the
	// store's now plus d.TTL, and the schedule's spec and job as d gives them; a schedule
	// declared for the first time records its creation, after which its ticks are its own.
	// It also forgets declarations that expired, and schedules no process has declared for
	// ScheduleForgetAfter.
	DeclareSchedule(ctx context.Context, d ScheduleDecl) error
	// UndeclareSchedule removes process's declaration of a schedule (a process that stops).
	UndeclareSchedule(ctx context.Context, queue, name, process string) error
	// PutTick puts the job of d's tick at tick, with the id TickJobID(d.Name, tick), due at
	// tick, in one transaction that also records tick as the schedule's last: a tick at or
	// before the schedule's last is not put again (TickAlreadyPut), whoever races for it,
	// however often it is retried. A tick more than d.Grace before the store's now is missed
	// and, with MissedSkip, not put (TickMissed). A tick at or before the schedule's
	// creation is not its own (TickBeforeSchedule).
	PutTick(ctx context.Context, d ScheduleDecl, tick time.Time) (TickResult, error)
	// ScheduleRecords lists a queue's schedules, by name, with their live declarers.
	ScheduleRecords(ctx context.Context, queue string) ([]*ScheduleRecord, error)
}

// ScheduleForgetAfter is how long a schedule no process declares any more stays listed
// (with no declarer, not ticking) before its record is removed.
const ScheduleForgetAfter = 24 * time.Hour
