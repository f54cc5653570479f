package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// MaxUniqueKey is the longest key Unique takes, in bytes.
const MaxUniqueKey = 512

// UniqueStates are the states in which a job keeps its unique key from being put again: a
// set of bits, combined with |.
type UniqueStates uint8

// The states of UniqueOpts.States.
const (
	// UniquePending: waiting in its queue and due.
	UniquePending UniqueStates = UniqueStates(persistence.UniquePending)
	// UniqueScheduled: waiting in its queue for its begin_after (BeginAfter, BeginIn, or a
	// retry later).
	UniqueScheduled UniqueStates = UniqueStates(persistence.UniqueScheduled)
	// UniqueActive: claimed and not completed: assigned, running, or running its callbacks.
	UniqueActive UniqueStates = UniqueStates(persistence.UniqueActive)
)

// ParseUniqueState returns the state name gives, as the command and the HTTP API write them:
// "pending", "scheduled" or "active"; ok is false for any other name.
func ParseUniqueState(name string) (state UniqueStates, ok bool) {
	switch name {
	case "pending":
		return UniquePending, true
	case "scheduled":
		return UniqueScheduled, true
	case "active":
		return UniqueActive, true
	}
	return 0, false
}

// UniqueOpts are the options of Unique. The zero value holds the key while the job is
// pending, scheduled or active.
type UniqueOpts struct {
	// States are those in which the job holds its key; zero means UniquePending |
	// UniqueScheduled | UniqueActive. A put that finds the key held by a job in none of them
	// (a job that started, with UniquePending alone) makes a new job, which takes the key.
	States UniqueStates
	// CompletedWithin also holds the key for this long after the job completes (with a
	// result or a failure of its run, not a cancel), capped at the store's retention: a put
	// within it returns the completed job. 0: released at completion. Negative is invalid.
	CompletedWithin time.Duration
	// Debounce makes a put that finds the key held by a job still pending and never
	// started replace that job's call (its arguments) and its begin_after with its own: the
	// newest put wins, and its BeginIn delays the job again. The job returned says so
	// (Job.Debounced). A put that finds the job started returns it unchanged.
	Debounce bool
}

// Unique makes a put create its job only if no job of the queue holds key: a put that finds
// the key held returns the job that holds it instead, and creates nothing (Job.Duplicate
// reports it). The key belongs to the queue (the same key in two queues is two keys) and is
// any UTF-8 text of 1 to MaxUniqueKey bytes; an empty or longer key, or a negative
// CompletedWithin, is ErrInvalid at the put, and nothing is written.
//
// The job that takes the key holds it while it is in opts' states, and the key is released
// in the very transaction that moves the job out of them (its completion, a cancel, a fail
// before it started, a delete), only while the key still names that job: a key is never
// held by a job that ended or a process that died, and puts racing from any number of
// processes create one job. A job retried or rescheduled keeps its key. With PutMany every
// job of the call has the key: the first is made, the others are its duplicates (not
// debounced: Debounce is for a later put). A composite
// cannot be put with Unique. A put through a queue's actor (Queue.PutMessage) honours the
// key too, but its PutDone does not say which jobs were duplicates.
func Unique(key string, opts UniqueOpts) PutOption {
	return func(s *putSettings) {
		u := &persistence.Unique{Key: key, States: persistence.UniqueStates(opts.States),
			Keep: opts.CompletedWithin, Debounce: opts.Debounce}
		if err := u.Validate(); err != nil && s.err == nil {
			s.err = fmt.Errorf("unique: %w", err)
		}
		s.unique = u
	}
}

// Duplicate reports whether the put that returned this handle found its unique key held and
// returned the job that held it, instead of making one (see Unique). A handle got otherwise
// reports false.
func (j *Job) Duplicate() bool { return j.put.duplicate }

// Debounced reports whether the put that returned this handle found its unique key held by
// a pending job and gave it its call and begin_after (UniqueOpts.Debounce).
func (j *Job) Debounced() bool { return j.put.debounced }

// UniqueKey reads the unique key the job was put with; ok is false when it has none.
func (j *Job) UniqueKey(ctx context.Context) (key string, ok bool, err error) {
	rec, err := j.info(ctx)
	if err != nil || rec.Unique == nil {
		return "", false, err
	}
	return rec.Unique.Key, true, nil
}

// putOutcome is what the put that returned a handle learnt about its job.
type putOutcome struct {
	duplicate, debounced bool
}

// isUnique reports whether m's jobs name a unique key: such a put goes straight to the store
// (putUnique), whose answer says which jobs were duplicates.
func isUnique(m *messages.Put) bool {
	for i := range m.Specs {
		if m.Specs[i].Unique != nil {
			return true
		}
	}
	return false
}

// putUnique puts m's jobs, of which some name a unique key, with one store call, and returns
// their handles marked as the store answered. It does what the queue's actor does for its
// puts: counts the jobs made and has them notified.
func (q *Queue) putUnique(ctx context.Context, m *messages.Put) ([]*Job, error) {
	if q.rt.isClosed.Load() {
		return nil, ErrClosed
	}
	if m.Notify != nil && q.rt.isDetached {
		return nil, errNotifyDetached
	}
	recs, err := q.rt.store.PutMany(ctx, q.name, m.Specs)
	if err != nil {
		return nil, err
	}
	jobs := make([]*Job, len(recs))
	made := 0
	for i, r := range recs {
		jobs[i] = q.rt.job(r.Ref)
		jobs[i].put = putOutcome{duplicate: r.Duplicate, debounced: r.Debounced}
		if !r.Duplicate {
			made++
		}
	}
	q.rt.metrics.puts(q.name, made)
	if m.Notify != nil {
		if root, err := q.rt.actorRoot(); err == nil {
			for _, r := range recs {
				q.rt.notifyOnCompletion(root.System(), r.Ref, m.Notify)
			}
		}
	}
	return jobs, nil
}
