package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Queue is a named queue of jobs in Redis, shared by every process using the same Redis and
// Prefix. It is a handle: getting one does no I/O, and any name can be put into whether or
// not this process serves it (the name is checked by the first call that does I/O).
type Queue struct {
	rt   *Runtime
	name string
}

// Queue returns the queue called name.
func (rt *Runtime) Queue(name string) *Queue { return &Queue{rt: rt, name: name} }

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// PutOption changes how Put and PutMany schedule a job.
type PutOption func(*putSettings)

// putSettings collects the PutOptions of one Put; an option's bad argument is kept in err
// and reported by Put, so that options stay plain values.
type putSettings struct {
	beginAfter time.Time
	beginIn    *time.Duration // resolved against the store's clock at Put
	beginBy    time.Duration
	quotas     []string
	retry      RetryPolicy
	level      *slog.Level
	err        error
}

// BeginAfter keeps the job from being claimed before t. A time in the past means now; a time
// before the zero time or after the end of year 9999 is invalid (ErrInvalid). The last of
// BeginAfter and BeginIn wins.
func BeginAfter(t time.Time) PutOption {
	return func(s *putSettings) { s.beginAfter, s.beginIn = t, nil }
}

// BeginIn keeps the job from being claimed for d, measured from the Redis server's clock at
// the put (the clock dispatchers judge by), not this machine's. Negative is invalid. The
// last of BeginAfter and BeginIn wins.
func BeginIn(d time.Duration) PutOption {
	return func(s *putSettings) {
		if d < 0 && s.err == nil {
			s.err = invalidf("negative BeginIn %s", d)
		}
		s.beginIn, s.beginAfter = &d, time.Time{}
	}
}

// BeginBy fails the job with a TimeoutError if it has not started within d of its
// begin_after. Default: no deadline. Negative is invalid.
func BeginBy(d time.Duration) PutOption {
	return func(s *putSettings) { s.beginBy = d }
}

// Quotas makes the job take a slot of each named quota of its queue while it runs, so that
// at most a quota's size of such jobs run at once. Each quota must exist (ErrUnknownQuota).
func Quotas(names ...string) PutOption {
	return func(s *putSettings) { s.quotas = slices.Clone(names) }
}

// Retry sets the job's retry policy. Default RetryCommonFourTimes. The policy must be known
// to this runtime (built in, or in Config.RetryPolicies), else ErrInvalid: the job keeps only
// its name, and every process serving the queue must know it too.
func Retry(p RetryPolicy) PutOption {
	return func(s *putSettings) {
		s.retry = p
		if p == nil && s.err == nil {
			s.err = invalidf("nil retry policy")
		}
	}
}

// FailureLevel sets the level the job's failure is logged at. Default slog.LevelError.
func FailureLevel(l slog.Level) PutOption {
	return func(s *putSettings) { s.level = &l }
}

// specs turns calls and options into job specs, reading the store's clock once if BeginIn
// asks for it.
func (q *Queue) specs(ctx context.Context, calls []Call, opts []PutOption) ([]persistence.JobSpec, error) {
	pcs := make([]persistence.Call, len(calls))
	for i := range calls {
		var err error
		if pcs[i], err = calls[i].forPut(); err != nil {
			return nil, err
		}
	}
	spec, err := q.spec(ctx, opts)
	if err != nil {
		return nil, err
	}
	specs := make([]persistence.JobSpec, len(calls))
	for i := range calls {
		specs[i] = spec
		specs[i].Call = pcs[i]
	}
	return specs, nil
}

// spec turns options into a job spec without its call, reading the store's clock if BeginIn
// asks for it.
func (q *Queue) spec(ctx context.Context, opts []PutOption) (persistence.JobSpec, error) {
	var s putSettings
	for _, o := range opts {
		o(&s)
	}
	if s.err != nil {
		return persistence.JobSpec{}, s.err
	}
	spec := persistence.JobSpec{
		BeginAfter:      s.beginAfter,
		BeginBy:         s.beginBy,
		QuotaNames:      s.quotas,
		FailureLogLevel: s.level,
		Assigner:        q.rt.assigner(),
	}
	if s.retry != nil {
		name, err := q.rt.retryPolicy(s.retry)
		if err != nil {
			return persistence.JobSpec{}, err
		}
		spec.RetryPolicy = name
	}
	if s.beginIn != nil {
		now, err := q.rt.store.Now(ctx)
		if err != nil {
			return persistence.JobSpec{}, err
		}
		spec.BeginAfter = now.Add(*s.beginIn)
	}
	return spec, nil
}

