package actors

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// schedulerActor ticks a node's periodic jobs (runtime.Every): at each tick of each schedule
// this process declared, it asks the store to put the tick's job. Every process that declared
// a schedule does the same and the store puts each tick once (persistence.Schedules.PutTick),
// so no process leads and any may stop. It keeps its declarations alive in the store with a
// heartbeat, removes them when it stops, and at each schedule's first declaration tries its
// newest tick, which the store puts only if every process missed it and the schedule runs
// missed ticks once. Store calls run on goroutines of their own; their outcomes come back as
// messages.
//
// Takes Declare (a schedule to tick, from the runtime), SchedulerTick and SchedulerHeartbeat
// (its timers), TickRetry (its reminder after a failed put), TickDone and Declared (its store
// calls back); sends nothing to other actors.
type schedulerActor struct {
	o       SchedulerOptions
	entries map[string]*schedEntry // by queue/name

	self   *actor.PID
	send   func(any) // to itself, from a goroutine
	timers *scheduler.TimerScheduler
	tick   scheduler.CancelFunc
	beat   scheduler.CancelFunc
	retry  map[string]scheduler.CancelFunc

	ctx    context.Context // ends store calls when it stops
	cancel context.CancelFunc
	calls  sync.WaitGroup
}

// schedEntry is one schedule this scheduler ticks.
type schedEntry struct {
	decl  persistence.ScheduleDecl
	sched *persistence.Schedule
	next  time.Time // the next tick to try
	// declared: its first declaration succeeded; its ticks are tried from then on.
	declared bool
	// busy: a put is on its way; want is the newest tick asked for meanwhile, tried next.
	busy bool
	want time.Time
}

// SchedulerOptions configure a node's scheduler.
type SchedulerOptions struct {
	Store  persistence.Schedules
	Logger *slog.Logger
	// Now tells the time ticks are judged by. Default time.Now.
	Now func() time.Time
	// Heartbeat is how often declarations are refreshed; each lasts three heartbeats.
	// Default DefaultScheduleHeartbeat.
	Heartbeat time.Duration
	// Schedules returns the schedules to tick when the actor starts (or restarts).
	Schedules func() []*messages.Declare
	// OnTick, if set, is told of each tick's put (tests, metrics).
	OnTick func(d persistence.ScheduleDecl, tick time.Time, res persistence.TickResult, err error)
}

// DefaultScheduleHeartbeat is how often a scheduler refreshes its declarations by default: a
// process gone stops being listed as declaring its schedules within three of them.
const DefaultScheduleHeartbeat = 10 * time.Second

// maxTickWait is the longest the scheduler's timer waits before it looks at its clock again.
const maxTickWait = time.Second

// tickRetryAfter is how long after a failed put the newest tick is tried again.
const tickRetryAfter = time.Second

// storeCallTimeout bounds each store call of the scheduler.
const storeCallTimeout = 10 * time.Second

// StartScheduler starts a scheduler below root, named name.
func StartScheduler(root *Root, name string, o SchedulerOptions) (*actor.PID, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultScheduleHeartbeat
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &schedulerActor{o: o} })
	return root.Spawn(props, name)
}

func (s *schedulerActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		s.started(c)
	case *messages.Declare:
		s.add(m)
		s.arm()
	case *messages.Declared:
		s.declared(m)
	case *messages.SchedulerTick:
		s.due()
		s.arm()
	case *messages.SchedulerHeartbeat:
		s.heartbeat()
		s.beat = s.timers.SendOnce(s.o.Heartbeat, s.self, &messages.SchedulerHeartbeat{})
	case *messages.TickRetry:
		key := m.Queue + "/" + m.Name
		delete(s.retry, key)
		if e := s.entries[key]; e != nil && e.declared {
			s.try(e, e.sched.Latest(s.o.Now()))
		}
	case *messages.TickDone:
		s.done(m)
	case *actor.Stopping, *actor.Restarting:
		s.stop()
	}
}

func (s *schedulerActor) started(c actor.Context) {
	s.self = c.Self()
	sys := c.ActorSystem()
	s.send = func(m any) { sys.Root.Send(s.self, m) }
	s.timers = scheduler.NewTimerScheduler(sys.Root)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.entries = map[string]*schedEntry{}
	s.retry = map[string]scheduler.CancelFunc{}
	if s.o.Schedules != nil {
		for _, d := range s.o.Schedules() {
			s.add(d)
		}
	}
	s.beat = s.timers.SendOnce(s.o.Heartbeat, s.self, &messages.SchedulerHeartbeat{})
	s.arm()
}

// add starts ticking a schedule once its first declaration is written: a tick tried before
// it could be taken for one of a schedule whose record was lost.
func (s *schedulerActor) add(m *messages.Declare) {
	key := m.Decl.Queue + "/" + m.Decl.Name
	e := &schedEntry{decl: m.Decl, sched: m.Schedule, next: m.Schedule.Next(s.o.Now())}
	if old := s.entries[key]; old != nil {
		e.busy, e.want = old.busy, old.want
	}
	s.entries[key] = e
	s.declare([]persistence.ScheduleDecl{e.decl}, true)
}

