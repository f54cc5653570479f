// Package actors is zasync's actors on protoactor-go: a runtime's root, its queue actors,
// and the node (its committer, its historian, and one dispatcher with its agents). Actors talk to persistence.Store, never to
// go-redis, and exchange the messages of package messages. ARCHITECTURE.md ("Actors")
// describes the tree and why it is as it is.
//
// One actor kind a file:
//
//	<root>                           rootActor (root.go): the runtime's actors are its
//	│                                children; stopping it stops them all
//	├── queue/<name>                 queueActor (queue.go): the puts of this process into one
//	│                                queue, concurrent ones coalesced into one store call, and
//	│                                the queue's wake-ups, passed on to its dispatchers
//	├── committer/<uuid>             committerActor (committer.go): batches the node's commits and
//	│                                claims, of all its queues, into one store call
//	├── history/<uuid>               historianActor (historian.go): the only writer of the
//	│                                node's history (history.go), read by the Node
//	├── dispatcher/<uuid>            dispatcherActor (dispatcher.go): activation, pings, polls,
//	│   │                            claims at wake-ups, reconciliation of its agents' runs, the drain
//	│   ├── supervisor               supervisorActor (supervisor.go): buries dead siblings and
//	│   │                            sweeps for jobs held by agents of dispatchers that are gone
//	│   └── agent/<queue>/<name>     agentActor (agent.go): claims up to its size and hands each
//	│       └── job<n>               job to a jobActor (job.go), which runs it on a runner
//	│                                goroutine (runners.go), reports its end and takes the next
//	└── handler/<name>               handlerHost (handlerhost.go): the parent of the program's
//	                                 actors that run the jobs of one HandleActor name, one per run
//
// supervision.go says how parents treat a child that panics. The rest is not an actor: the
// executor (exec.go, callbacks.go, composite.go) takes a job through its life over the store
// on its run's goroutine, and sends the run's commits to the committer. A goroutine that waits for an actor's answer (a run handled by an actor, a reminder's
// delivery, reminder.go) waits at a reply address (reply.go).
package actors
