package runtime

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// Missed says what a schedule does with the ticks no process put while they were due: every
// process that declares it was down, or frozen, across them.
type Missed string

const (
	// MissedRunOnce puts one job for the newest missed tick, late, and none for the older
	// ones. It is the default: work that piles up between ticks (a sweep, a report) is
	// caught up once, never in a burst, and a deploy across midnight does not lose the
	// nightly run.
	MissedRunOnce Missed = "run-once"
	// MissedSkip puts nothing for missed ticks; the schedule goes on at its next tick. For
	// work that means something only at its time.
	MissedSkip Missed = "skip"
)

// EveryOption changes how Every declares a schedule.
type EveryOption func(*everySettings)

type everySettings struct {
	queue  string
	loc    *time.Location
	missed Missed
	grace  time.Duration
	put    []PutOption
	err    error
}

// EveryQueue puts the schedule's jobs into queue. Default DefaultQueue. A schedule's name is
// its queue's: two queues may each have a schedule of one name.
func EveryQueue(queue string) EveryOption {
	return func(s *everySettings) { s.queue = queue }
}

// EveryIn reads a cron expression without a CRON_TZ= or TZ= prefix in loc. Default UTC
// (not the process's local zone, which may differ between the processes that declare it).
func EveryIn(loc *time.Location) EveryOption {
	return func(s *everySettings) {
		if loc == nil {
			s.err = invalidf("nil location")
		}
		s.loc = loc
	}
}

// EveryMissed sets what the schedule does with missed ticks. Default MissedRunOnce.
func EveryMissed(m Missed) EveryOption {
	return func(s *everySettings) { s.missed = m }
}

// EveryGrace sets how late a tick may be put and still be on time; a tick put later is
// missed (see EveryMissed). Default one minute.
func EveryGrace(d time.Duration) EveryOption {
	return func(s *everySettings) {
		if d <= 0 {
			s.err = invalidf("grace %s: must be positive", d)
		}
		s.grace = d
	}
}

// EveryPut gives the options of each tick's job (Retry, Timeout, Priority, Quotas, BeginBy,
// Meta…), added to the handler's defaults as for a put. A tick's job is due at its tick, so
// BeginAfter and BeginIn are refused, and so is Notify; its id makes it unique already, so
// Unique is refused too.
func EveryPut(opts ...PutOption) EveryOption {
	return func(s *everySettings) { s.put = append(s.put, opts...) }
}

// Every declares a periodic job: at each tick of schedule, a job running call is put into
// the schedule's queue (EveryQueue), due at its tick. schedule is a cron expression of five
// fields (minute hour day-of-month month day-of-week) or six (seconds first), a descriptor
// (@hourly, @daily, …), with an optional "CRON_TZ=Europe/Paris " prefix, or a fixed interval
// "@every 30s" (whole seconds, at least one), whose ticks are the multiples of the interval
// since the Unix epoch (see persistence.ParseSchedule).
//
// Any number of processes may declare the same schedule: each tick's job has the id
// "tick.<name>.<UTC tick, YYYYMMDDTHHMMSSZ>" and is put once, whichever processes race for
// it, with no leader. A started runtime (Start) ticks its schedules until Stop; Every may be
// called before or after Start. A schedule that no process declares any more stops ticking
// and, 24 hours later, leaves the listings (Schedules).
//
// A bad name (1 to 64 letters, digits, '.', '_' or '-'), schedule, call or option, a handler
// this runtime does not know while it serves the queue, or a name declared twice gives an
// error wrapping ErrInvalid, and declares nothing.
func (rt *Runtime) Every(name, schedule string, call Call, opts ...EveryOption) error {
	d, err := rt.everyDecl(name, schedule, call, opts)
	if err != nil {
		return fmt.Errorf("every %q: %w", name, err)
	}
	rt.schedMu.Lock()
	defer rt.schedMu.Unlock()
	key := d.Decl.Queue + "/" + name
	if slices.ContainsFunc(rt.schedules, func(o *messages.Declare) bool { return o.Decl.Queue+"/"+o.Decl.Name == key }) {
		return fmt.Errorf("every %q: %w", name, invalidf("schedule %q of queue %q is declared already", name, d.Decl.Queue))
	}
	rt.schedules = append(rt.schedules, d)
	if rt.scheduler != nil {
		rt.scheduler.send(rt.schedStamp(d))
	}
	return nil
}

