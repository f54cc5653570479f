package runtime

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/zasync/zasync/persistence"
)

// JobRecord is a job's record as stored: call, status, owner, schedule, retry policy,
// result or failure, callbacks and timestamps. Job.Info reads it; an agent's filter
// (AgentConfig.Filter) sees each candidate's. It is a copy: changing it changes nothing
// stored.
type JobRecord struct {
	// Ref is the job's queue and id.
	Ref
	// Call is what the job runs. A pair of callbacks that has not chosen its side yet
	// (AddCallbacks) has an empty call and its two sides in Choice.
	Call Call
	// Status is where the job stands in its life.
	Status Status
	// Owner may write this run of the job: set by a claim or an adoption, cleared when the
	// job is taken away from it. Attempt counts claims and adoptions: 1 for the first run.
	Owner   Owner
	Attempt int64
	// Holder is the agent that claimed the job and counts it against its size, until the job
	// completes or is taken back. An adopted job keeps its holder.
	Holder Owner

	// BeginAfter: never claimed before this (UTC).
	BeginAfter time.Time
	// BeginBy: 0, no deadline; else a job not started by BeginAfter+BeginBy fails with a
	// TimeoutError.
	BeginBy time.Duration
	// Timeout bounds each run of the handler (0: none): the handler's context ends at it, and
	// a run past it fails with a TimeoutError, which goes through the retry policy.
	Timeout time.Duration
	// Priority orders the job among the due jobs of its queue: MinPriority to MaxPriority,
	// higher claimed first (DefaultPriority when it was put without one).
	Priority int
	// QuotaNames are the quotas the job takes a slot of while it runs.
	QuotaNames []string
	// RetryPolicy is the name of its retry policy, fixed at creation.
	RetryPolicy string
	// Retry are the policy's counters, kept across runs and processes.
	Retry RetryCounts
	// FailureLogLevel is the level at which its failure is logged.
	FailureLogLevel slog.Level

	// Result is the handler's result as JSON, set when the job succeeded.
	Result json.RawMessage
	// Failure is set when the job failed.
	Failure *Failure

	// Callbacks are the ids of its callback jobs, in the order they were added.
	Callbacks []string
	// Choice is, for a pair of callbacks (AddCallbacks), the two sides.
	Choice *CallbackChoice
	// Parent is the id of the job this one is a callback of.
	Parent string
	// Target is, for one of zasync's own jobs, the id of the job it acts on.
	Target string
	// WaitingOn is the id of an inner job whose result this job will take (a handler that
	// returned a *Job).
	WaitingOn string
	// Parked: the job waits (for an inner job) without holding a slot of its holder.
	Parked bool
	// Assigner is the UUID of the dispatcher whose process put it, if any.
	Assigner string

	// Children are the ids of a composite's sub-jobs, in order (AddSubJob appends).
	Children []string
	// Sealed: the children are final. A composite seals them when it hands their outcomes to
	// its postprocess, so that none can be added whose outcome the postprocess would never
	// see.
	Sealed bool
	// Composite is the id of the composite this job is a sub-job of.
	Composite string
	// Attempts are the job's earlier runs, oldest first: each run taken from it by an
	// interruption (its dispatcher stopped or was found dead), and each kept when an operator
	// put the completed job back to run again (Runtime.Retry); the last 50 of them.
	Attempts []PastAttempt

	// Created is when the job was made; ActiveStart when its handler started, ActiveEnd when
	// its result was stored and Completed when its callbacks were done (zero until then).
	Created     time.Time
	ActiveStart time.Time
	ActiveEnd   time.Time
	Completed   time.Time

	// Unique is the unique key the job was put with (the Unique put option), nil for none.
	Unique *UniqueHold

	// Corrupt is set on a record some of whose fields could not be read: those fields are
	// zero here. Nothing can run such a job: its claimer fails it with Corrupt as its failure.
	Corrupt *CorruptError
}

// Deadline returns when the job must have started by, if it has a BeginBy.
func (j *JobRecord) Deadline() (time.Time, bool) {
	if j.BeginBy <= 0 {
		return time.Time{}, false
	}
	return j.BeginAfter.Add(j.BeginBy), true
}

// Expired reports whether the job's deadline has passed at now.
func (j *JobRecord) Expired(now time.Time) bool {
	d, ok := j.Deadline()
	return ok && now.After(d)
}

// HasResult reports whether the job's outcome is stored (CALLBACKS or COMPLETED).
func (j *JobRecord) HasResult() bool { return j.Status >= StatusCallbacks }

// Failed reports whether the job's stored outcome is a failure.
func (j *JobRecord) Failed() bool { return j.Failure != nil }

// UniqueHold is a job's unique key as its record keeps it: the key and how the job holds it
// (see the Unique put option and UniqueOpts).
type UniqueHold struct {
	// Key names the job in its queue.
	Key string `json:"key"`
	// States are those in which the job holds the key; zero means UniquePending |
	// UniqueScheduled | UniqueActive.
	States UniqueStates `json:"-"`
	// Keep holds the key for this long after the job completes (UniqueOpts.CompletedWithin).
	Keep time.Duration `json:"-"`
	// Debounce is the put's UniqueOpts.Debounce; it is not stored, so false in a record.
	Debounce bool `json:"-"`
}

