package messages

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/persistence"
)

// JoinClaims registers an agent with its node's committer, which claims for it (Claim, its
// Max aside: the committer sets it) in its batches and delivers each outcome to Agent as
// ClaimStarted, then Claimed. An agent sends it when it starts; one that joins again (it
// restarted, with the same PID) replaces its former self.
type JoinClaims struct {
	Agent *actor.PID
	Claim persistence.ClaimParams
}

// AskClaims tells the committer which of an agent's runs ended since it last said (their
// slots are free), and, with Want, asks for a claim for the agent's free slots in the next
// batch.
type AskClaims struct {
	Agent *actor.PID
	Want  bool
	Ended []RunKey
}

// RunKey names a run: its job and the attempt its claim gave it (a job taken from an agent
// and claimed back runs twice, at two attempts).
type RunKey struct {
	ID      string
	Attempt int64
}

// LeaveClaims tells the committer that an agent claims no more. A draining agent is answered
// with ClaimsLeft; a stopped one (Stopped) is forgotten. A claim on its way is delivered all
// the same.
type LeaveClaims struct {
	Agent   *actor.PID
	Stopped bool
}

// ClaimsLeft answers LeaveClaims: the committer starts no more claims for the agent, and
// every one it started was announced before this (ClaimStarted).
type ClaimsLeft struct{}

// ClaimStarted tells an agent that the committer started a claim for it, before the claim
// reaches the store; its outcome follows as Claimed, with the same number. The agent keeps
// the numbers of the claims on their way, to know which may still bring it a job the store
// already lists under it. Two claims of an agent may be on their way at once, and answered
// in either order.
type ClaimStarted struct {
	// Claim numbers the claim: unique among a committer's claims, for every agent.
	Claim uint64
}