// everyDecl checks Every's arguments and builds the declaration, its process left empty.
func (rt *Runtime) everyDecl(name, schedule string, call Call, opts []EveryOption) (*messages.Declare, error) {
	s := &everySettings{queue: DefaultQueue}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	if err := persistence.ValidateScheduleName(name); err != nil {
		return nil, err
	}
	if err := persistence.ValidateName("queue", s.queue); err != nil {
		return nil, err
	}
	sched, err := persistence.ParseSchedule(schedule, s.loc)
	if err != nil {
		return nil, err
	}
	if err := persistence.Missed(s.missed).Validate(); err != nil {
		return nil, err
	}
	m, err := rt.Queue(s.queue).message([]Call{call}, s.put)
	if err != nil {
		return nil, err
	}
	spec := m.Specs[0]
	switch {
	case m.Notify != nil:
		return nil, invalidf("a periodic job cannot notify an actor")
	case !spec.BeginAfter.IsZero() || spec.BeginIn != 0:
		return nil, invalidf("a periodic job is due at its tick: no BeginAfter or BeginIn")
	}
	if rt.serves(s.queue) && !rt.registered(spec.Call.Handler) {
		return nil, invalidf("handler %q is not registered, and this process serves queue %q", spec.Call.Handler, s.queue)
	}
	d := persistence.ScheduleDecl{Queue: s.queue, Name: name, Spec: sched.String(), Job: spec,
		Missed: persistence.Missed(s.missed), Grace: s.grace, Process: "check", TTL: time.Minute}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	d.Process, d.TTL = "", 0
	return &messages.Declare{Decl: d, Schedule: sched}, nil
}

// serves reports whether this runtime's dispatcher serves queue.
func (rt *Runtime) serves(queue string) bool {
	return slices.ContainsFunc(rt.cfg.Queues, func(q QueueConfig) bool { return q.Name == queue })
}

// scheduleRef is the running scheduler of a started runtime.
type scheduleRef struct {
	root *actors.Root
	pid  *actor.PID
}

func (r *scheduleRef) send(m any) { r.root.System().Root.Send(r.pid, m) }

// startScheduler starts the scheduler of a runtime just started, as process id; under
// nodeMu. schedMu is held until it is known, so that a concurrent Every either is among
// the schedules the scheduler starts with or sends it its declaration.
func (rt *Runtime) startScheduler(root *actors.Root, id string) error {
	store, ok := rt.store.(persistence.Schedules)
	if !ok {
		return fmt.Errorf("zasync: start: the store keeps no schedules")
	}
	host, _ := os.Hostname()
	pid := os.Getpid()
	heartbeat := rt.scheduleHeartbeat
	if heartbeat <= 0 {
		heartbeat = actors.DefaultScheduleHeartbeat
	}
	now := time.Now
	if rt.cfg.Clock != nil {
		now = rt.cfg.Clock.Now
	}
	rt.schedMu.Lock()
	defer rt.schedMu.Unlock()
	rt.schedStamp = func(d *messages.Declare) *messages.Declare {
		m := *d
		m.Decl.Process, m.Decl.Host, m.Decl.PID, m.Decl.TTL = id, host, pid, 3*heartbeat
		return &m
	}
	stamp := rt.schedStamp
	p, err := actors.StartScheduler(root, "scheduler/"+id, actors.SchedulerOptions{
		Store: store, Logger: rt.logger, Now: now, Heartbeat: heartbeat, OnTick: rt.onTick,
		Schedules: func() []*messages.Declare {
			rt.schedMu.Lock()
			defer rt.schedMu.Unlock()
			out := make([]*messages.Declare, len(rt.schedules))
			for i, d := range rt.schedules {
				out[i] = stamp(d)
			}
			return out
		},
	})
	if err != nil {
		return fmt.Errorf("zasync: start the scheduler: %w", err)
	}
	rt.scheduler = &scheduleRef{root: root, pid: p}
	return nil
}

