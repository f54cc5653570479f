package persistence

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Clock tells the store's time. The Redis store uses the Redis server's TIME by default, so
// that every process judges pings and deadlines by one clock; tests inject a fake one.
type Clock interface {
	Now() time.Time
}

// Store keeps all of zasync's durable state. Every method takes a context with a deadline
// first; every read-check-write is one optimistic transaction. Errors are this package's
// sentinels and typed errors (wrapped with %w); no backend error escapes. A method that fails
// with ErrInvalid, ErrNotFound or ErrBadStatus has changed nothing.
//
// The interface is in parts, one per subject: Jobs, Queues, Runs, Callbacks, Dispatchers,
// Quotas, History and Monitor.
type Store interface {
	Jobs
	Queues
	Runs
	Callbacks
	Dispatchers
	Quotas
	History
	Monitor
	// Now returns the store's time (Redis TIME, or the injected clock).
	Now(ctx context.Context) (time.Time, error)
	// Close releases what the store holds. It does not close a client it was given.
	Close() error
}

// Jobs reads and changes job records that are not running.
type Jobs interface {
	// Create stores a NEW job in queue, in no queue order (a composite's sub-job, or a job
	// to put later with Enqueue).
	Create(ctx context.Context, queue string, spec JobSpec) (*Job, error)
	// Get reads a job. ErrNotFound if it does not exist (or has expired from history).
	Get(ctx context.Context, ref Ref) (*Job, error)
	// GetMany reads several jobs of one queue in one round trip; missing ones are nil.
	GetMany(ctx context.Context, queue string, ids []string) ([]*Job, error)
	// Update changes a job that is not running, following the status rules of Change.
	Update(ctx context.Context, ref Ref, c Change) (*Job, error)
	// Fail completes a NEW, PENDING or ASSIGNED job with failure f (taking it out of its
	// queue or agent) and leaves it in CALLBACKS for its callbacks to run. On a job already in
	// CALLBACKS it changes nothing and returns the job, so that its callbacks can be resumed.
	// ACTIVE and COMPLETED jobs give *BadStatusError. With a non-nil fence the write is
	// fenced (ErrReassigned when it no longer holds).
	Fail(ctx context.Context, ref Ref, fence *Fence, f *Failure) (*Job, error)
	// Cancel fails a job that has not started (NEW, PENDING or ASSIGNED) with f, as Fail
	// does, and in the same transaction queues a resumeCallbacks system job for it, so that
	// its callbacks run and it completes even if the caller stops right after. A job already
	// in CALLBACKS is returned unchanged; ACTIVE and COMPLETED jobs give *BadStatusError.
	Cancel(ctx context.Context, ref Ref, f *Failure) (*Job, error)
	// Revoke cancels a job whose outcome is not stored yet (NEW, PENDING, ASSIGNED or
	// ACTIVE) with failure f, which should be of kind ErrCancelled. In one transaction it is
	// taken out of its queue, agent and quotas, stored failed in CALLBACKS with no owner, and
	// a resumeCallbacks job is queued for it, so that its callbacks run and it completes. A run
	// still holding it is fenced out: each of its later writes gets ErrReassigned, so a commit
	// and a revoke racing have one winner. The same transaction publishes a RevokeNotice on
	// the queue's wake-ups, for the process running the job to cancel its handler. A job whose
	// outcome is stored (CALLBACKS, COMPLETED) gives *BadStatusError and is left unchanged.
	Revoke(ctx context.Context, ref Ref, f *Failure) (*Job, error)
	// Rerun puts a completed job whose outcome is a failure (a cancel's too) back in its
	// queue to run again, due now, as a new attempt of the same job: in one transaction its
	// last run is appended to its Attempts, its outcome, times, owner and retry counters are
	// cleared, it leaves its completer's history and loses its expiry (and its annotations
	// theirs), and each of its completed callbacks goes back to NEW, to run again when it
	// completes. Each of parts (jobs of its queue: a composite's postprocess and the sub-jobs
	// to run again) is reset the same way in the same transaction, to NEW, and takes the
	// part's Call when it is given; a part must be COMPLETED or NEW. A job in another status,
	// or a part, gives *BadStatusError; a job that succeeded, or a composite given no parts,
	// gives ErrBadStatus too.
	Rerun(ctx context.Context, ref Ref, parts []RerunPart) (*Job, error)
	// Delete removes jobs of one queue in one transaction, all or none: their records and
	// annotations, their queue entries, the quota slots a put-back job keeps, and their
	// entries in completed histories. Each must be NEW, PENDING or COMPLETED (else a
	// *BadStatusError: it may run). ErrNotFound when ids[0] does not exist; the others, the
	// parts of the first that the caller read, are skipped when they have expired meanwhile.
	// ErrConflict when one has a callback or sub-job that is not among ids (the caller
	// reads them again).
	Delete(ctx context.Context, queue string, ids []string) ([]*Job, error)
	// SetAnnotation writes a live annotation of a job, visible at once to every reader, even
	// while the job runs; annotations are kept apart from the job's state, so they never
	// conflict with its transitions. value must be JSON.
	SetAnnotation(ctx context.Context, ref Ref, name string, value json.RawMessage) error
	// SetRunAnnotation writes a live annotation as SetAnnotation does, fenced to run f: only
	// while that run holds the job (ErrReassigned once the job was taken from it, a
	// *BadStatusError once it is not ASSIGNED, ACTIVE or CALLBACKS), so that a run presumed
	// dead cannot overwrite what the job's new run reports.
	SetRunAnnotation(ctx context.Context, f Fence, name string, value json.RawMessage) error
	// Annotation reads one live annotation; ok is false when it is not set.
	Annotation(ctx context.Context, ref Ref, name string) (value json.RawMessage, ok bool, err error)
	// Annotations reads all live annotations of a job.
	Annotations(ctx context.Context, ref Ref) (map[string]json.RawMessage, error)
	// AddChild creates a NEW job in parent's queue, its Composite set to parent, and appends
	// it to parent's Children, in one transaction that fails with ErrConflict if the parent
	// keeps changing meanwhile (the caller retries). It is how a composite gets its sub-jobs,
	// before it starts or while it runs; the child is neither queued nor a callback (its
	// Parent is empty). The parent's status is returned with it. A parent whose children are
	// sealed, or whose outcome is stored (CALLBACKS, COMPLETED), takes no more: *BadStatusError,
	// and nothing is written. A child given no priority takes its parent's.
	AddChild(ctx context.Context, parent Ref, spec JobSpec) (child *Job, parentStatus Status, err error)
	// SealChildren makes parent's children final once the caller has seen all of them: in
	// one transaction, when parent has exactly n children it is marked Sealed (AddChild
	// refuses it from then on) and ok is true; when it has another number (one was added
	// since the caller read them) nothing is written and ok is false, for the caller to read
	// them again. Sealing a sealed parent with its number of children is a no-op that
	// reports true, so a step re-run after a crash goes on.
	SealChildren(ctx context.Context, parent Ref, n int) (ok bool, err error)
}

