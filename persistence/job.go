package persistence

import (
	"encoding/json"
	"log/slog"
	"strings"
	"time"
)

// Ref names a job: its queue and its id in that queue. Every job of a queue, its callbacks and
// a composite's sub-jobs included, lives with the queue (one Redis Cluster slot), so jobs that
// refer to each other keep only ids.
type Ref struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
}

// String renders the ref as "queue/id", the form ParseRef reads.
func (r Ref) String() string { return r.Queue + "/" + r.ID }

// In returns the ref of job id in the same queue as r.
func (r Ref) In(id string) Ref { return Ref{Queue: r.Queue, ID: id} }

// Validate checks both parts.
func (r Ref) Validate() error {
	if err := ValidateName("queue", r.Queue); err != nil {
		return err
	}
	if err := ValidateName("job id", r.ID); err != nil {
		return err
	}
	return nil
}

// ParseRef reads "queue/id".
func ParseRef(s string) (Ref, error) {
	q, id, ok := strings.Cut(s, "/")
	if !ok {
		return Ref{}, invalidf("job reference %q is not queue/id", s)
	}
	r := Ref{Queue: q, ID: id}
	return r, r.Validate()
}

// Owner is an agent: a dispatcher UUID and an agent name. The zero Owner is nobody.
type Owner struct {
	Dispatcher string `json:"dispatcher"`
	Agent      string `json:"agent"`
}

// IsZero reports whether o is nobody.
func (o Owner) IsZero() bool { return o == Owner{} }

func (o Owner) String() string {
	if o.IsZero() {
		return ""
	}
	return o.Dispatcher + "/" + o.Agent
}

// Fence is the right to write one run of a job: the owner that claimed or adopted it and the
// attempt number that claim or adoption gave it. Every write of that run checks it against
// the stored job, so a process that lost the job (it was cleaned as dead, reassigned, or
// adopted by someone else) is rejected with ErrReassigned and can never overwrite the state
// of the current owner.
type Fence struct {
	Ref
	Owner   Owner
	Attempt int64
}

// CallbackChoice makes a callback pick its call from the parent's outcome
// (AddCallbacks(success, failure)): Success when the parent succeeded, Failure when it failed.
// A nil side passes the parent's result through unchanged.
type CallbackChoice struct {
	Success *Call `json:"success,omitempty"`
	Failure *Call `json:"failure,omitempty"`
}

// Job is a job record as stored.
type Job struct {
	Ref
	Call   Call
	Status Status
	// Owner may write this run of the job: set by a claim or an adoption, cleared when the
	// job is taken away from it. Attempt counts claims and adoptions.
	Owner   Owner
	Attempt int64
	// Holder is the agent that claimed the job and counts it against its size, until the job
	// completes or is taken back. An adopted job keeps its holder.
	Holder Owner

	BeginAfter time.Time     // never claimed before this (UTC)
	BeginBy    time.Duration // 0: no deadline; else not started by BeginAfter+BeginBy → TimeoutError
	// Timeout bounds each run of the handler (0: none): the handler's context ends at it, and
	// a run past it fails with a TimeoutError, which goes through the retry policy.
	Timeout time.Duration
	// Priority orders the job among the due jobs of its queue: MinPriority to MaxPriority,
	// higher claimed first (DefaultPriority when it was put without one).
	Priority        int
	QuotaNames      []string    // quotas this job takes a slot of while it runs
	RetryPolicy     string      // name of its retry policy, fixed at creation
	Retry           RetryCounts // the policy's persistent counters
	FailureLogLevel slog.Level  // level at which its failure is logged

	Result  json.RawMessage // set when it succeeded
	Failure *Failure        // set when it failed

	Callbacks []string        // ids of its callback jobs, in the order they were added
	Choice    *CallbackChoice // for a success/failure callback pair: the two sides
	Parent    string          // id of the job this one is a callback of
	Target    string          // for a system job: the id of the job it acts on
	WaitingOn string          // id of an inner job whose result this job will take
	Parked    bool            // waiting without holding a slot of its holder
	Assigner  string          // UUID of the dispatcher that put it, if any

	// Children are the ids of a composite's sub-jobs, in order (Store.AddChild appends).
	Children []string
	// Sealed: the children are final (Store.SealChildren), AddChild refuses this job. A
	// composite seals them when it hands their outcomes to its postprocess, so that none can
	// be added whose outcome the postprocess would never see.
	Sealed bool
	// Composite is the id of the composite this job is a sub-job of (set by AddChild).
	Composite string
	// Attempts are the job's earlier runs, oldest first: each run taken from it by an
	// interruption (its dispatcher stopped or was found dead), and each kept when an operator
	// put the completed job back to run again (Store.Rerun); the last MaxAttempts of them.
	Attempts []PastAttempt

	Created     time.Time
	ActiveStart time.Time // zero until it starts
	ActiveEnd   time.Time // zero until its result is stored
	Completed   time.Time // zero until its callbacks are done

	// Unique is the unique key the job was put with, nil for none (see JobSpec.Unique): each
	// transition that moves the job out of the key's states releases it.
	Unique *Unique
	// Duplicate is set on a job a put returned instead of creating one: it held the put's
	// unique key. Debounced, also set then, says the put replaced its call and begin_after.
	// Neither is stored.
	Duplicate, Debounced bool

	// Corrupt is set on a job read from a record some of whose fields could not be read
	// (see CorruptError): those fields are zero here, and the store leaves them as they are
	// stored when it writes the job. Nothing can run such a job: a claimer fails it with
	// Corrupt as its failure.
	Corrupt *CorruptError
}