// stopScheduler stops the scheduler, which removes this process's declarations; under nodeMu.
func (rt *Runtime) stopScheduler() {
	rt.schedMu.Lock()
	s := rt.scheduler
	rt.scheduler = nil
	rt.schedMu.Unlock()
	if s != nil {
		s.root.System().Root.PoisonFuture(s.pid).Wait()
	}
}

// Schedule is a periodic job as Schedules lists it.
type Schedule struct {
	Name  string
	Queue string
	// Spec is the schedule as its newest declaration gave it (an interval normalised, a
	// zone given by EveryIn as a CRON_TZ= prefix).
	Spec    string
	Handler string
	Call    *Call
	Missed  Missed
	// NextTick is its next tick, zero when no process declares it (it does not tick).
	NextTick time.Time
	// LastTick is the last tick put, LastJob that tick's job (zero and "" before the first).
	LastTick time.Time
	LastJob  string
	// Declarers are the processes that declare it now.
	Declarers []ScheduleProcess
	// Corrupt, when set, says which fields of its record could not be read.
	Corrupt error
}

// ScheduleProcess is a process that declares a schedule.
type ScheduleProcess struct {
	// ID is the process's dispatcher UUID.
	ID   string
	Host string
	PID  int
	// Spec is the schedule as this process declares it (processes of two versions of a
	// program may differ for a while; each puts the ticks of its own).
	Spec string
	// Until is when its declaration expires unless refreshed.
	Until time.Time
}

// Schedules lists the schedules of every queue, by queue then name, with their next and last
// ticks and the processes declaring them. A schedule no process declares any more is listed
// with no declarer and no next tick for 24 hours, then forgotten.
func (rt *Runtime) Schedules(ctx context.Context) ([]Schedule, error) {
	store, ok := rt.store.(persistence.Schedules)
	if !ok {
		return nil, nil
	}
	queues, err := rt.store.Queues(ctx)
	if err != nil {
		return nil, fmt.Errorf("zasync: schedules: %w", err)
	}
	now, err := rt.store.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("zasync: schedules: %w", err)
	}
	var out []Schedule
	for _, q := range queues {
		rs, err := store.ScheduleRecords(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("zasync: schedules: %w", err)
		}
		for _, r := range rs {
			s := Schedule{Name: r.Name, Queue: r.Queue, Spec: r.Spec, Handler: r.Handler, Missed: Missed(r.Missed),
				LastTick: r.LastTick, LastJob: r.LastJob, Corrupt: r.Corrupt}
			if r.Call != nil {
				s.Call = callFrom(r.Call)
			}
			for _, d := range r.Declarers {
				s.Declarers = append(s.Declarers, ScheduleProcess{ID: d.Process, Host: d.Host, PID: d.PID, Spec: d.Spec, Until: d.Until})
			}
			if len(s.Declarers) > 0 {
				if sched, err := persistence.ParseSchedule(r.Spec, nil); err == nil {
					s.NextTick = sched.Next(now)
				}
			}
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Schedule) int {
		if c := strings.Compare(a.Queue, b.Queue); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// TickOf returns the schedule and the tick of a periodic job's id; ok is false for the id
// of any other job. A handler reads its tick from its job's id (JobFrom).
func TickOf(id string) (schedule string, tick time.Time, ok bool) {
	return persistence.ParseTickJobID(id)
}
