package actors

import (
	"github.com/asynkron/protoactor-go/actor"
)

// replyAddress is where an actor answers a goroutine that waits for it (a run of a job
// handled by an actor, a reminder's delivery): a process of the actor system with a PID of
// its own, as protoactor's futures are, but with no timeout, so that the goroutine waits as
// long as its run's context lets it. It is not an actor: messages go straight to a channel.
//
// The channel is buffered and never blocks a sender: a message that finds it full is
// dropped. The waiting goroutine ends on the first message that decides its wait, and at
// most a handful arrive before that (a host's answer, then the actor's reply or the news of
// its end), so what is dropped is only ever noise after the decision.
type replyAddress struct {
	sys *actor.ActorSystem
	pid *actor.PID
	c   chan any
}

// replyBuffer is how many messages a reply address holds before it drops.
const replyBuffer = 8

// newReplyAddress registers a reply address in sys; close removes it.
func newReplyAddress(sys *actor.ActorSystem) *replyAddress {
	r := &replyAddress{sys: sys, c: make(chan any, replyBuffer)}
	for {
		// Ids come from the registry's counter, which never repeats; a clash would only be
		// with a process named by hand, and the next id does not clash.
		pid, ok := sys.ProcessRegistry.Add(replyProcess{c: r.c}, "zasync-reply"+sys.ProcessRegistry.NextId())
		if ok {
			r.pid = pid
			return r
		}
	}
}

// close removes the address: what is sent to it afterwards goes to the dead letters.
func (r *replyAddress) close() { r.sys.ProcessRegistry.Remove(r.pid) }

// watch asks pid to tell this address when it stops (an *actor.Terminated arrives), at
// once if it is not running; unwatch undoes it, so that a long-lived actor does not keep a
// watcher for every delivery it ever took.
func (r *replyAddress) watch(pid *actor.PID) {
	p, _ := r.sys.ProcessRegistry.Get(pid)
	p.SendSystemMessage(pid, &actor.Watch{Watcher: r.pid})
}

func (r *replyAddress) unwatch(pid *actor.PID) {
	p, _ := r.sys.ProcessRegistry.Get(pid)
	p.SendSystemMessage(pid, &actor.Unwatch{Watcher: r.pid})
}

// replyProcess is the process behind a reply address.
type replyProcess struct {
	c chan any
}

func (p replyProcess) SendUserMessage(_ *actor.PID, message any) {
	p.push(actor.UnwrapEnvelopeMessage(message))
}

func (p replyProcess) SendSystemMessage(_ *actor.PID, message any) {
	if t, ok := message.(*actor.Terminated); ok {
		p.push(t)
	}
}

func (p replyProcess) Stop(*actor.PID) {}

func (p replyProcess) push(m any) {
	select {
	case p.c <- m:
	default:
	}
}
