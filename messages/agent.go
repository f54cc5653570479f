package messages

// Claim asks an agent to claim jobs for its free slots.
type Claim struct{}

// Interrupt asks an agent to stop claiming and to cancel its running jobs' handlers; it
// answers with AgentIdle once none runs.
type Interrupt struct{}
