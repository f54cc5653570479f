package messages

import (
	"time"

	"github.com/zasync/zasync/persistence"
)

// A node's historian records what the node polled and ran, for introspection (Node.JobInfo,
// Polls, Statistics, …). It is the history's only writer: the dispatcher and the agents tell
// it with these messages, and an agent passes each run's end on to it (JobFinished).

// RunsClaimed tells the historian of the runs an agent of Queue started for the jobs one
// claim gave it, in claim order: one message a claim, not one a run.
type RunsClaimed struct {
	Queue, Agent string
	Runs         []ClaimedRun
}

// ClaimedRun is one run in a RunsClaimed: its job, its run's name (Worker), and when it was
// started (read before the start: a job started with its batch can end before the agent
// tells the historian).
type ClaimedRun struct {
	Job     *persistence.Job
	Worker  string
	Started time.Time
}

// ClaimOutcome tells the historian how an agent's last claim went: Err is its error's text,
// empty when it went well. An agent sends it when that changes.
type ClaimOutcome struct {
	Queue, Agent, Err string
}

// RunReassigned tells the historian that the job of run Worker was taken from it.
type RunReassigned struct {
	Worker string
}

// Polled tells the historian of a dispatcher's poll, by queue name; the historian adds what
// the agents told it since the last poll.
type Polled struct {
	Queues map[string]PolledQueue
}

// PolledQueue is one queue in a Polled: Unavailable when the dispatcher is not activated in
// it (Agents is then nil), else each agent by name.
type PolledQueue struct {
	Unavailable bool
	Agents      map[string]PolledAgent
}

// PolledAgent is one agent in a PolledQueue: its size, and how many jobs the store listed
// under it (-1 when that could not be read).
type PolledAgent struct {
	Size, Len int
}