// Queues puts jobs into queues, takes them out, and claims them for agents.
type Queues interface {
	// Put creates a job and puts it in queue: due jobs go to the end of the queue, scheduled
	// ones are ordered by begin_after. Every quota name must exist (ErrUnknownQuota). A
	// wake-up is published for the queue. A spec with a Unique key whose key a job of the
	// queue holds makes nothing: the holder is returned, its Duplicate set (and Debounced,
	// when the put gave it its call and begin_after); the check and the take are atomic, for
	// PutMany and PutEach too.
	Put(ctx context.Context, queue string, spec JobSpec) (*Job, error)
	// PutMany puts several jobs in one round trip, all or none.
	PutMany(ctx context.Context, queue string, specs []JobSpec) ([]*Job, error)
	// PutEach puts groups of jobs that have nothing to do with each other in one round trip:
	// each group is put as PutMany would put it, all or none, and is checked on its own, so
	// that one group's bad spec or unknown quota fails that group alone. errs[i] is what
	// PutMany would have returned for groups[i] (nothing of that group is written), jobs[i]
	// the group's jobs when errs[i] is nil. err is for the whole call (a bad queue name, the
	// store unavailable); then jobs and errs are nil, and, as for any write whose reply is
	// lost, the groups may or may not have been put. The jobs of all groups are ordered in
	// the queue as if put one group after the other.
	PutEach(ctx context.Context, queue string, groups [][]JobSpec) (jobs [][]*Job, errs []error, err error)
	// Enqueue puts an existing NEW job in its queue (a pulled job, a sub-job). Other statuses
	// give *BadStatusError ("cannot add already-assigned job").
	Enqueue(ctx context.Context, ref Ref) (*Job, error)
	// EnqueueWith applies c to a NEW job and puts it in its queue, in one transaction: of
	// several racing callers exactly one succeeds, the others get *BadStatusError and change
	// nothing (a composite's postprocess is queued once, with its arguments).
	EnqueueWith(ctx context.Context, ref Ref, c Change) (*Job, error)
	// Pull takes the job at index (claim order; negative counts from the end) out of the
	// queue, back to NEW. ErrNotInQueue if there is no such index.
	Pull(ctx context.Context, queue string, index int) (*Job, error)
	// Remove takes a pending job out of its queue, back to NEW. ErrNotInQueue if it is not
	// waiting in the queue.
	Remove(ctx context.Context, ref Ref) (*Job, error)
	// Pending lists pending job ids in claim order, from offset, at most limit of them: the
	// put-back jobs, then the others by begin_after. It reads only that window.
	Pending(ctx context.Context, queue string, offset, limit int) ([]string, error)
	// SetPaused pauses a queue (paused true) or resumes it. While a queue is paused no
	// dispatcher claims from it (Claim takes nothing), and puts still succeed. changed is
	// false when the queue already was as asked. Resuming publishes a wake-up.
	SetPaused(ctx context.Context, queue string, paused bool) (changed bool, err error)
	// Paused reports whether a queue is paused.
	Paused(ctx context.Context, queue string) (bool, error)
	// Claim takes up to the agent's free slots from the queue in one transaction (see
	// ClaimParams); none and no error when the queue is paused, or nothing due passes the
	// filter and the quotas. A job
	// past its begin_by deadline is handed out as a HandlerFail system job whose Target is the
	// expired job. ErrFull when the agent has no free slot (nothing is claimed).
	// ErrNotActivated when the dispatcher's record is not activated or is dead: a dispatcher
	// presumed dead must ping before it claims again.
	Claim(ctx context.Context, p ClaimParams) ([]*Job, error)
	// Subscribe returns a subscription to the wake-ups Put publishes for queues: it delivers
	// queue names, and a RevokeNotice for each job of the queues that Revoke took from a run.
	Subscribe(ctx context.Context, queues ...string) (Subscription, error)
	// Completions returns a subscription to the ids of a queue's jobs as they complete, so
	// that waiting for a result needs no polling. Ids may be lost when the reader falls behind
	// (a waiter re-reads its job from time to time), never invented.
	Completions(ctx context.Context, queue string) (Subscription, error)
}

