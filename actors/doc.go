// Package actors is zasync's node: one dispatcher with its agents, on protoactor-go. Actors
// talk to persistence.Store, never to go-redis, and exchange the messages of package
// messages. ARCHITECTURE.md ("Actors") describes the tree and where it is heading.
//
// A runtime's actors live below one root actor, in the program's actor system or one of
// zasync's own, one actor kind a file:
//
//	<root>                       rootActor (root.go): spawns its children on request
//	├── dispatcher/<uuid>        dispatcherActor (dispatcher.go): activation, pings, polls,
//	│   │                        wake-ups, reconciliation of its agents' runs, the drain
//	│   ├── supervisor           supervisorActor (supervisor.go): buries dead siblings and
//	│   │                        sweeps for jobs held by agents of dispatchers that are gone
//	│   └── agent/<queue>/<name> agentActor (agent.go): claims up to its size and hands each
//	│                            claimed job to a run
//	└── handler/<name>           handlerHost (handlerhost.go): the parent of the program's
//	                             actors that run the jobs of one HandleActor name, one per run
//
// The rest is not an actor. A run of a job goes on one of the node's runner goroutines
// (job.go, runners.go) and reports its end to its agent as a message; its agent cancels its
// context to interrupt it. The executor (exec.go, callbacks.go, composite.go) takes a job
// through its life over the store and is shared, stateless, by every run. The committer
// (committer.go) is a goroutine that batches the node's commits and claims into one store
// call: runs call it and wait for its reply, agents get their claims back as messages. The
// history (history.go), what the node polled and ran, is shared by the dispatcher, the agents
// and the Node behind a mutex. A goroutine that waits for an actor's answer (a run handled by
// an actor, a reminder's delivery, reminder.go) waits at a reply address (reply.go).
package actors
