package redisstore

import (
	"strconv"

	"github.com/zasync/zasync/persistence"
)

// The key schema. Every key of a queue starts with "<prefix>:{<queue>}:", so a queue, its jobs,
// its agents, its dispatcher records and all of a composite's sub-jobs share one Redis Cluster
// slot and every transaction stays single-slot. Queue, agent, quota names, dispatcher UUIDs
// and job ids cannot contain ':', '{' or '}' (persistence.ValidateName), so keys are
// unambiguous. Each key is written as one concatenation, one allocation: base(q) and then a
// suffix would make two, and a put or a claim builds several keys.
type keys struct {
	prefix string
}

func (k keys) base(q string) string { return k.prefix + ":{" + q + "}:" }

// job: hash, one job record (fields in codec.go). Gets a TTL of the retention period once the
// job is COMPLETED.
func (k keys) job(q, id string) string { return k.prefix + ":{" + q + "}:job:" + id }

// annotations: hash, a job's live annotations (name → JSON), apart from the record so that
// writing them does not conflict with the job's transitions (only the first one marks the
// record "annotated", for its completion to expire them too). Expires with the job.
func (k keys) annotations(q, id string) string { return k.prefix + ":{" + q + "}:job:" + id + ":ann" }

// pending: zset, the queue's pending jobs (due and scheduled) scored by claim position in
// microseconds: max(begin_after, time of put). Equal scores order by id, and ids are
// time-ordered, so due jobs are FIFO.
func (k keys) pending(q string) string { return k.prefix + ":{" + q + "}:pending" }

// pendingAt: zset, the queue's pending jobs of priority p, as pending holds those of the
// default priority (which it is for p = persistence.DefaultPriority): a queue that never
// uses priorities has no other. See priorities.go.
func (k keys) pendingAt(q string, p int) string {
	if p == persistence.DefaultPriority {
		return k.pending(q)
	}
	return k.prefix + ":{" + q + "}:pending:p" + strconv.Itoa(p)
}

// priorityField is the dispatchers hash's field that marks priority p (not the default) in
// use: its pendingAt zset may hold jobs. It is set ("1") in the transaction that queues a
// job there, and deleted by a claim that finds that zset empty. A claim reads the marks in
// the command that reads its claimer's record, as it reads pausedField: priorities cost a
// queue that does not use them no command. No UUID can be its name ('!').
func priorityField(p int) string { return "!p" + strconv.Itoa(p) }

// anyPriorityField is set with every priorityField and deleted by the claim that deletes the
// last of them: a claim reads the priorities' marks only when it is set.
const anyPriorityField = "!p"

// putback: list, interrupted jobs to retry now, oldest first; claimed before anything else.
func (k keys) putback(q string) string { return k.prefix + ":{" + q + "}:putback" }

// agent: zset, the jobs one agent holds (ASSIGNED, ACTIVE, CALLBACKS, parked), scored by
// claim time in microseconds, so cleaning and listing keep claim order.
func (k keys) agent(q string, o persistence.Owner) string {
	return k.prefix + ":{" + q + "}:agent:" + o.Dispatcher + ":" + o.Agent
}

// parked: set, the jobs of one agent that wait on inner jobs without holding a slot.
func (k keys) parked(q string, o persistence.Owner) string {
	return k.prefix + ":{" + q + "}:parked:" + o.Dispatcher + ":" + o.Agent
}

// agents: set of "uuid/agent" of every agent that has claimed in the queue, so that a sweep
// can find jobs held by agents whose dispatcher record is gone.
func (k keys) agents(q string) string { return k.prefix + ":{" + q + "}:agents" }

// dispatchers: hash, dispatcher UUID → JSON record (activation, intervals, agents). Pings are
// kept apart (ping key) so that they never churn the record. Its field pausedField, set while
// the queue is paused, is read with the claimer's record, in the same command: pausing costs
// claims nothing.
func (k keys) dispatchers(q string) string { return k.prefix + ":{" + q + "}:dispatchers" }

// pausedField is the dispatchers hash's field that marks the queue paused (its value: when,
// in microseconds). No UUID can be its name: '!' is not allowed in names. (priorityField
// names the other fields of the hash that are no dispatcher's.)
const pausedField = "!paused"

// events: list, the queue's dispatcher events (persistence.DispatcherEvent), newest first, as
// JSON; trimmed to persistence.MaxDispatcherEvents by each push.
func (k keys) events(q string) string { return k.prefix + ":{" + q + "}:events" }

// ping: string, a dispatcher's last ping in microseconds of store time.
func (k keys) ping(q, uuid string) string { return k.prefix + ":{" + q + "}:ping:" + uuid }

// quotas: hash, quota name → size.
func (k keys) quotas(q string) string { return k.prefix + ":{" + q + "}:quotas" }

// quota: set, ids of the jobs holding a slot of one quota.
func (k keys) quota(q, name string) string { return k.prefix + ":{" + q + "}:quota:" + name }

// completed: zset, the jobs one agent completed, scored by completion time in microseconds;
// entries older than the retention period (whose records have expired) are trimmed by the
// agent's commits, once a second at most, and for every agent of the queue by TrimCompleted, which each
// dispatcher's supervisor calls once per death interval: an agent that completes nothing any
// more keeps nothing past its records.
func (k keys) completed(q string, o persistence.Owner) string {
	return k.prefix + ":{" + q + "}:completed:" + o.Dispatcher + ":" + o.Agent
}

// failed: zset, the queue's completed jobs whose outcome is a failure, scored by completion
// time in microseconds, as the histories are: the index that lists failed jobs without
// reading every completed record. Trimmed of the entries older than the retention period by
// the completions that add to it and by TrimCompleted; a retry or a delete takes its job out.
func (k keys) failed(q string) string { return k.prefix + ":{" + q + "}:failed" }

// unique: string, the id of the job that holds a unique key of the queue (unique.go): set by
// the put that creates the job, released (compare and delete) by the transitions that move
// it out of the key's states, or given the key's keep period as its TTL by its completion.
// Any text follows the prefix: the hash tag comes first.
func (k keys) unique(q, key string) string { return k.prefix + ":{" + q + "}:unique:" + key }

// wake: pub/sub channel; Put publishes the queue name so that idle dispatchers claim at once.
func (k keys) wake(q string) string { return k.prefix + ":{" + q + "}:wake" }

// done: pub/sub channel; each completion publishes the job's id (a batch of completions their
// ids, separated by spaces, in one message), so that waiting for a result needs no polling.
func (k keys) done(q string) string { return k.prefix + ":{" + q + "}:done" }

// queues: set of every queue name used. Not hash-tagged: it is never part of a transaction.
func (k keys) queues() string { return k.prefix + ":queues" }
