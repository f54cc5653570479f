package messages

import "github.com/zasync/zasync/persistence"

// Claim asks an agent to claim jobs for its free slots.
type Claim struct{}

// Interrupt asks an agent to stop claiming and to cancel its running jobs' handlers; it
// answers with AgentIdle once none runs.
type Interrupt struct{}

// Reconcile tells an agent, after a poll, which jobs the store lists under it while the node
// records no run of them (as their fences read then, parked jobs left out). Those whose runs
// are not on their way either were claimed and forgotten (a claim whose reply was lost) or
// left by a run that ended on a store error: the agent answers with Orphaned for them.
type Reconcile struct {
	Jobs []persistence.Fence
}

// Orphaned tells the dispatcher which of the jobs an agent was asked about in Reconcile it
// holds in the store and does not run, nor will: the dispatcher recovers them as a cleaning
// would, as interrupted jobs.
type Orphaned struct {
	Queue, Agent string
	Jobs         []persistence.Fence
}

// Claimed is the outcome of a claim made for an agent, which the node's committer hands to
// it: the jobs claimed (each already started, its run the agent's to make), or why none was.
type Claimed struct {
	// Claim is the number its ClaimStarted gave the claim.
	Claim uint64
	Jobs  []*persistence.Job
	Err   error
	// Retried: the claim lost its race and is asked again; there is nothing to do with it
	// but note that it is back (an agent keeps the claims on their way, to know when a job
	// the store lists under it can no longer be on its way).
	Retried bool
}

// ClaimFreed is an agent's reminder to itself to claim for the slots its ended runs freed,
// sent once for all the runs that end while it is on its way.
type ClaimFreed struct{}

// ListRuns asks an agent for the runs it has going on; it answers with Runs.
type ListRuns struct{}

// Runs answers ListRuns.
type Runs struct {
	Runs []Run
}

// Run is one run going on in an agent: its job actor (Worker) and the fence its claim gave it.
type Run struct {
	Worker string
	Fence  persistence.Fence
}

// Adopting tells an agent that a run of one of its job actors is about to adopt job Ref (a
// waiting composite or outer job, a system job's target): the job will be listed under the
// agent, no longer parked, with no run of its own, until the run is done with it
// (AdoptionEnded). The agent leaves such a job out of the orphans it reports. The run sends it
// to the agent itself, before it writes the adoption, so that the agent handles it before the
// Reconcile of any poll that read the adoption.
type Adopting struct {
	Ref persistence.Ref
}

// AdoptionEnded tells an agent that the run which sent Adopting for Ref is done with that job.
type AdoptionEnded struct {
	Ref persistence.Ref
}
