package messages

import "github.com/asynkron/protoactor-go/actor"

// Spawn asks zasync's root actor to start an actor from Props as its child, named Name. It is
// answered with Spawned.
type Spawn struct {
	Props *actor.Props
	Name  string
}

// Spawned answers Spawn: the child's PID, or why it could not start.
type Spawned struct {
	PID *actor.PID
	Err error
}