// ClaimParams says who claims and how much.
type ClaimParams struct {
	Queue      string
	Dispatcher string // UUID; its record in Queue must be activated and alive
	Agent      string
	// Size is the agent's size: it holds at most Size jobs, parked ones not counted.
	Size int
	// Max, if positive, claims at most this many even when more slots are free.
	Max int
	// Filter, if not nil, accepts the jobs this agent may run; it must be pure. It sees the
	// job itself, also for an expired job that would be handed out as a HandlerFail job.
	Filter func(*Job) bool
	// ScanLimit bounds how many jobs from the head of the queue one claim examines when a
	// filter or quotas reject some (0: DefaultScanLimit). A claim never scans a whole queue.
	ScanLimit int
	// Start, for an agent that runs every job as soon as it has it, hands the jobs out ACTIVE,
	// started in the claim's own transaction, instead of ASSIGNED: a transaction fewer per
	// batch.
	Start bool
}

// DefaultScanLimit is how many jobs one claim examines at most when ClaimParams.ScanLimit is 0.
const DefaultScanLimit = 200

// Subscription delivers notifications: queue names for wake-ups, job ids for completions.
type Subscription interface {
	// C delivers the notifications; it is closed by Close. They may be coalesced or lost
	// (they only shorten a wait that has a fallback), never invented.
	C() <-chan string
	// Close ends the subscription.
	Close() error
}

