package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// supervisorActor judges a dispatcher's siblings by the death rule (ARCHITECTURE.md,
// "Semantics to keep"). After each of the dispatcher's pings in a queue it reads the next
// activated sibling in UUID order (a ring, as in zc.async, so that every dispatcher is watched
// by exactly one other) and buries it when it is dead: deactivated, and its agents cleaned so
// that its jobs run elsewhere. Once per ping_death_interval it also sweeps the queue for jobs
// held by agents whose dispatcher record is gone, deactivated or dead, which the ring cannot
// see (a record removed by hand, a cleaner that stopped half-way, several dead dispatchers next
// to each other in the ring), and trims every agent's completed history of the jobs whose
// records have expired; once an hour it forgets the dispatchers stopped for longer than the
// store's retention.
//
// It is an actor of its own so that cleaning a dead dispatcher with many jobs never delays the
// dispatcher's polls and pings.
//
// Takes Supervise (from its dispatcher); sends nothing.
type supervisorActor struct {
	exec     *executor
	uuid     string
	interval time.Duration        // between sweeps of one queue: the ping death interval
	swept    map[string]time.Time // queue → last sweep, by this process's clock
	forgot   map[string]time.Time // queue → last look for dispatchers to forget
}

func newSupervisor(exec *executor, uuid string, deathInterval time.Duration) *supervisorActor {
	return &supervisorActor{exec: exec, uuid: uuid, interval: deathInterval, swept: map[string]time.Time{}, forgot: map[string]time.Time{}}
}

func (s *supervisorActor) Receive(c actor.Context) {
	m, ok := c.Message().(*messages.Supervise)
	if !ok {
		return
	}
	s.checkSibling(m.Queue)
	if time.Since(s.swept[m.Queue]) >= s.interval {
		s.sweep(m.Queue)
		s.trim(m.Queue)
		s.swept[m.Queue] = time.Now()
	}
	if last, ok := s.forgot[m.Queue]; !ok || time.Since(last) >= forgetEvery {
		s.forget(m.Queue)
		s.forgot[m.Queue] = time.Now()
	}
}

// forgetEvery is how often a supervisor looks for dispatchers stopped long enough ago to be
// forgotten: the retention it waits for is days, and each look reads every record.
const forgetEvery = time.Hour

// forget removes what dispatchers stopped for longer than the store's retention left in q
// (their records, pings, agents and histories), so that processes starting with a new UUID
// each time do not grow the store without bound.
func (s *supervisorActor) forget(q string) {
	ctx, cancel := s.exec.op()
	defer cancel()
	gone, err := s.exec.store.ForgetStopped(ctx, q)
	if len(gone) > 0 {
		s.exec.events.Info(fmt.Sprintf("forgot %d dispatchers stopped for longer than the retention", len(gone)), "queue", q, "uuids", gone)
	}
	if err != nil {
		s.exec.events.Warn("cannot forget long-stopped dispatchers", "queue", q, "error", err)
	}
}

// trim removes from the completed histories of q's agents the entries whose jobs' records
// have expired. A completion trims only its own agent's history, so an agent that completes
// nothing any more (idle, or its dispatcher stopped or dead) would keep them for ever.
func (s *supervisorActor) trim(q string) {
	ctx, cancel := s.exec.op()
	defer cancel()
	n, err := s.exec.store.TrimCompleted(ctx, q)
	if err != nil {
		s.exec.events.Warn("cannot trim completed histories", "queue", q, "error", err)
	}
	if n > 0 {
		s.exec.trace.Debug(fmt.Sprintf("trimmed %d expired entries from completed histories", n), "queue", q)
	}
}

// checkSibling buries the next activated sibling in the ring if it is dead.
func (s *supervisorActor) checkSibling(q string) {
	ctx, cancel := s.exec.op()
	defer cancel()
	sib, err := s.exec.store.NextSibling(ctx, q, s.uuid)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return // alone in the queue
	case err != nil:
		s.exec.events.Warn("cannot read the next sibling", "queue", q, "uuid", s.uuid, "error", err)
		return
	case !sib.Dead:
		return
	}
	s.bury(q, sib)
}

// bury deactivates a dead dispatcher and cleans its agents; the store checks again that it is
// dead in the same transaction, so a dispatcher that pinged meanwhile is left alone.
func (s *supervisorActor) bury(q string, d *persistence.DispatcherRecord) {
	ctx, cancel := s.exec.op()
	defer cancel()
	report, ok, err := s.exec.store.Bury(ctx, q, d.UUID)
	switch {
	case errors.Is(err, persistence.ErrActivated):
		s.exec.events.Warn(fmt.Sprintf("dispatcher %s came back while its jobs were being reassigned", d.UUID), "queue", q, "by", s.uuid)
		return
	case err != nil:
		s.exec.events.Error(fmt.Sprintf("cannot deactivate dead dispatcher %s", d.UUID), "queue", q, "by", s.uuid, "error", err)
		return
	case !ok:
		return // it pinged after all
	}
	s.exec.events.Warn(fmt.Sprintf("deactivated dead dispatcher %s", d.UUID), "queue", q, "by", s.uuid,
		"last ping", d.LastPing, "requeued", len(report.Requeued), "interrupted", len(report.Interrupted),
		"resumed", len(report.Resumed))
	if len(report.Completed) > 0 {
		s.exec.events.Warn("unexpectedly had to inform agent of completion", "queue", q, "dispatcher", d.UUID, "jobs", report.Completed)
	}
}

// sweep cleans the agents that hold jobs in q while their dispatcher's record is gone,
// deactivated or dead. The store refuses to clean an agent whose dispatcher is alive, however
// stale this reading, so a sweep never takes a job from a live dispatcher.
func (s *supervisorActor) sweep(q string) {
	ctx, cancel := s.exec.op()
	defer cancel()
	held, err := s.exec.store.HeldBy(ctx, q)
	if err != nil {
		s.exec.events.Warn("cannot sweep for orphaned jobs", "queue", q, "error", err)
		return
	}
	var records map[string]*persistence.DispatcherRecord
	buried := map[string]bool{}
	for _, o := range held {
		if o.Dispatcher == s.uuid || buried[o.Dispatcher] {
			continue
		}
		if records == nil {
			all, err := s.exec.store.Dispatchers(ctx, q)
			if err != nil {
				s.exec.events.Warn("cannot sweep for orphaned jobs", "queue", q, "error", err)
				return
			}
			records = make(map[string]*persistence.DispatcherRecord, len(all))
			for _, d := range all {
				records[d.UUID] = d
			}
		}
		d := records[o.Dispatcher]
		switch {
		case d != nil && d.IsActivated() && !d.Dead:
			continue
		case d != nil && d.IsActivated(): // dead, and not next to a live dispatcher in the ring
			s.bury(q, d)
			buried[d.UUID] = true
			continue
		}
		report, err := s.exec.store.CleanAgent(ctx, q, o)
		switch {
		case errors.Is(err, persistence.ErrActivated):
			continue // its dispatcher came back
		case err != nil:
			s.exec.events.Warn("cannot clean orphaned jobs", "queue", q, "agent", o.String(), "error", err)
			continue
		}
		if report.Len() > 0 {
			s.exec.events.Warn("reassigned orphaned jobs", "queue", q, "agent", o.String(), "by", s.uuid,
				"requeued", len(report.Requeued), "interrupted", len(report.Interrupted), "resumed", len(report.Resumed))
		}
	}
}