// Owner is an agent: a dispatcher's UUID and an agent's name. The zero Owner is nobody.
type Owner struct {
	// Dispatcher is the dispatcher's UUID.
	Dispatcher string `json:"dispatcher"`
	// Agent is the agent's name in the job's queue.
	Agent string `json:"agent"`
}

// IsZero reports whether o is nobody.
func (o Owner) IsZero() bool { return o == Owner{} }

// String renders the owner as "uuid/agent", empty for nobody.
func (o Owner) String() string { return persistence.Owner(o).String() }

// CallbackChoice is a pair of callbacks (Job.AddCallbacks) before the parent's outcome picks
// one: Success runs when the parent succeeded, Failure when it failed. A nil side passes the
// parent's result through unchanged.
type CallbackChoice struct {
	// Success is the call run when the parent succeeded.
	Success *Call `json:"success,omitempty"`
	// Failure is the call run when the parent failed.
	Failure *Call `json:"failure,omitempty"`
}

// PastAttempt is how an earlier run of a job ended: interrupted, or completed and put back to
// run again (Runtime.Retry).
type PastAttempt struct {
	// Attempt is the job's Attempt then.
	Attempt int64 `json:"attempt"`
	// Owner is "uuid/agent" of the run.
	Owner string `json:"owner,omitempty"`
	// Start is when it started (zero: it never did).
	Start time.Time `json:"start,omitzero"`
	// End is when its outcome was stored, or it was interrupted.
	End time.Time `json:"end,omitzero"`
	// Completed is when its callbacks were done.
	Completed time.Time `json:"completed,omitzero"`
	// Failure is how it failed, if it stored a failure.
	Failure *Failure `json:"failure,omitempty"`
	// Interrupted: the run was taken from the job when its dispatcher stopped or was found
	// dead (or its agent held it without running it); it stored no outcome.
	Interrupted bool `json:"interrupted,omitempty"`
	// LateCommit is when the run, after the job was taken from it, tried to store its outcome
	// and the fence refused it (zero: it never did). Its process had lost the job without
	// knowing, frozen or cut off past its death interval; nothing it wrote was kept.
	LateCommit time.Time `json:"late_commit,omitzero"`
}

// recordFrom returns the record j as this package shows it. It shares j's slices and maps,
// which the caller no longer uses or does not change.
func recordFrom(j *persistence.Job) *JobRecord {
	if j == nil {
		return nil
	}
	r := &JobRecord{
		Ref:             Ref(j.Ref),
		Call:            callOf(&j.Call),
		Status:          Status(j.Status),
		Owner:           Owner(j.Owner),
		Attempt:         j.Attempt,
		Holder:          Owner(j.Holder),
		BeginAfter:      j.BeginAfter,
		BeginBy:         j.BeginBy,
		Timeout:         j.Timeout,
		Priority:        j.Priority,
		QuotaNames:      j.QuotaNames,
		RetryPolicy:     j.RetryPolicy,
		Retry:           RetryCounts(j.Retry),
		FailureLogLevel: j.FailureLogLevel,
		Result:          j.Result,
		Failure:         failureFrom(j.Failure),
		Callbacks:       j.Callbacks,
		Parent:          j.Parent,
		Target:          j.Target,
		WaitingOn:       j.WaitingOn,
		Parked:          j.Parked,
		Assigner:        j.Assigner,
		Children:        j.Children,
		Sealed:          j.Sealed,
		Composite:       j.Composite,
		Attempts:        attemptsFrom(j.Attempts),
		Created:         j.Created,
		ActiveStart:     j.ActiveStart,
		ActiveEnd:       j.ActiveEnd,
		Completed:       j.Completed,
		Corrupt:         corruptFrom(j.Corrupt),
	}
	if u := j.Unique; u != nil {
		r.Unique = &UniqueHold{Key: u.Key, States: UniqueStates(u.States), Keep: u.Keep, Debounce: u.Debounce}
	}
	if c := j.Choice; c != nil {
		r.Choice = &CallbackChoice{}
		if c.Success != nil {
			s := callOf(c.Success)
			r.Choice.Success = &s
		}
		if c.Failure != nil {
			f := callOf(c.Failure)
			r.Choice.Failure = &f
		}
	}
	return r
}

// callOf returns a stored call as a Call, sharing its arguments.
func callOf(pc *persistence.Call) Call {
	return Call{Handler: pc.Handler, Args: pc.Args, Kwargs: pc.Kwargs, Meta: pc.Meta}
}

// attemptsFrom returns stored past attempts as PastAttempts; nil for none.
func attemptsFrom(as []persistence.PastAttempt) []PastAttempt {
	if as == nil {
		return nil
	}
	out := make([]PastAttempt, len(as))
	for i, a := range as {
		out[i] = PastAttempt{
			Attempt: a.Attempt, Owner: a.Owner, Start: a.Start, End: a.End, Completed: a.Completed,
			Failure: failureFrom(a.Failure), Interrupted: a.Interrupted, LateCommit: a.LateCommit,
		}
	}
	return out
}
