// Package messages holds the messages zasync's actors exchange, grouped by conversation:
// root.go (Spawn, to start an actor below zasync's root, answered with Spawned),
// queue.go (Put, a put sent to a queue actor by Queue.Put or by a program's actor, answered
// with PutDone, and JobCompleted, the outcome of a job whose put asked to be notified),
// dispatcher.go (the dispatcher's timer, wake-ups, the drain and its answer, agents telling
// it they are idle), agent.go (the dispatcher asking an agent to claim, to stop, or about jobs
// held with no run, and the agent's Orphaned answer), job.go (JobFinished, a run's end, sent
// to its agent by the goroutine that ran it) and supervisor.go (Supervise). They are plain
// structs with no logic; pointers are sent.
//
// A few conversations of package actors do not go through here: a claim's outcome, which
// the committer hands to an agent, and an agent's reminder to itself to claim for freed
// slots; a queue actor's own reminder that its store call returned; and a put from
// Queue.Put, which carries the caller's reply channel and may hand the caller its cohort's
// store call to make. Runs and the committer talk by function call and reply channel, not
// by message (ARCHITECTURE.md, "Actors").
package messages
