// Package messages holds the messages zasync's actors exchange, grouped by conversation:
// dispatcher.go (the dispatcher's timer, wake-ups, the drain and its answer, agents telling
// it they are idle), agent.go (the dispatcher asking an agent to claim, to stop, or about jobs
// held with no run, and the agent's Orphaned answer), job.go (JobFinished, a run's end, sent
// to its agent by the goroutine that ran it) and supervisor.go (Supervise). They are plain
// structs with no logic; pointers are sent.
//
// Two conversations of package actors do not go through here yet: a claim's outcome, which
// the committer hands to an agent, and an agent's reminder to itself to claim for freed
// slots. Runs and the committer talk by function call and reply channel, not by message
// (ARCHITECTURE.md, "Actors").
package messages
