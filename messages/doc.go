// Package messages holds the messages zasync's actors exchange, grouped by conversation:
// dispatcher.go (the dispatcher's timer, wake-ups, the drain and its answer, agents telling
// it they are idle), agent.go (the dispatcher asking an agent to claim, to stop, or about jobs
// held with no run, and the agent's Orphaned answer), job.go (JobFinished, a run's end, sent
// to its agent by the goroutine that ran it), supervisor.go (Supervise) and root.go (Spawn
// and Spawned, zasync's root actor starting a child). They are plain structs with no logic;
// pointers are sent.
//
// Two conversations involve the program's own actors: handler.go, the runs of a handler that
// is an actor (runtime.HandleActor: RunJob to the run's actor, answered with JobReply;
// CancelJob when the run is interrupted; and StartRun, RunStarted, RunFailed and EndRun
// between the run and the handler's host actor), and reminder.go, durable reminders
// (Reminder to the actor hosting a target, answered with ReminderAck).
//
// Two conversations of package actors do not go through here yet: a claim's outcome, which
// the committer hands to an agent, and an agent's reminder to itself to claim for freed
// slots. Runs and the committer talk by function call and reply channel, not by message
// (ARCHITECTURE.md, "Actors").
package messages