// Put puts a job running call into the queue, PENDING: a dispatcher serving the queue will
// claim and run it, at once or after BeginAfter. The returned Job is a handle to wait on,
// read, or add callbacks to. A bad call or option gives ErrInvalid and writes nothing; so
// does a handler name starting with "zasync.", which names zasync's own jobs (as for Handle).
func (q *Queue) Put(ctx context.Context, call Call, opts ...PutOption) (*Job, error) {
	if call.composite != nil {
		job, err := q.putComposite(ctx, call, opts)
		if err == nil {
			q.rt.metrics.puts(q.name, 1)
		}
		return job, err
	}
	specs, err := q.specs(ctx, []Call{call}, opts)
	if err != nil {
		return nil, fmt.Errorf("put %q into %q: %w", call.Handler, q.name, err)
	}
	rec, err := q.rt.store.Put(ctx, q.name, specs[0])
	if err != nil {
		return nil, fmt.Errorf("put %q into %q: %w", call.Handler, q.name, err)
	}
	q.rt.metrics.puts(q.name, 1)
	return q.rt.Job(rec.Ref), nil
}

// PutMany puts a job for each call into the queue, all with the same options, in one round
// trip to Redis: all of them or none. The jobs are returned in the order of calls.
func (q *Queue) PutMany(ctx context.Context, calls []Call, opts ...PutOption) ([]*Job, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	specs, err := q.specs(ctx, calls, opts)
	if err != nil {
		return nil, fmt.Errorf("put %d jobs into %q: %w", len(calls), q.name, err)
	}
	recs, err := q.rt.store.PutMany(ctx, q.name, specs)
	if err != nil {
		return nil, fmt.Errorf("put %d jobs into %q: %w", len(calls), q.name, err)
	}
	q.rt.metrics.puts(q.name, len(recs))
	jobs := make([]*Job, len(recs))
	for i, r := range recs {
		jobs[i] = q.rt.Job(r.Ref)
	}
	return jobs, nil
}

// QuotaInfo describes a quota: its size and the jobs holding its slots.
type QuotaInfo = persistence.QuotaInfo

// CreateQuota defines a quota of the queue: at most size (at least 1) jobs naming it (see
// Quotas) run at once, across every process. ErrInvalid if it exists already.
func (q *Queue) CreateQuota(ctx context.Context, name string, size int) error {
	if err := q.rt.store.CreateQuota(ctx, q.name, name, size); err != nil {
		return fmt.Errorf("create quota %q in %q: %w", name, q.name, err)
	}
	return nil
}

// RemoveQuota removes a quota; jobs that still name it then ignore the name.
func (q *Queue) RemoveQuota(ctx context.Context, name string) error {
	if err := q.rt.store.RemoveQuota(ctx, q.name, name); err != nil {
		return fmt.Errorf("remove quota %q from %q: %w", name, q.name, err)
	}
	return nil
}

// ResizeQuota changes a quota's size. Shrinking it stops no running job; it only holds back
// new ones until fewer than size run.
func (q *Queue) ResizeQuota(ctx context.Context, name string, size int) error {
	if err := q.rt.store.ResizeQuota(ctx, q.name, name, size); err != nil {
		return fmt.Errorf("resize quota %q of %q: %w", name, q.name, err)
	}
	return nil
}

// Quota reads a quota: its size and the jobs holding it. ErrNotFound if it does not exist.
func (q *Queue) Quota(ctx context.Context, name string) (*QuotaInfo, error) {
	info, err := q.rt.store.Quota(ctx, q.name, name)
	if err != nil {
		return nil, fmt.Errorf("quota %q of %q: %w", name, q.name, err)
	}
	return info, nil
}
