package runtime

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// ReminderQueue returns the name of the queue that holds target's reminders: "zasync.remind."
// and the target. It is zasync's: Config.Queues may not list it (a process serves it when it
// hosts the target; see HostReminders).
func ReminderQueue(target string) string { return actors.ReminderQueue(target) }

// Remind sets a durable reminder: payload (anything that marshals to JSON, or a
// json.RawMessage as it is) is delivered to target's actor at time at, or at once if at has
// passed, as a *messages.Reminder. It is held in Redis as a job scheduled in
// ReminderQueue(target) (the returned Job: Wait on it to learn that it was delivered), so it
// outlives the process that set it; any process may set one. It is delivered by a process
// that hosts target (HostReminders), whichever claims it first, and committed once its actor
// has acknowledged it.
//
// Delivery is at least once, under the reminder's retry policy, RetryCommonForever: a
// process that dies or stops between the delivery and its commit leaves the reminder to be
// delivered again (its attempt one higher), and so does an actor that stops before it
// acknowledges (the delivery is tried again, with a growing pause of 5 to 60 seconds, to
// whichever actor hosts the target then). Every delivery of one reminder carries its ID:
// receivers drop the ones they have handled.
//
// Targets are few, long-lived names (one queue each, which every process hosting the target
// serves, pings and polls), not an id per entity: put the entity in the payload. A target
// name follows the rules of queue names, at most 86 characters. A bad target, time or
// payload gives ErrInvalid and writes nothing.
func (rt *Runtime) Remind(ctx context.Context, target string, at time.Time, payload any) (*Job, error) {
	if err := actors.ValidateTarget(target); err != nil {
		return nil, fmt.Errorf("remind: %w", err)
	}
	if at.IsZero() {
		return nil, invalidf("remind %q: no due time", target)
	}
	if err := persistence.ValidateTime("remind "+target+": due time", at); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(payload) // a json.RawMessage is checked, and kept as it is
	if err != nil {
		return nil, invalidf("remind %q: the payload: %w", target, err)
	}
	call := actors.ReminderCall(target, at, raw) // checked by the store as it puts it
	queue := ReminderQueue(target)
	rec, err := rt.store.Put(ctx, queue, persistence.JobSpec{
		Call: call, BeginAfter: at, RetryPolicy: persistence.RetryCommonForeverName, Assigner: rt.assigner(),
	})
	if err != nil {
		return nil, fmt.Errorf("remind %q: %w", target, err)
	}
	rt.metrics.puts(queue, 1)
	return rt.job(rec.Ref), nil
}

// HostReminders makes this process deliver target's reminders to pid, an actor of the
// runtime's actor system (Config.ActorSystem, or the one Runtime.ActorSystem lends), which
// answers each *messages.Reminder with a *messages.ReminderAck once it has handled it. A
// dispatcher started after it serves ReminderQueue(target), with one agent of
// DefaultAgentSize slots, next to Config.Queues: so only processes that host a target ever
// claim its reminders, and a process that serves other queues never consumes them.
//
// A target new to this process must be hosted before Start (ErrStarted after); a target
// hosted already may be given another pid at any time, which the next delivery uses. A nil
// pid, a bad target or a pid that no actor of the runtime's actor system has give
// ErrInvalid. After Close it gives ErrClosed.
func (rt *Runtime) HostReminders(target string, pid *actor.PID) error {
	if err := actors.ValidateTarget(target); err != nil {
		return fmt.Errorf("host reminders: %w", err)
	}
	if pid == nil {
		return invalidf("host reminders of %q: nil pid", target)
	}
	root, err := rt.actorRoot()
	if err != nil {
		return err
	}
	sys := root.System()
	if pid.Address == sys.Address() {
		if _, ok := sys.ProcessRegistry.GetLocal(pid.Id); !ok {
			return invalidf("host reminders of %q: no actor %s runs in the runtime's actor system (Config.ActorSystem)", target, pid.Id)
		}
	}
	// Under nodeMu, so that Start, which reads the targets for its queues, sees this one or
	// refuses it.
	rt.nodeMu.Lock()
	defer rt.nodeMu.Unlock()
	rt.remindMu.Lock()
	defer rt.remindMu.Unlock()
	if _, hosted := rt.reminders[target]; !hosted && rt.node != nil {
		return fmt.Errorf("host reminders of %q: %w: the dispatcher serves the queues it started with; host targets before Start", target, ErrStarted)
	}
	if rt.reminders == nil {
		rt.reminders = map[string]*actor.PID{}
	}
	rt.reminders[target] = pid
	return nil
}

// reminderQueues are the queues of the targets this process hosts, in name order, each with
// one agent.
func (rt *Runtime) reminderQueues() []actors.QueueSpec {
	rt.remindMu.RLock()
	defer rt.remindMu.RUnlock()
	queues := make([]actors.QueueSpec, 0, len(rt.reminders))
	for target := range rt.reminders {
		queues = append(queues, actors.QueueSpec{Name: ReminderQueue(target),
			Agents: []actors.AgentSpec{{Name: DefaultAgent, Size: DefaultAgentSize}}})
	}
	slices.SortFunc(queues, func(a, b actors.QueueSpec) int { return cmp.Compare(a.Name, b.Name) })
	return queues
}

// deliverReminder is the handler of a reminder's job (actors.HandlerRemind): it delivers the
// reminder to the actor hosting its target here and waits for the acknowledgement, then the
// run commits it. A target this process does not host (its queue served without
// HostReminders, which Config forbids) fails the reminder, saying so.
func (rt *Runtime) deliverReminder(ctx context.Context, call *persistence.Call) (any, error) {
	m, err := actors.ReminderOf(call)
	if err != nil {
		return nil, err
	}
	if r, ok := actors.RunningFrom(ctx); ok {
		m.ID, m.Attempt = r.Job.ID, r.Job.Attempt
	}
	rt.remindMu.RLock()
	pid := rt.reminders[m.Target]
	rt.remindMu.RUnlock()
	if pid == nil {
		return nil, invalidf("reminder %s: its target %q is not hosted in this process", m.ID, m.Target)
	}
	root, err := rt.actorRoot()
	if err != nil {
		return nil, err
	}
	return nil, actors.DeliverReminder(ctx, root.System(), pid, m)
}