// RerunPart is a part of a job that Store.Rerun resets with it: its id and, if not nil, the
// call it runs next (a composite's postprocess, given back its own arguments).
type RerunPart struct {
	ID   string
	Call *Call
}

// revokePrefix starts a RevokeNotice: a byte no queue name has (see ValidateName).
const revokePrefix = "!revoke "

// RevokeNotice is what a Subscribe subscription delivers when Revoke took job ref from a run:
// the process running it cancels its handler.
func RevokeNotice(ref Ref) string { return revokePrefix + ref.Queue + " " + ref.ID }

// ParseRevokeNotice returns the job a RevokeNotice names; ok is false for a wake-up.
func ParseRevokeNotice(v string) (ref Ref, ok bool) {
	rest, ok := strings.CutPrefix(v, revokePrefix)
	if !ok {
		return Ref{}, false
	}
	q, id, ok := strings.Cut(rest, " ")
	return Ref{Queue: q, ID: id}, ok && q != "" && id != ""
}

// Runs are the fenced transitions of a claimed or adopted job. Each checks, in the same
// transaction as its write, that the job still has fence's owner and attempt: when it does
// not, the job was taken from this run, ErrReassigned is returned and nothing is written.
// A right owner in a wrong status gives *BadStatusError.
type Runs interface {
	// Start moves a job from ASSIGNED (or NEW, for an adopted callback) to ACTIVE and stamps
	// its start.
	Start(ctx context.Context, f Fence) (*Job, error)
	// Commit stores the outcome of an ACTIVE job and moves it to CALLBACKS (or COMPLETED, see
	// Outcome.Complete), releasing its quota slots and its parking.
	Commit(ctx context.Context, f Fence, o Outcome) (*Job, error)
	// Complete moves a job from CALLBACKS to COMPLETED once its callbacks are done: it leaves
	// its holder's slots for the holder's completed history. seen is how many callbacks the
	// caller ran: if more were added meanwhile, ErrMoreCallbacks is returned with the job, and
	// the caller runs the new ones first.
	Complete(ctx context.Context, f Fence, seen int) (*Job, error)
	// Reschedule puts an ASSIGNED or ACTIVE job back in its queue, PENDING, begin_after at:
	// at or before now it goes to the front of the queue and keeps its quota slots (an
	// interrupted job retried now); later, it is scheduled and releases them. counts, if not
	// nil, replaces the retry counters.
	Reschedule(ctx context.Context, f Fence, at time.Time, counts RetryCounts) (*Job, error)
	// StartMany starts several runs of one queue in one transaction: two round trips for the
	// whole batch. Each run is checked on its own: errs[i] is what Start would have returned
	// for fences[i], and the other runs start regardless. err is for the whole batch (invalid
	// input, store unavailable). A batch that keeps losing its race falls back to one
	// transaction per run.
	StartMany(ctx context.Context, fences []Fence) (jobs []*Job, errs []error, err error)
	// CommitMany commits several runs of one queue in one transaction, as StartMany starts
	// them: errs[i] is what Commit would have returned for commits[i].
	CommitMany(ctx context.Context, commits []Commit) (jobs []*Job, errs []error, err error)
	// SaveRetry stores the retry counters of a running job.
	SaveRetry(ctx context.Context, f Fence, counts RetryCounts) error
	// Wait records that an ACTIVE job waits for inner's result. Parked, it stops counting
	// against its holder's size but stays held, so it is interrupted and recovered with it.
	Wait(ctx context.Context, f Fence, inner string, park bool) (*Job, error)
	// Adopt gives target to the run by holds: target must be in one of statuses; its owner
	// becomes by's owner and its attempt is incremented, which fences out any earlier run.
	// Used for a parent's callbacks and by system jobs for the job they act on. by must be
	// ACTIVE or in CALLBACKS.
	Adopt(ctx context.Context, by Fence, target string, statuses ...Status) (*Job, error)
	// AdoptWaiting adopts target as Adopt does, only if it is ACTIVE and waits for inner:
	// the inner job's completion resumes exactly the run that waits for it, never a later run
	// of the same job that has not started waiting yet (*BadStatusError, nothing changed).
	AdoptWaiting(ctx context.Context, by Fence, target, inner string) (*Job, error)
}

