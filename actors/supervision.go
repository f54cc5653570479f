package actors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Supervision in zasync's tree: a parent restarts a child that panics, at most
// maxRestarts times in restartWindow, and stops it after that. Each failure is logged at
// ERROR with the child, the panic and the message it was handling (protoactor itself logs it
// at INFO without either, and only to its own logger).
//
// What a restart costs is each actor's own business: an agent's job actors stop with it
// (their handlers' contexts are cancelled), and the jobs they held stay listed under the
// agent in the store with no run, so the dispatcher's next poll recovers them as
// interruptions (see checkRuns in dispatcher.go). A dispatcher restarted starts its
// agents and supervisor again; a stopped one leaves its records to its siblings, which bury
// it once its pings stop, as if its process had died.
const (
	maxRestarts   = 10
	restartWindow = 10 * time.Second
)

// supervision is the strategy a parent named parent applies to its children.
func supervision(events *slog.Logger, parent string) actor.SupervisorStrategy {
	return &loggedStrategy{
		inner:  actor.NewOneForOneStrategy(maxRestarts, restartWindow, actor.DefaultDecider),
		events: events, parent: parent,
	}
}

// jobSupervision is an agent's strategy for its job actors: one that panics is stopped,
// never restarted, since a restarted one would have forgotten the job its run still works on.
// The job is recovered as an interruption (see jobActor).
func jobSupervision(events *slog.Logger, parent string) actor.SupervisorStrategy {
	return &loggedStrategy{
		inner:  actor.NewOneForOneStrategy(0, restartWindow, func(any) actor.Directive { return actor.StopDirective }),
		events: events, parent: parent, stops: true,
	}
}

// loggedStrategy logs each failure, then lets inner decide.
type loggedStrategy struct {
	inner  actor.SupervisorStrategy
	events *slog.Logger
	parent string
	stops  bool // inner stops every child that fails
}

func (s *loggedStrategy) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	decision := "restarted"
	if s.stops || rs.NumberOfFailures(restartWindow) >= maxRestarts {
		decision = "stopped"
	}
	s.events.Error("an actor panicked", "actor", child.Id, "parent", s.parent, "panic", fmt.Sprint(reason),
		"message", fmt.Sprintf("%T", message), "then", decision)
	s.inner.HandleFailure(sys, sup, child, rs, reason, message)
}
