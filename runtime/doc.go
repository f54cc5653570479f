// Package runtime is zasync's public API: the only package a program imports.
//
// A program builds a Runtime from a Config (a Redis client, or none for an embedded one;
// queues and their agents; intervals; a logger), registers handlers by name, and puts calls
// into queues:
//
//	rt, err := runtime.New(runtime.Config{Redis: rdb})
//	...
//	defer rt.Close()
//	rt.Handle("add", runtime.Func2(func(ctx context.Context, a, b int) (int, error) {
//		return a + b, nil
//	}))
//	job, err := rt.Queue("default").Put(ctx, runtime.NewCall("add", 40, 2))
//	...
//	out, err := job.Wait(ctx) // until a dispatcher serving "default" has run it
//	var sum int
//	err = out.Decode(&sum) // 42, or the job's *Failure
//
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
