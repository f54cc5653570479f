package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Bulk actions: Cancel, Retry and Delete over the jobs a Query selects. The query is read
// first, in its windows, then each job is acted on in a transaction of its own, a few at a
// time: never one transaction over many jobs, and a job that changed since the query read it
// is refused by its own transaction, not acted on in a state it has left.

// MaxBulk is the most jobs one bulk action acts on: a query with no Limit, or a larger one,
// stops there, and BulkReport.More says so (call again for the rest).
const MaxBulk = 100_000

// MaxPurge is the most jobs one Purge call deletes when it is given no lower limit.
const MaxPurge = 10_000

// bulkWorkers is how many jobs of a bulk action are acted on at once.
const bulkWorkers = 8

// BulkReport counts what a bulk action did.
type BulkReport struct {
	// Matched is how many jobs the query selected; Done how many were acted on; Refused how
	// many had changed since the query read them (started, completed, retried or deleted
	// meanwhile), and were left as they are.
	Matched, Done, Refused int
	// More: the query selected the most one call acts on (MaxBulk, or Purge's limit); more
	// jobs may match.
	More bool
	// Jobs, for a dry run only, are the jobs the action would act on; Done is 0.
	Jobs []Ref `json:",omitempty"`
}

// BulkOption changes how a bulk action runs.
type BulkOption func(*bulkSettings)

type bulkSettings struct{ dryRun bool }

// DryRun makes a bulk action read its query and report what it would act on
// (BulkReport.Jobs), changing nothing.
func DryRun() BulkOption { return func(s *bulkSettings) { s.dryRun = true } }

// CancelMatching cancels every job q selects, as Cancel does (q's states: pending,
// assigned, active).
func (rt *Runtime) CancelMatching(ctx context.Context, q Query, opts ...BulkOption) (BulkReport, error) {
	return rt.bulk(ctx, "cancel", q, selPending|selAssigned|selActive, MaxBulk, opts, func(ctx context.Context, ref Ref) error {
		_, err := rt.Cancel(ctx, ref)
		return err
	})
}

// RetryMatching retries every job q selects, as Retry does (q's state: failed).
func (rt *Runtime) RetryMatching(ctx context.Context, q Query, opts ...BulkOption) (BulkReport, error) {
	return rt.bulk(ctx, "retry", q, selFailed, MaxBulk, opts, func(ctx context.Context, ref Ref) error {
		_, err := rt.Retry(ctx, ref)
		return err
	})
}

// DeleteMatching deletes every job q selects, as Delete does, with its callbacks and parts
// (q's states: pending, completed, succeeded, failed).
func (rt *Runtime) DeleteMatching(ctx context.Context, q Query, opts ...BulkOption) (BulkReport, error) {
	return rt.bulk(ctx, "delete", q, selPending|selCompleted, MaxBulk, opts, rt.deleteOne)
}

// Purge deletes completed jobs (state: completed, succeeded or failed) that completed more
// than olderThan ago (0: every one), before their retention would, in the queues whose name matches queue
// (a glob; empty: every queue): at most limit of them (0: MaxPurge), the oldest histories'
// entries first as the query reads them. Call it again while BulkReport.More.
func (rt *Runtime) Purge(ctx context.Context, state State, queue string, olderThan time.Duration, limit int, opts ...BulkOption) (BulkReport, error) {
	switch {
	case state.bit()&^selCompleted != 0 || state.bit() == 0:
		return BulkReport{}, invalidf("purge: state %q: want completed, succeeded or failed", state)
	case olderThan < 0:
		return BulkReport{}, invalidf("purge: negative age %s", olderThan)
	case limit < 0:
		return BulkReport{}, invalidf("purge: negative limit %d", limit)
	case limit == 0:
		limit = MaxPurge
	}
	limit = min(limit, MaxBulk)
	now, err := rt.store.Now(ctx)
	if err != nil {
		return BulkReport{}, fmt.Errorf("purge: %w", err)
	}
	q := Query{States: []State{state}, Queue: queue}
	if olderThan > 0 {
		// No bound at zero: a job this process just saw complete may carry a time a
		// millisecond past the store's clock, and "every completed job" must include it.
		q.CallbacksCompleted = Window{Before: now.Add(-olderThan)}
	}
	return rt.bulk(ctx, "purge", q, selCompleted, limit, opts, rt.deleteOne)
}

// deleteOne deletes one job, as Delete does.
func (rt *Runtime) deleteOne(ctx context.Context, ref Ref) error {
	_, err := rt.Delete(ctx, ref)
	return err
}

// bulk reads the jobs q selects (at most limit, or q.Limit when lower), then calls act on each
// of them, bulkWorkers at a time. States outside allowed give ErrInvalid.
func (rt *Runtime) bulk(ctx context.Context, op string, q Query, allowed selection, limit int, opts []BulkOption, act func(context.Context, Ref) error) (BulkReport, error) {
	var r BulkReport
	var set bulkSettings
	for _, o := range opts {
		o(&set)
	}
	for _, name := range q.States {
		// Every job of a state named must be one the action applies to ("completed" is
		// refused for a retry: its succeeded jobs are not retried).
		if st, err := ParseState(string(name)); err == nil && st.bit()&^allowed != 0 {
			return r, invalidf("%s: state %s: the action applies to %s only", op, st, allowed)
		}
	}
	capped := q.Limit == 0 || q.Limit > limit
	if capped {
		q.Limit = limit + 1 // one more tells whether there are more
	}
	p, err := rt.plan(ctx, q, 0, allowed)
	if err != nil {
		return r, fmt.Errorf("%s: %w", op, err)
	}
	var refs []Ref
	if err := rt.scan(ctx, p, func(j *persistence.Job) bool {
		refs = append(refs, Ref(j.Ref))
		return true
	}); err != nil {
		return r, fmt.Errorf("%s: %w", op, err)
	}
	if capped && len(refs) > limit {
		refs, r.More = refs[:limit], true
	}
	r.Matched = len(refs)
	if set.dryRun {
		r.Jobs = refs
		return r, nil
	}

	var mu sync.Mutex
	var first error
	next := make(chan Ref)
	var wg sync.WaitGroup
	for range min(bulkWorkers, len(refs)) {
		wg.Go(func() {
			for ref := range next {
				err := act(ctx, ref)
				mu.Lock()
				switch {
				case err == nil:
					r.Done++
				case refusedNow(err):
					r.Refused++
				case first == nil:
					first = err
				}
				mu.Unlock()
			}
		})
	}
	for _, ref := range refs {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		next <- ref
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first != nil {
		return r, fmt.Errorf("%s: stopped after %d of %d jobs: %w", op, r.Done+r.Refused, r.Matched, first)
	}
	return r, nil
}

// refusedNow tells the errors of a job whose state changed since a query read it: the action
// is refused for that job alone.
func refusedNow(err error) bool {
	return errors.Is(err, ErrBadStatus) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrReassigned)
}

// String names the states of s, for messages.
func (s selection) String() string {
	var names []string
	for _, st := range States {
		if b := st.bit(); b&s == b && st != StateCompleted || st == StateCompleted && s&selCompleted == selCompleted {
			names = append(names, string(st))
		}
	}
	return strings.Join(names, ", ")
}
