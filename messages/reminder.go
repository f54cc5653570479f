package messages

import (
	"encoding/json"
	"time"
)

// Reminder is a durable reminder (runtime.Remind), delivered when it is due to the actor
// that hosts its target in the process whose dispatcher claimed it. Its sender is the
// delivery's reply address: answer with c.Respond(&ReminderAck{}) once it is handled, or
// send the ReminderAck there later. Only an acknowledged reminder is committed as delivered.
//
// Delivery is at least once: a process that dies (or stops) between the delivery and the
// commit leaves the reminder to be delivered again, and one whose actor stops before
// acknowledging delivers it again when the target is hosted again. Every delivery of one
// reminder carries the same ID; drop a reminder whose ID you have handled already. Attempt
// grows with each claim of the reminder, so it tells deliveries apart but does not identify
// the reminder.
type Reminder struct {
	Target  string
	ID      string
	Attempt int64
	Due     time.Time       // the time the reminder was set for (UTC)
	Payload json.RawMessage // as Remind was given it, as JSON
}

// ReminderAck acknowledges a Reminder: the delivery is then committed.
type ReminderAck struct{}