// PastAttempt is how an earlier run of a job ended: interrupted, or completed and put back to
// run again (Store.Rerun).
type PastAttempt struct {
	Attempt   int64     `json:"attempt"`         // the job's Attempt then
	Owner     string    `json:"owner,omitempty"` // "uuid/agent" of the run
	Start     time.Time `json:"start,omitzero"`  // when it started (zero: it never did)
	End       time.Time `json:"end,omitzero"`    // when its outcome was stored, or it was interrupted
	Completed time.Time `json:"completed,omitzero"`
	Failure   *Failure  `json:"failure,omitempty"`
	// Interrupted: the run was taken from the job when its dispatcher stopped or was found
	// dead (or its agent held it without running it); it stored no outcome.
	Interrupted bool `json:"interrupted,omitempty"`
	// LateCommit is when the run, after the job was taken from it, tried to store its outcome
	// and the fence refused it (zero: it never did). Its process had lost the job without
	// knowing, frozen or cut off past its death interval; nothing it wrote was kept.
	LateCommit time.Time `json:"late_commit,omitzero"`
}

// MaxAttempts is how many earlier runs a job keeps in Attempts: the newest.
const MaxAttempts = 50

// KeepAttempt appends a to j's Attempts, keeping the newest MaxAttempts.
func (j *Job) KeepAttempt(a PastAttempt) {
	j.Attempts = append(j.Attempts, a)
	if n := len(j.Attempts); n > MaxAttempts {
		j.Attempts = append([]PastAttempt(nil), j.Attempts[n-MaxAttempts:]...)
	}
}

// MaxRunTimeout is the longest run timeout a job may have.
const MaxRunTimeout = 30 * 24 * time.Hour

// The priorities a job may have. A claim takes the due job of the highest priority first, and
// the jobs of one priority first come, first served; put-back (interrupted) jobs go before
// all of them, and no priority makes a job claimed before its begin_after.
const (
	MinPriority     = 1
	MaxPriority     = 9
	DefaultPriority = 5 // a job put without a priority
)

// ValidatePriority checks a priority given to a put: MinPriority to MaxPriority, or 0 for
// DefaultPriority.
func ValidatePriority(p int) error {
	if p != 0 && (p < MinPriority || p > MaxPriority) {
		return invalidf("priority %d: want %d to %d", p, MinPriority, MaxPriority)
	}
	return nil
}

// PriorityOr returns p, or DefaultPriority when p is 0 (not given).
func PriorityOr(p int) int {
	if p == 0 {
		return DefaultPriority
	}
	return p
}

// Fence returns the fence of the job's current run.
func (j *Job) Fence() Fence { return Fence{Ref: j.Ref, Owner: j.Owner, Attempt: j.Attempt} }

// Deadline returns when the job must have started by, if it has a begin_by.
func (j *Job) Deadline() (time.Time, bool) {
	if j.BeginBy <= 0 {
		return time.Time{}, false
	}
	return j.BeginAfter.Add(j.BeginBy), true
}

// Expired reports whether the job's deadline has passed at now.
func (j *Job) Expired(now time.Time) bool {
	d, ok := j.Deadline()
	return ok && now.After(d)
}

// HasResult reports whether the job's outcome is stored (CALLBACKS or COMPLETED).
func (j *Job) HasResult() bool { return j.Status >= StatusCallbacks }

// Failed reports whether the job's stored outcome is a failure.
func (j *Job) Failed() bool { return j.Failure != nil }

// Policy returns the job's retry policy from policies.
func (j *Job) Policy(policies *RetryPolicies) (RetryPolicy, error) {
	return policies.Lookup(j.RetryPolicy)
}

