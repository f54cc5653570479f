package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// Durable reminders (runtime.Remind): a message to a named target, delivered when it is due.
// A reminder is a job of zasync's own, HandlerRemind(target, due, payload), scheduled to begin
// at its due time in the target's own queue, ReminderQueue(target). Only processes that host
// the target serve that queue, so whichever claims it can deliver it; the delivery is the
// job's run, and the run's fenced commit records it once. Delivery is not an actor: the
// run's goroutine sends messages.Reminder to the target's actor and waits for its
// ReminderAck at a reply address (reply.go).

// HandlerRemind is the handler of a reminder job: its run delivers the reminder.
const HandlerRemind = persistence.SystemPrefix + "remind"

// ReminderQueuePrefix starts the name of each target's reminder queue.
const ReminderQueuePrefix = persistence.SystemPrefix + "remind."

// MaxTargetLen is the longest reminder target name: its queue's name must stay a valid queue
// name.
const MaxTargetLen = persistence.MaxNameLen - len(ReminderQueuePrefix)

// ValidateTarget checks a reminder target's name: the rules of queue names, at most
// MaxTargetLen characters.
func ValidateTarget(target string) error {
	if err := persistence.ValidateName("reminder target", target); err != nil {
		return err
	}
	if len(target) > MaxTargetLen {
		return fmt.Errorf("%w: reminder target name longer than %d characters", persistence.ErrInvalid, MaxTargetLen)
	}
	return nil
}

// ReminderQueue is the queue of target's reminders.
func ReminderQueue(target string) string { return ReminderQueuePrefix + target }

// ReminderCall is the call of a reminder to target, due at due, carrying payload (JSON).
func ReminderCall(target string, due time.Time, payload json.RawMessage) persistence.Call {
	t, _ := json.Marshal(target)                             // a string: cannot fail
	d, _ := json.Marshal(due.UTC().Format(time.RFC3339Nano)) // likewise
	return persistence.Call{Handler: HandlerRemind, Args: []json.RawMessage{t, d, payload}}
}

// ReminderOf reads a reminder's call back into the message its target receives (without its
// ID and attempt, which are its job's).
func ReminderOf(call *persistence.Call) (*messages.Reminder, error) {
	if call.Handler != HandlerRemind || len(call.Args) != 3 {
		return nil, fmt.Errorf("%w: %s is not a reminder's call", persistence.ErrCorrupt, call.Handler)
	}
	var (
		m   messages.Reminder
		due string
	)
	if err := json.Unmarshal(call.Args[0], &m.Target); err != nil {
		return nil, fmt.Errorf("%w: a reminder's target: %w", persistence.ErrCorrupt, err)
	}
	if err := json.Unmarshal(call.Args[1], &due); err != nil {
		return nil, fmt.Errorf("%w: a reminder's due time: %w", persistence.ErrCorrupt, err)
	}
	t, err := time.Parse(time.RFC3339Nano, due)
	if err != nil {
		return nil, fmt.Errorf("%w: a reminder's due time: %w", persistence.ErrCorrupt, err)
	}
	m.Due, m.Payload = t, call.Args[2]
	return &m, nil
}

// DeliverReminder sends m to the actor pid of sys and waits for its ReminderAck. An actor that
// is not running, or stops before it acknowledges, gives an error wrapping ErrActorGone and
// persistence.ErrUnavailable: the reminder's retry policy (RetryCommonForever) then delivers
// it again later, to the actor hosting the target then. Another answer than a ReminderAck
// is ErrInvalid, which fails the reminder. ctx cancelled (a stop) ends the wait
// with ctx's error: the reminder is delivered again after its interruption is handled.
func DeliverReminder(ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, m *messages.Reminder) error {
	reply := newReplyAddress(sys)
	defer reply.close()
	// Watched first: a watch is a system message, seen before the reminder, and a target
	// that is not running answers it at once.
	reply.watch(pid)
	defer reply.unwatch(pid)
	sys.Root.RequestWithCustomSender(pid, m, reply.pid)
	select {
	case r := <-reply.c:
		switch r.(type) {
		case *messages.ReminderAck:
			return nil
		case *actor.Terminated, *actor.DeadLetterResponse:
			return fmt.Errorf("%w: %w: the actor %s hosting reminder target %q stopped before it acknowledged reminder %s",
				ErrActorGone, persistence.ErrUnavailable, pid, m.Target, m.ID)
		}
		return fmt.Errorf("%w: the actor hosting reminder target %q answered reminder %s with a %T, not a *messages.ReminderAck",
			persistence.ErrInvalid, m.Target, m.ID, r)
	case <-ctx.Done():
		return ctx.Err()
	}
}
