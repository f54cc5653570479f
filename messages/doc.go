// Package messages holds the messages zasync's actors exchange, grouped by conversation:
// root.go (asking zasync's root actor to start a child), dispatcher.go (the dispatcher's
// timer, wake-ups, the drain and its answer, agents telling it they are idle), agent.go (the
// dispatcher asking an agent to claim, to stop, or about jobs held with no run, and the
// agent's Orphaned answer; a claim's outcome, Claimed; an agent's reminder to itself,
// ClaimFreed), job.go (JobFinished, a run's end, from its goroutine to its job actor and on
// to its agent) and supervisor.go (Supervise). They are plain structs with no logic; pointers
// are sent.
//
// Runs and the committer still talk by function call and reply channel, not by message
// (ARCHITECTURE.md, "Actors").
package messages