// JobSpec describes a job to create: what it runs and how it is scheduled.
type JobSpec struct {
	Call Call
	// BeginAfter: not claimed before this. Zero means now. Any time zone is accepted and
	// stored as UTC. A time in the past means now: the job goes to the end of the queue. A
	// time before the zero time or after MaxTime is invalid.
	BeginAfter time.Time
	// BeginIn, when positive, makes BeginAfter the store's time at the put plus BeginIn: the
	// clock dispatchers judge by, not the caller's. It cannot be given with BeginAfter.
	// Negative is invalid.
	BeginIn time.Duration
	// BeginBy: if set, the job fails with TimeoutError when it has not started by
	// BeginAfter+BeginBy. Negative is invalid.
	BeginBy time.Duration
	// Timeout bounds each run of the handler (see Job.Timeout). Negative, or more than
	// MaxRunTimeout, is invalid.
	Timeout time.Duration
	// Priority: MinPriority to MaxPriority, higher claimed first among due jobs; 0 means
	// DefaultPriority. Anything else is invalid.
	Priority int
	// QuotaNames: quotas the job takes a slot of while it runs; each must exist when the job
	// is put in a queue.
	QuotaNames []string
	// RetryPolicy: the policy's name; empty means RetryCommonFourTimes, or RetryCommonForever
	// for callbacks.
	RetryPolicy string
	// FailureLogLevel: the level its failure is logged at; nil means ERROR, or LevelCritical
	// for callbacks and system jobs.
	FailureLogLevel *slog.Level
	// Assigner: the UUID of the dispatcher putting it, if any.
	Assigner string
	// Choice: for a success/failure callback pair, the two sides (Call is then ignored and
	// may be empty).
	Choice *CallbackChoice
	// Target: for a system job, the job it acts on.
	Target string
	// Unique, if not nil, makes Put, PutMany and PutEach create the job only if no job of the
	// queue holds its key, else return the job that holds it, marked Duplicate (see Unique).
	// Other ways of making a job ignore it.
	Unique *Unique
}

// Validate checks the spec before anything is written.
func (s *JobSpec) Validate() error {
	_, err := s.check(nil, false)
	return err
}

// AppendCall checks the spec as Validate does and appends its call's JSON as stored
// (Call.Encode) to dst, made in the same pass; it appends nothing for a pair of callbacks,
// which stores Choice.
func (s *JobSpec) AppendCall(dst []byte) ([]byte, error) {
	return s.check(dst, true)
}

// check is Validate, and AppendCall when encode is set.
func (s *JobSpec) check(dst []byte, encode bool) (call []byte, err error) {
	call = dst
	switch {
	case s.Choice != nil:
		err = checkPair(s.Choice)
	case encode:
		call, err = s.Call.AppendEncoded(dst)
	default:
		err = s.Call.Validate()
	}
	if err != nil {
		return dst, err
	}
	if s.BeginBy < 0 {
		return dst, invalidf("negative begin_by %s", s.BeginBy)
	}
	if err := ValidateTime("begin_after", s.BeginAfter); err != nil {
		return dst, err
	}
	if s.BeginIn < 0 {
		return dst, invalidf("negative begin_in %s", s.BeginIn)
	}
	if s.Timeout < 0 || s.Timeout > MaxRunTimeout {
		return dst, invalidf("run timeout %s: want 0 (none) to %s", s.Timeout, MaxRunTimeout)
	}
	if err := ValidatePriority(s.Priority); err != nil {
		return dst, err
	}
	if s.BeginIn > 0 && !s.BeginAfter.IsZero() {
		return dst, invalidf("both begin_after and begin_in")
	}
	if err := ValidateQuotaNames(s.QuotaNames); err != nil {
		return dst, err
	}
	if s.Unique != nil {
		if err := s.Unique.Validate(); err != nil {
			return dst, err
		}
	}
	return call, nil
}

// ValidateQuotaNames checks each name of a quota list and that none repeats.
func ValidateQuotaNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := ValidateName("quota", n); err != nil {
			return err
		}
		if seen[n] {
			return invalidf("quota name %q given twice", n)
		}
		seen[n] = true
	}
	return nil
}

// Change is a change to a job that is not yet running; nil fields are left alone. The rules
// of zc.async apply: the call and begin_after may change only while NEW, begin_by and
// quota names while NEW or PENDING.
type Change struct {
	Call       *Call
	BeginAfter *time.Time
	BeginBy    *time.Duration
	QuotaNames *[]string
}

// Outcome is what a run of a job produced: exactly one of Result and Failure.
type Outcome struct {
	Result  json.RawMessage
	Failure *Failure
	// Retry, if not nil, replaces the job's retry counters in the same write.
	Retry RetryCounts
	// Complete, when the job has no callbacks, goes straight to COMPLETED in the same
	// transaction instead of stopping at CALLBACKS. With callbacks it stops at CALLBACKS.
	Complete bool
}

// Validate checks that exactly one side is set and that a result is JSON.
func (o *Outcome) Validate() error {
	switch {
	case o.Failure == nil && o.Result == nil:
		return invalidf("outcome has neither result nor failure")
	case o.Failure != nil && o.Result != nil:
		return invalidf("outcome has both result and failure")
	case o.Result != nil && !json.Valid(o.Result):
		return invalidf("result is not JSON: %.40q", o.Result)
	}
	return nil
}
