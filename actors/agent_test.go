package actors

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// probe asks a test's parent actor to say it has handled every message sent to it before.
type probe struct{ done chan struct{} }

// A job the store lists under an agent with no run is not taken for an orphan while a claim
// started before the list was read is on its way, even when a claim started after it comes
// back first: two claims of an agent may be answered in either order.
func TestAgentWaitsForEveryClaimStartedBeforeTheList(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exec := testExecutor(t, ctx, Options{Store: newFakeStore(), Logger: slog.New(slog.DiscardHandler)})
	root := exec.commits.root
	historian := root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	orphaned := make(chan *messages.Orphaned, 4)
	agents := make(chan *actor.PID, 1)
	parent := root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			agents <- c.Spawn(agentProps(exec, historian, time.Now, "q", "d1", AgentSpec{Name: "main", Size: 4}))
		case *messages.Orphaned:
			orphaned <- m
		case *probe:
			close(m.done)
		}
	}))
	defer root.Stop(parent)
	agent := receive(t, agents, "the agent was not spawned")
	// settled waits until the agent has handled what was sent to it, and its parent too.
	settled := func() {
		t.Helper()
		if _, err := root.RequestFuture(agent, &messages.ListRuns{}, time.Minute).Result(); err != nil {
			t.Fatal(err)
		}
		p := &probe{done: make(chan struct{})}
		root.Send(parent, p)
		receive(t, p.done, "the parent never handled its probe")
	}
	job := persistence.Fence{Ref: persistence.Ref{Queue: "q", ID: "p"}, Owner: persistence.Owner{Dispatcher: "d1", Agent: "main"}, Attempt: 1}

	root.Send(agent, &messages.ClaimStarted{Claim: 1})
	root.Send(agent, &messages.Reconcile{Jobs: []persistence.Fence{job}}) // read while claim 1 is out
	root.Send(agent, &messages.ClaimStarted{Claim: 2})
	root.Send(agent, &messages.Claimed{Claim: 2}) // the later claim is back first
	settled()
	select {
	case m := <-orphaned:
		t.Fatalf("reported %v as orphaned while the claim that may bring it is on its way", m.Jobs)
	default:
	}
	root.Send(agent, &messages.Claimed{Claim: 1}) // it did not bring the job: an orphan
	settled()
	select {
	case m := <-orphaned:
		if len(m.Jobs) != 1 || m.Jobs[0] != job {
			t.Fatalf("orphaned %v, want %v", m.Jobs, job)
		}
	default:
		t.Fatal("the job was not reported orphaned once every claim started before the list was back")
	}
}