// Commit is one run's outcome, for CommitMany.
type Commit struct {
	Fence   Fence
	Outcome Outcome
	// Known, if set, is the job as its run has it: from its claim or start, with the run's
	// own writes (retry counters it saved, say). A store may build the committed job from it
	// instead of reading the record back; what others may change while the job runs (its
	// status, owner, attempt, callbacks) is still read and checked. It is ignored unless it
	// matches the fence.
	Known *Job
}

// Callbacks attaches callbacks to jobs.
type Callbacks interface {
	// AddCallback creates a NEW callback job and appends it to parent's callbacks, in one
	// transaction that fails with ErrConflict if the parent changes meanwhile (the
	// caller retries). The parent's status is returned with it: when it is COMPLETED the
	// caller runs the callback at once.
	AddCallback(ctx context.Context, parent Ref, spec JobSpec) (cb *Job, parentStatus Status, err error)
}

// Dispatchers keeps dispatcher records per queue, their pings and their agents.
type Dispatchers interface {
	// Register records a dispatcher UUID in a queue. ErrAlreadyRegistered if it is there.
	Register(ctx context.Context, queue, uuid string, c DispatcherConfig) error
	// Unregister removes a record. ErrActivated while activated, ErrNotFound if absent.
	Unregister(ctx context.Context, queue, uuid string) error
	// Configure replaces a record's intervals and agents.
	Configure(ctx context.Context, queue, uuid string, c DispatcherConfig) error
	// Activate activates a record after cleaning its agents (a fail-safe against leftovers).
	// ErrAlreadyActivated when it is activated and not dead (another process?); a record
	// activated but dead is cleaned and taken over.
	Activate(ctx context.Context, queue, uuid string) (*CleanReport, error)
	// Deactivate marks a record not activated and cleans its agents. Safe to race: a record
	// already deactivated is only cleaned of what is left.
	Deactivate(ctx context.Context, queue, uuid string) (*CleanReport, error)
	// Reactivate activates a record without cleaning it: the dispatcher was presumed dead but
	// lives, and its jobs that were not reassigned are still its own.
	Reactivate(ctx context.Context, queue, uuid string) error
	// Ping rewrites the ping when PingInterval has passed; a record found not activated is
	// reactivated (see PingResult).
	Ping(ctx context.Context, queue, uuid string) (PingResult, error)
	// Dispatcher reads one record, Dead computed at the store's now.
	Dispatcher(ctx context.Context, queue, uuid string) (*DispatcherRecord, error)
	// Dispatchers reads every record of a queue, ordered by UUID.
	Dispatchers(ctx context.Context, queue string) ([]*DispatcherRecord, error)
	// DispatcherEvents reads the newest limit events of the queue's dispatchers (at most
	// MaxDispatcherEvents are kept), newest first: activations, stops, deaths found by a
	// sibling and returns. Activate, Deactivate, Bury, Reactivate and a Ping that
	// reactivates each add one.
	DispatcherEvents(ctx context.Context, queue string, limit int) ([]DispatcherEvent, error)
	// NextSibling returns the next activated record after uuid in UUID order, wrapping
	// around; ErrNotFound when there is none but uuid itself.
	NextSibling(ctx context.Context, queue, uuid string) (*DispatcherRecord, error)
	// AgentJobs lists the ids held by an agent, in claim order.
	AgentJobs(ctx context.Context, queue string, agent Owner) ([]string, error)
	// AgentLoads counts the jobs each of agents holds in queue, in one round trip: a listing
	// of many dispatchers needs the counts, not the ids.
	AgentLoads(ctx context.Context, queue string, agents []Owner) ([]int, error)
	// HeldBy lists every agent that holds jobs in a queue, with or without a record, so that
	// a sweep can find jobs whose dispatcher is gone.
	HeldBy(ctx context.Context, queue string) ([]Owner, error)
	// Bury deactivates a dead dispatcher's record and cleans its agents, as a sibling does
	// when it finds the dispatcher dead: it checks in the deactivating transaction that the
	// record is still dead. ok is false, and nothing is changed, when the record is alive (it
	// pinged since the caller read it). A record already deactivated is cleaned of whatever
	// its agents still hold (a cleaner that stopped half-way). Safe to race. Should the
	// dispatcher ping while its agents are being cleaned, the cleaning stops with
	// ErrActivated: the jobs not cleaned yet are its own again.
	Bury(ctx context.Context, queue, uuid string) (report *CleanReport, ok bool, err error)
	// CleanAgent cleans one agent's jobs as deactivation does: one transaction per job, safe
	// when two cleaners race. It never takes a job from a dispatcher whose record is activated
	// and alive (checked in each job's transaction): ErrActivated then, with what was cleaned
	// before. Without a record, or with one deactivated or dead, it cleans everything.
	CleanAgent(ctx context.Context, queue string, agent Owner) (*CleanReport, error)
	// CleanJobs cleans the jobs fences name out of the agents that hold them, as CleanAgent
	// does (one transaction per job), for a live dispatcher recovering the jobs one of its own
	// agents holds in the store but does not run (a claim whose reply was lost, a run that
	// ended on a store error). Each fence's Owner is the agent. A job is cleaned only while it
	// is still the run its fence names (same owner and attempt), held by that agent and not
	// parked; any other job is left alone, and so is a job the agent no longer holds. The
	// dispatcher's state is not checked: it is the caller's own.
	CleanJobs(ctx context.Context, fences []Fence) (*CleanReport, error)
	// ForgetStopped removes what dispatchers that stopped long ago left in a queue, so that
	// processes starting with a new UUID each time do not grow the store without bound. A
	// dispatcher is forgotten when its record is deactivated (or gone), its last sign of life
	// (its last ping, and its agents' last completions) is older than the store's retention,
	// and none of its agents holds a job: its record, its ping, its agents' names and their
	// completed histories (whose jobs have expired) are removed, atomically against its
	// coming back. It returns the UUIDs forgotten. A store that keeps completed jobs forever
	// forgets nothing.
	ForgetStopped(ctx context.Context, queue string) ([]string, error)
}

