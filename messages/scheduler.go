package messages

import (
	"time"

	"github.com/zasync/zasync/persistence"
)

// Declare gives a node's scheduler a schedule to tick (runtime.Every after Start): it
// declares it in the store, puts its newest tick if that was missed, then tries each tick. A
// schedule of the same queue and name replaces the one the scheduler had.
type Declare struct {
	Decl     persistence.ScheduleDecl
	Schedule *persistence.Schedule
}

// SchedulerTick is the scheduler's timer: a schedule's next tick is due.
type SchedulerTick struct{}

// SchedulerHeartbeat is the scheduler's timer to refresh its declarations in the store.
type SchedulerHeartbeat struct{}

// TickRetry is the scheduler's reminder to try a schedule's newest tick again after a put
// that failed.
type TickRetry struct {
	Queue, Name string
}

// TickDone is a tick's put back from its goroutine to the scheduler: what the store did, or
// why it could not.
type TickDone struct {
	Queue, Name string
	Tick        time.Time
	Result      persistence.TickResult
	Err         error
}

// Declared is a schedule's declaration back from its goroutine to the scheduler.
type Declared struct {
	Queue, Name string
	Err         error
}
