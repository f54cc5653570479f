// Package runtime is zasync's public API: the only package a program imports.
//
// Its name is the standard library's runtime's too: a file that needs both imports this one
// under another name, as in zasync "github.com/zasync/zasync/runtime".
//
// A program builds a Runtime from a Config (a Redis client, or none for an embedded one;
// queues and their agents; intervals; a logger), registers typed handlers by name, and puts
// jobs into queues:
//
//	rt, err := runtime.New(runtime.Config{Redis: rdb})
//	...
//	defer rt.Close()
//	add, err := runtime.Register(rt, "add", func(ctx context.Context, p Pair) (int, error) {
//		return p.A + p.B, nil
//	})
//	job, err := add.Put(ctx, "default", Pair{A: 40, B: 2})
//	...
//	sum, err := job.Wait(ctx) // 42 once a dispatcher serving "default" has run it, or its *Failure
//
// The untyped API (Handle, NewCall, Queue.Put, Outcome.Decode) is there for calls built at
// run time and for the command.
// A call names a handler and carries JSON arguments; no code travels with it, so every
// process that serves a queue registers the same handlers. Jobs are run by the dispatchers
// of the processes serving their queue, this one or others. The job record, its result and its
// failure are stored durably in Redis; any number of processes may put into and serve the
// same queues.
//
// A program that runs protoactor-go actors gives the runtime its actor system
// (Config.ActorSystem): a handler may then be an actor (HandleActor), and durable reminders
// (Remind) are delivered to the actor hosting their target in a process that serves it
// (HostReminders).
//
// Once started, a runtime also describes what its dispatcher does, from memory: StatusInfo,
// JobInfo, ActiveJobIDs, Polls, PollInfo and Statistics (zc.async's dispatcher introspection).
//
// The package is named runtime like the standard library's; import it under another name
// (zruntime, say) in a file that needs both.
package runtime