// Quotas are strict per-queue limits on how many jobs naming a quota run at once.
type Quotas interface {
	// CreateQuota defines a quota of size (at least 1). ErrInvalid if it exists.
	CreateQuota(ctx context.Context, queue, name string, size int) error
	// RemoveQuota removes a quota; jobs that still name it ignore the name.
	RemoveQuota(ctx context.Context, queue, name string) error
	// ResizeQuota changes a quota's size; running jobs are not stopped by a shrink.
	ResizeQuota(ctx context.Context, queue, name string, size int) error
	// Quota reads a quota and its holders.
	Quota(ctx context.Context, queue, name string) (*QuotaInfo, error)
	// QuotaNames lists a queue's quotas.
	QuotaNames(ctx context.Context, queue string) ([]string, error)
}

// History reads the completed jobs of agents, kept for the store's retention period.
type History interface {
	// Completed lists the ids an agent completed in [since, before) (zero: unbounded), newest
	// first, at most limit (0: 100).
	Completed(ctx context.Context, queue string, agent Owner, since, before time.Time, limit int) ([]string, error)
	// TrimCompleted removes, from the completed history of every agent that ever claimed in
	// a queue (whatever became of its dispatcher), the entries older than the store's
	// retention at the store's time: the jobs whose records have expired. A completion trims
	// its own agent's history; this trims the agents that complete nothing any more. It
	// returns how many entries it removed. A store that keeps completed jobs forever removes
	// nothing.
	TrimCompleted(ctx context.Context, queue string) (int64, error)
}

