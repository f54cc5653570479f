// Package messages holds the messages zasync's actors exchange, grouped by conversation:
//   - root.go: Spawn, to start an actor below zasync's root, answered with Spawned;
//   - queue.go: Put, a put sent to a queue actor by a program's actor, answered with PutDone;
//     JobCompleted, the outcome of a job whose put asked to be notified; Serve, a dispatcher
//     telling a queue actor that it serves the queue, to be sent its wake-ups;
//   - dispatcher.go: the dispatcher's timer, wake-ups, the drain and its answer, agents
//     telling it they are idle;
//   - agent.go: the dispatcher asking an agent to claim, to stop, for its runs, or about jobs
//     held with no run, and the agent's answers; a claim's outcome, Claimed; an agent's
//     reminder to itself, ClaimFreed; a run telling its agent of a job it adopts;
//   - committer.go: an agent joining, asking and leaving its node's committer, which
//     announces each claim it starts for the agent;
//   - history.go: what the dispatcher and the agents tell the node's historian;
//   - job.go: TakeJob, an agent handing a job to a job actor; JobFinished, a run's end, from
//     its goroutine to its job actor and on to its agent and the historian; Revoked, a job
//     cancelled while it may run, from its queue actor down to the job actor running it;
//   - supervisor.go: Supervise;
//   - scheduler.go: Declare, a schedule given to a node's scheduler; the scheduler's timers
//     (SchedulerTick, SchedulerHeartbeat, TickRetry) and its store calls back from their
//     goroutines (TickDone, Declared).
//
// They are plain structs with no logic; pointers are sent.
//
// Two conversations involve the program's own actors: handler.go, the runs of a handler that
// is an actor (runtime.HandleActor: RunJob to the run's actor, answered with JobReply;
// CancelJob when the run is interrupted; and StartRun, RunStarted, RunFailed and EndRun
// between the run and the handler's host actor), and reminder.go, durable reminders
// (Reminder to the actor hosting a target, answered with ReminderAck).
//
// A few conversations of package actors do not go through here: a put from Queue.Put, which
// carries the caller's reply channel and may hand the caller its cohort's store call to make,
// a queue actor's own reminder that its store call returned, a run's commit and a handler's
// annotation write, each carrying its caller's reply channel, and the committer's and job
// actors' own messages (a store call back, the end of the committer's wait for a cohort).
package messages
