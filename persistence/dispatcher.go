package persistence

import "time"

// AgentSpec describes one agent of a dispatcher in a queue, as recorded for monitoring.
type AgentSpec struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// DispatcherConfig is what a dispatcher records about itself in a queue.
type DispatcherConfig struct {
	// PingInterval: the ping is rewritten only when the last one is at least this old.
	PingInterval time.Duration
	// PingDeathInterval: the dispatcher is dead when max(last ping, activation) plus this is
	// before now (Redis time).
	PingDeathInterval time.Duration
	// Agents: the agents it runs in this queue.
	Agents []AgentSpec
	// Host and PID say where the dispatcher runs (its host name and process id), written
	// with the rest of the record when the dispatcher starts, for operators.
	Host string
	PID  int
}

// Validate checks the intervals and agent names and sizes.
func (c *DispatcherConfig) Validate() error {
	if c.PingInterval <= 0 || c.PingDeathInterval <= 0 {
		return invalidf("ping interval %s and ping death interval %s must be positive", c.PingInterval, c.PingDeathInterval)
	}
	seen := map[string]bool{}
	for _, a := range c.Agents {
		if err := ValidateName("agent", a.Name); err != nil {
			return err
		}
		if a.Size < 0 {
			return invalidf("agent %q has negative size %d", a.Name, a.Size)
		}
		if seen[a.Name] {
			return invalidf("agent %q given twice", a.Name)
		}
		seen[a.Name] = true
	}
	return nil
}

// DispatcherRecord is a dispatcher's record in one queue.
type DispatcherRecord struct {
	Queue string
	UUID  string
	DispatcherConfig
	Activated time.Time // zero when not activated
	LastPing  time.Time // zero before the first ping
	// Buried is when a sibling last found the dispatcher dead and handed its jobs on
	// (Dispatchers.Bury); zero if that never happened. It is kept when the dispatcher comes
	// back, as the last death in its history.
	Buried time.Time
	// Dead is computed when the record is read, against the store's clock: see IsDead.
	Dead bool
}

// IsActivated reports whether the record is activated.
func (d *DispatcherRecord) IsActivated() bool { return !d.Activated.IsZero() }

// IsDead applies the death rule at now: take the later of the activation and the last ping
// (the last ping alone once deactivated); the dispatcher is dead when that plus the ping death
// interval is before now. A record never activated nor pinged is not dead.
func (d *DispatcherRecord) IsDead(now time.Time) bool {
	ref := d.LastPing
	if d.Activated.After(ref) {
		ref = d.Activated
	}
	if ref.IsZero() {
		return false
	}
	return ref.Add(d.PingDeathInterval).Before(now)
}

// DispatcherEvent is one step of a dispatcher's life in a queue, as the queue's log of them
// keeps it (Dispatchers.DispatcherEvents): when it started, stopped, was found dead by a
// sibling, or came back after being presumed dead.
type DispatcherEvent struct {
	Queue      string
	Dispatcher string
	At         time.Time // store time
	Kind       DispatcherEventKind
	// Jobs is how many jobs the step took from the dispatcher's agents and handed on (put
	// back, interrupted, callbacks resumed, completed ones filed): a stop's or a death's
	// cleaning, or an activation's clean-up of what an earlier run left.
	Jobs int
}

// DispatcherEventKind names a step of a dispatcher's life.
type DispatcherEventKind string

// The kinds of DispatcherEvent.
const (
	// EventActivated: the dispatcher started (Dispatchers.Activate), taking over its record
	// when a dead run of it still held it.
	EventActivated DispatcherEventKind = "activated"
	// EventStopped: the dispatcher stopped cleanly (Dispatchers.Deactivate).
	EventStopped DispatcherEventKind = "stopped"
	// EventFoundDead: a sibling found the dispatcher past its ping death interval and
	// handed its jobs on (Dispatchers.Bury).
	EventFoundDead DispatcherEventKind = "found_dead"
	// EventCameBack: a dispatcher presumed dead pinged again (or was reactivated): it was
	// alive after all, and its jobs that were not taken are still its own.
	EventCameBack DispatcherEventKind = "came_back"
)

// MaxDispatcherEvents is how many events a queue's log keeps: the newest.
const MaxDispatcherEvents = 500

// PingResult says what a ping did.
type PingResult struct {
	// Reactivated: the record was not activated (a sibling had presumed the dispatcher dead);
	// the ping reactivated it without cleaning its agents. The runtime logs this CRITICAL.
	Reactivated bool
	// Wrote: the ping was old enough (PingInterval) and was rewritten.
	Wrote bool
	// At: the store time of the ping.
	At time.Time
}

// CleanReport lists what cleaning a dispatcher's agents did, by job id.
type CleanReport struct {
	Requeued    []string // NEW, PENDING or ASSIGNED jobs put back at the end of the queue
	Interrupted []string // ACTIVE jobs, for which a handleInterrupt job was queued
	Resumed     []string // jobs in CALLBACKS, for which a resumeCallbacks job was queued
	Completed   []string // COMPLETED jobs moved to the agent's completed history
	SystemJobs  []string // ids of the handleInterrupt and resumeCallbacks jobs queued
}

// Len is the number of jobs cleaned.
func (r *CleanReport) Len() int {
	return len(r.Requeued) + len(r.Interrupted) + len(r.Resumed) + len(r.Completed)
}

// QuotaInfo describes a quota of a queue.
type QuotaInfo struct {
	Name    string
	Size    int
	Holders []string // ids of the jobs holding a slot
}

// QueueStats are a queue's counts, each read in O(1) or O(log n) by the store.
type QueueStats struct {
	Due       int64 // pending jobs that may be claimed now (put-back ones included)
	Scheduled int64 // pending jobs whose begin_after is still ahead
	PutBack   int64 // interrupted jobs waiting at the front of the queue
	Held      int64 // jobs held by agents (ASSIGNED, ACTIVE, CALLBACKS, parked)
	Paused    bool  // no dispatcher claims from the queue (Queues.SetPaused)
}