// Monitor answers monitoring queries without scanning whole queues.
type Monitor interface {
	// Queues lists the queues this store has seen used, by any process.
	Queues(ctx context.Context) ([]string, error)
	// Stats counts a queue's jobs by where they wait.
	Stats(ctx context.Context, queue string) (QueueStats, error)
	// Agents lists every agent that has claimed in a queue, whether it holds jobs now or not
	// and whether its dispatcher still has a record, ordered by dispatcher then name: the
	// agents whose completed histories can be read.
	Agents(ctx context.Context, queue string) ([]Owner, error)
	// CompletedPage lists an agent's completed history in [since, before) (zero: unbounded),
	// newest first, with the time each job completed, skipping the first offset entries and
	// returning at most limit (1 to MaxPage). A reader pages through a long history without
	// rereading it: it asks next for before = the last entry's time plus a microsecond and
	// offset = how many entries it has seen at that time, which costs O(log n) per page and
	// skips no entry that shares its time with another.
	CompletedPage(ctx context.Context, queue string, agent Owner, since, before time.Time, offset, limit int) ([]Completion, error)
	// CountCompleted counts an agent's completed history in [since, before) (zero: unbounded)
	// in O(log n).
	CountCompleted(ctx context.Context, queue string, agent Owner, since, before time.Time) (int64, error)
	// FailedPage lists the jobs of a queue that completed with a failure in [since, before)
	// (zero: unbounded), newest first, with when each completed, as CompletedPage lists a
	// history (and pages the same way): an index kept by the completions, so that failed
	// jobs are found without reading the others. A job retried or deleted leaves it.
	FailedPage(ctx context.Context, queue string, since, before time.Time, offset, limit int) ([]Completion, error)
	// CountFailed counts that index in [since, before) in O(log n).
	CountFailed(ctx context.Context, queue string, since, before time.Time) (int64, error)
	// Throughput counts the jobs completed in a queue, by every agent that ever claimed in it,
	// in n windows of step from since, and those of them that failed (from the index of
	// failures): completed[i] and failed[i] are of the window [since+i·step, since+(i+1)·step).
	// It costs O(n · agents · log n), in one round trip, whatever the histories' sizes.
	Throughput(ctx context.Context, queue string, since time.Time, step time.Duration, n int) (completed, failed []int64, err error)
}

// MaxThroughputWindows is the most windows one Throughput call counts.
const MaxThroughputWindows = 1440

// MaxPage is the most entries one CompletedPage call returns.
const MaxPage = 1000

// Completion is an entry of an agent's completed history: a job id and when it completed
// (to the microsecond).
type Completion struct {
	ID string
	At time.Time
}
