// Package actors is zasync's node: one dispatcher with its agents, and the queue actors that
// put jobs, on protoactor-go. Actors talk to persistence.Store, never to go-redis, and
// exchange the messages of package messages. ARCHITECTURE.md ("Actors") describes the tree
// and where it is heading.
//
// Every actor of a runtime lives below zasync's root actor (root.go), in the program's actor
// system or one of zasync's own, one kind of actor a file:
//
//	zasync                           rootActor (root.go): spawns its children, supervises them
//	├── queue/<name>                 queueActor (queue.go): the puts of this process into one
//	│                                queue, concurrent ones coalesced into one store call
//	└── dispatcher/<uuid>            dispatcherActor (dispatcher.go): activation, pings, polls,
//	    │                            wake-ups, reconciliation of its agents' runs, the drain
//	    ├── supervisor               supervisorActor (supervisor.go): buries dead siblings and
//	    │                            sweeps for jobs held by agents of dispatchers that are gone
//	    └── agent/<queue>/<name>     agentActor (agent.go): claims up to its size and hands each
//	                                 claimed job to a run
//
// The rest is not an actor. A run of a job goes on one of the node's runner goroutines
// (job.go, runners.go) and reports its end to its agent as a message; its agent cancels its
// context to interrupt it. The executor (exec.go, callbacks.go, composite.go) takes a job
// through its life over the store and is shared, stateless, by every run. The committer
// (committer.go) is a goroutine that batches the node's commits and claims into one store
// call: runs call it and wait for its reply, agents get their claims back as messages. The
// history (history.go), what the node polled and ran, is shared by the dispatcher, the agents
// and the Node behind a mutex.
package actors
