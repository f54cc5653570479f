package messages

// Poll is the dispatcher's timer tick: ping, then let each agent claim.
type Poll struct{}

// NotInfluenceReceiveTimeout keeps timer ticks from counting as activity.
func (*Poll) NotInfluenceReceiveTimeout() {}

// Wake tells the dispatcher that a job was put in Queue: its agents claim at once, without
// waiting for the next poll. The queue's actor sends it to the dispatchers that serve the
// queue (see messages.Serve), when the store tells of a put from any process.
type Wake struct {
	Queue string
}

// Drain asks the dispatcher for a clean shutdown: stop claiming, interrupt the running jobs,
// wait for them up to the grace period, then deactivate and clean its records. It is
// answered with Drained once that is done.
type Drain struct{}

// Drained answers Drain. Err is set when a record could not be cleaned.
type Drained struct {
	Err error
}

// GraceOver ends the wait for running jobs during a drain.
type GraceOver struct{}

// AgentIdle tells the dispatcher, during a drain, that an agent has no job running.
type AgentIdle struct {
	Queue, Agent string
}