// declare writes declarations on a goroutine; first asks for a Declared back for each.
func (s *schedulerActor) declare(decls []persistence.ScheduleDecl, first bool) {
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		for _, d := range decls {
			ctx, cancel := context.WithTimeout(s.ctx, storeCallTimeout)
			err := s.o.Store.DeclareSchedule(ctx, d)
			cancel()
			if s.ctx.Err() != nil {
				return
			}
			if err != nil {
				s.events().Warn("cannot declare schedule", "queue", d.Queue, "schedule", d.Name, "error", err)
			}
			if first || err == nil {
				s.send(&messages.Declared{Queue: d.Queue, Name: d.Name, Err: err})
			}
		}
	}()
}

// declared starts a schedule's ticks at its first declaration, with its newest tick: the
// store puts it only if every process missed it and the schedule runs missed ticks once.
func (s *schedulerActor) declared(m *messages.Declared) {
	e := s.entries[m.Queue+"/"+m.Name]
	if e == nil || e.declared || m.Err != nil {
		return
	}
	e.declared = true
	if t := e.sched.Latest(s.o.Now()); !t.IsZero() {
		s.try(e, t)
	}
}

// heartbeat refreshes every declaration, one store call each, on one goroutine.
func (s *schedulerActor) heartbeat() {
	decls := make([]persistence.ScheduleDecl, 0, len(s.entries))
	for _, e := range s.entries {
		decls = append(decls, e.decl)
	}
	if len(decls) > 0 {
		s.declare(decls, false)
	}
}

// due tries the newest tick of every schedule whose next tick has come.
func (s *schedulerActor) due() {
	now := s.o.Now()
	for _, e := range s.entries {
		if e.next.IsZero() || e.next.After(now) {
			continue
		}
		e.next = e.sched.Next(now)
		if e.declared {
			s.try(e, e.sched.Latest(now))
		}
	}
}

// arm sets the timer to the earliest next tick.
func (s *schedulerActor) arm() {
	if s.tick != nil {
		s.tick()
		s.tick = nil
	}
	var first time.Time
	for _, e := range s.entries {
		if !e.next.IsZero() && (first.IsZero() || e.next.Before(first)) {
			first = e.next
		}
	}
	if first.IsZero() {
		return
	}
	// A millisecond late, so that a clock read a moment early does not see the tick ahead;
	// and at most maxTickWait ahead, since ticks are times of a clock that may jump (a
	// wall clock stepped or resumed from suspend, a test's fake clock) while timers wait
	// a duration.
	d := min(max(first.Sub(s.o.Now())+time.Millisecond, time.Millisecond), maxTickWait)
	s.tick = s.timers.SendOnce(d, s.self, &messages.SchedulerTick{})
}

// try puts a tick of e on a goroutine, or keeps it for when the put on its way returns.
func (s *schedulerActor) try(e *schedEntry, tick time.Time) {
	if tick.IsZero() {
		return
	}
	if e.busy {
		if tick.After(e.want) {
			e.want = tick
		}
		return
	}
	e.busy = true
	d := e.decl
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		ctx, cancel := context.WithTimeout(s.ctx, storeCallTimeout)
		res, err := s.o.Store.PutTick(ctx, d, tick)
		cancel()
		if s.ctx.Err() != nil {
			return
		}
		s.send(&messages.TickDone{Queue: d.Queue, Name: d.Name, Tick: tick, Result: res, Err: err})
	}()
}

// done takes a put's outcome: a failure is tried again shortly with the newest tick then
// (the put may have been made, its reply lost: the store tells, the next time).
func (s *schedulerActor) done(m *messages.TickDone) {
	key := m.Queue + "/" + m.Name
	e := s.entries[key]
	if e == nil {
		return
	}
	e.busy = false
	if s.o.OnTick != nil {
		s.o.OnTick(e.decl, m.Tick, m.Result, m.Err)
	}
	log := []any{"queue", m.Queue, "schedule", m.Name, "tick", m.Tick}
	switch {
	case m.Err != nil:
		s.events().Warn("cannot put a periodic job; trying again", append(log, "error", m.Err)...)
		if s.retry[key] == nil {
			s.retry[key] = s.timers.SendOnce(tickRetryAfter, s.self, &messages.TickRetry{Queue: m.Queue, Name: m.Name})
		}
	case m.Result.Outcome == persistence.TickPut:
		s.trace().Info("periodic job put", append(log, "job", m.Result.LastJob)...)
	case m.Result.Outcome == persistence.TickMissed:
		s.events().Info("periodic job missed: skipped", log...)
	}
	if w := e.want; !w.IsZero() {
		e.want = time.Time{}
		if w.After(m.Tick) || m.Err != nil {
			s.try(e, w)
		}
	}
}

// stop ends the timers and the store calls, and removes this process's declarations, so
// that listings stop naming it at once.
func (s *schedulerActor) stop() {
	if s.timers == nil {
		return
	}
	for _, c := range []scheduler.CancelFunc{s.tick, s.beat} {
		if c != nil {
			c()
		}
	}
	for _, c := range s.retry {
		c()
	}
	s.cancel()
	s.calls.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, e := range s.entries {
		if err := s.o.Store.UndeclareSchedule(ctx, e.decl.Queue, e.decl.Name, e.decl.Process); err != nil {
			s.events().Warn("cannot remove a schedule's declaration; it expires by itself",
				"queue", e.decl.Queue, "schedule", e.decl.Name, "error", err)
		}
	}
	s.timers = nil
}

func (s *schedulerActor) events() *slog.Logger { return eventsLogger(s.o.Logger) }

func (s *schedulerActor) trace() *slog.Logger {
	if s.o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.o.Logger.With("logger", "zasync.trace")
}
