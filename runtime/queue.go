package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zasync/zasync/messages"
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
	notify     *actor.PID
	meta       map[string]string // the Meta options'
	timeout    time.Duration
	priority   int                 // 0: not given
	unique     *persistence.Unique // the Unique option's (unique.go)
	err        error
}

// beginInOrZero is the BeginIn option's duration, 0 when it is not given.
func (s *putSettings) beginInOrZero() time.Duration {
	if s.beginIn == nil {
		return 0
	}
	return *s.beginIn
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

// Timeout bounds each run of the job's handler: its context ends d after the run starts,
// and a run still going then fails with a TimeoutError (errors.As finds it; kind
// "TimeoutError"), which the retry policy answers as any handler error: RetryBackoff retries
// it, the default policy does not. A handler that ignores its context is waited for
// Config.ShutdownGrace more, then abandoned: the job goes on (its slot freed, its failure
// stored), and what the handler returns later is dropped. 0 (the default) is no timeout;
// negative or more than 30 days is invalid. Give it once for a handler with Handle's options.
func Timeout(d time.Duration) PutOption {
	return func(s *putSettings) {
		if (d < 0 || d > persistence.MaxRunTimeout) && s.err == nil {
			s.err = invalidf("run timeout %s: want 0 (none) to %s", d, persistence.MaxRunTimeout)
		}
		s.timeout = d
	}
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

// Notify makes the runtime send pid a *messages.JobCompleted (the job's outcome) when the job
// completes, as a message from the actor system of zasync's root (Config.ActorSystem, or
// the runtime's own). With PutMany each job is notified on its own. The runtime waits for
// the job as Job.Wait does, from this process: if the runtime is closed first, no
// notification is sent (the outcome is still stored, for Job.Wait or Job.Info to read), and
// so if this process stops. A nil pid is invalid.
func Notify(pid *actor.PID) PutOption {
	return func(s *putSettings) {
		s.notify = pid
		if pid == nil && s.err == nil {
			s.err = invalidf("nil PID to notify")
		}
	}
}

// apply applies opts to s, and returns the first bad option's error.
func (s *putSettings) apply(opts []PutOption) error {
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	return s.err
}

// message turns calls and options into the message that puts them, without I/O.
func (q *Queue) message(calls []Call, opts []PutOption) (*messages.Put, error) {
	spec, s, err := q.settings(opts)
	if err != nil {
		return nil, err
	}
	m := &messages.Put{Specs: make([]persistence.JobSpec, len(calls)), Notify: s.notify}
	// A handler with defaults (Handle's options) has its spec made once a put: its defaults,
	// then the put's options.
	type specMeta struct {
		spec persistence.JobSpec
		meta map[string]string
	}
	var own map[string]specMeta
	for i := range calls {
		if calls[i].composite != nil {
			return nil, invalidf("a composite cannot be put with other calls or by message; use Queue.Put")
		}
		// The store checks the call's JSON as it encodes it (PutEach): forPut leaves it to it.
		pc, err := calls[i].forPut()
		if err != nil {
			return nil, err
		}
		sm := specMeta{spec, s.meta}
		if d := q.rt.putDefaults(pc.Handler); d != nil {
			var ok bool
			if sm, ok = own[pc.Handler]; !ok {
				hs, hset, err := q.settings(append(slices.Clone(d), opts...))
				if err != nil {
					return nil, err
				}
				sm = specMeta{hs, hset.meta}
				if own == nil {
					own = map[string]specMeta{}
				}
				own[pc.Handler] = sm
			}
		}
		pc.Meta = inherit(sm.meta, pc.Meta)
		m.Specs[i] = sm.spec
		m.Specs[i].Call = pc
	}
	return m, nil
}

// settings applies opts and turns them into a job spec without its call. BeginIn stays a
// duration, for the store to add to its own time when it puts the job.
func (q *Queue) settings(opts []PutOption) (persistence.JobSpec, *putSettings, error) {
	s := &putSettings{}
	if err := s.apply(opts); err != nil {
		return persistence.JobSpec{}, nil, err
	}
	spec := persistence.JobSpec{
		BeginAfter:      s.beginAfter,
		BeginIn:         s.beginInOrZero(),
		BeginBy:         s.beginBy,
		Timeout:         s.timeout,
		Priority:        s.priority,
		QuotaNames:      s.quotas,
		FailureLogLevel: s.level,
		Assigner:        q.rt.assigner(),
		Unique:          s.unique,
	}
	if s.retry != nil {
		name, err := q.rt.retryPolicy(s.retry)
		if err != nil {
			return persistence.JobSpec{}, nil, err
		}
		spec.RetryPolicy = name
	}
	return spec, s, nil
}

// Put puts a job running call into the queue, PENDING: a dispatcher serving the queue will
// claim and run it, at once or after BeginAfter. The returned Job is a handle to wait on,
// read, or add callbacks to. A bad call or option gives ErrInvalid and writes nothing; so
// does a handler name starting with "zasync.", which names zasync's own jobs (as for Handle).
//
// Puts into one queue from any goroutines go through the queue's actor, which sends those
// made while its last store call is on its way together, in one round trip: a program that
// puts from many goroutines at once gets close to PutMany's speed. Each put still succeeds
// or fails on its own. When ctx ends before the answer, Put returns ctx's error, and the job
// may still have been put (as when any reply is lost); a ctx ended before the call writes
// nothing. A composite is put directly, not through the queue's actor.
func (q *Queue) Put(ctx context.Context, call Call, opts ...PutOption) (*Job, error) {
	if q.rt.cfg.Tracer != nil && call.composite == nil { // a composite is traced as it is put
		end := q.rt.tracePut(ctx, q.name, []*Call{&call})
		j, err := q.put(ctx, call, opts)
		end(jobRefs(j), err)
		return j, err
	}
	return q.put(ctx, call, opts)
}

// jobRefs is the refs of jobs, for a Tracer; none for nil ones.
func jobRefs(jobs ...*Job) []Ref {
	refs := make([]Ref, 0, len(jobs))
	for _, j := range jobs {
		if j != nil {
			refs = append(refs, Ref(j.ref))
		}
	}
	return refs
}

// put is Put without the tracer.
func (q *Queue) put(ctx context.Context, call Call, opts []PutOption) (*Job, error) {
	if call.composite != nil {
		return q.putCompositeNotified(ctx, call, opts)
	}
	m, err := q.message([]Call{call}, opts)
	if err != nil {
		return nil, fmt.Errorf("put %q into %q: %w", call.Handler, q.name, err)
	}
	if isUnique(m) {
		jobs, err := q.putUnique(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("put %q into %q: %w", call.Handler, q.name, err)
		}
		return jobs[0], nil
	}
	refs, err := q.send(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("put %q into %q: %w", call.Handler, q.name, err)
	}
	return q.rt.job(refs[0]), nil
}

// PutMany puts a job for each call into the queue, all with the same options, in one round
// trip to Redis: all of them or none. The jobs are returned in the order of calls. It goes
// through the queue's actor as Put does, and may share its round trip with concurrent puts.
func (q *Queue) PutMany(ctx context.Context, calls []Call, opts ...PutOption) ([]*Job, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	if q.rt.cfg.Tracer != nil {
		calls = slices.Clone(calls)
		ptrs := make([]*Call, len(calls))
		for i := range calls {
			ptrs[i] = &calls[i]
		}
		end := q.rt.tracePut(ctx, q.name, ptrs)
		jobs, err := q.putMany(ctx, calls, opts)
		end(jobRefs(jobs...), err)
		return jobs, err
	}
	return q.putMany(ctx, calls, opts)
}

// putMany is PutMany without the tracer.
func (q *Queue) putMany(ctx context.Context, calls []Call, opts []PutOption) ([]*Job, error) {
	m, err := q.message(calls, opts)
	if err != nil {
		return nil, fmt.Errorf("put %d jobs into %q: %w", len(calls), q.name, err)
	}
	if isUnique(m) {
		jobs, err := q.putUnique(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("put %d jobs into %q: %w", len(calls), q.name, err)
		}
		return jobs, nil
	}
	refs, err := q.send(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("put %d jobs into %q: %w", len(calls), q.name, err)
	}
	jobs := make([]*Job, len(refs))
	for i, r := range refs {
		jobs[i] = q.rt.job(r)
	}
	return jobs, nil
}

// putCompositeNotified puts a composite directly, and has its completion notified if the
// options ask for it.
func (q *Queue) putCompositeNotified(ctx context.Context, call Call, opts []PutOption) (*Job, error) {
	base, s, err := q.settings(opts)
	if err == nil && s.notify != nil && q.rt.isDetached {
		err = errNotifyDetached
	}
	if err == nil && s.unique != nil {
		err = invalidf("a composite cannot be put with Unique")
	}
	if err != nil {
		return nil, fmt.Errorf("put %q into %q: %w", call.Handler, q.name, err)
	}
	call.Meta = inherit(s.meta, call.Meta)
	end := q.rt.tracePut(ctx, q.name, []*Call{&call})
	job, err := q.putComposite(ctx, call, base)
	end(jobRefs(job), err)
	if err != nil {
		return nil, err
	}
	q.rt.metrics.puts(q.name, 1)
	if s.notify != nil {
		if root, err := q.rt.actorRoot(); err == nil {
			q.rt.notifyOnCompletion(root.System(), job.ref, s.notify)
		}
	}
	return job, nil
}

// errNotifyDetached refuses what needs a runtime's actors (Notify, PID) where there are
// none: in a handler whose context carries no runtime of the program's own.
var errNotifyDetached = invalidf("no runtime's actors here: this handler's context carries no runtime of the program's own")

// send puts m through the queue's actor, or directly into the store for a runtime that
// owns no actors (see detached).
func (q *Queue) send(ctx context.Context, m *messages.Put) ([]persistence.Ref, error) {
	if q.rt.isDetached {
		return q.putDirect(ctx, m)
	}
	qa, err := q.rt.queueActor(q.name)
	if err != nil {
		return nil, err
	}
	return qa.Put(ctx, m)
}

// putDirect puts m with one store call, for a detached runtime.
func (q *Queue) putDirect(ctx context.Context, m *messages.Put) ([]persistence.Ref, error) {
	if m.Notify != nil {
		return nil, errNotifyDetached
	}
	recs, err := q.rt.store.PutMany(ctx, q.name, m.Specs)
	if err != nil {
		return nil, err
	}
	refs := make([]persistence.Ref, len(recs))
	for i, r := range recs {
		refs[i] = r.Ref
	}
	return refs, nil
}

// PID returns the PID of the queue's actor, which puts the jobs of this process into the
// queue, starting it if it does not run yet: a program's actor puts a job by sending it the
// *messages.Put that Queue.PutMessage builds. Only actors of the actor system zasync's root lives in
// (Config.ActorSystem) can reach it. ErrClosed once the runtime is closed; ErrInvalid for a
// bad queue name.
func (q *Queue) PID() (*actor.PID, error) {
	qa, err := q.rt.queueActor(q.name)
	if err != nil {
		return nil, fmt.Errorf("queue %q: %w", q.name, err)
	}
	return qa.PID(), nil
}

// PutMessage returns the message that puts a job running call into the queue with opts, for
// a program's actor to send to the queue's actor (PID) with Request, so that the answer comes
// back to the sender. The queue actor answers the sender with a *messages.PutDone (the job's
// ref in Jobs[0], or Err), and, with the Notify option, the job's outcome comes as a
// *messages.JobCompleted at the PID Notify names once the job completes. The messages of
// this conversation are documented in package messages
// (github.com/zasync/zasync/messages); their refs convert to a Ref with Ref(done.Jobs[0]). The put is made as
// Queue.Put makes it, coalesced with the other puts of this process into the queue; the
// actor is never blocked while it waits. A bad call or option gives ErrInvalid, and so does
// a composite call (Queue.Put puts those). A message is for one send: the queue actor
// reads it after it is sent.
//
// If the runtime is closed before the queue actor has sent the put to the store, the put is
// not made and is answered with ErrClosed, unless the message reaches the actor after it has
// stopped: then it is not answered at all (a sender that must know waits with a timeout).
func (q *Queue) PutMessage(call Call, opts ...PutOption) (*messages.Put, error) {
	m, err := q.message([]Call{call}, opts)
	if err != nil {
		return nil, fmt.Errorf("put %q into %q: %w", call.Handler, q.name, err)
	}
	return m, nil
}

// QuotaInfo describes a quota: its size and the jobs holding its slots.
type QuotaInfo struct {
	// Name is the quota's name in its queue.
	Name string
	// Size is how many jobs naming it may run at once.
	Size int
	// Holders are the ids of the jobs holding a slot.
	Holders []string
}

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
	return (*QuotaInfo)(info), nil
}

// Quotas reads every quota of the queue, by name: sizes and the jobs holding them.
func (q *Queue) Quotas(ctx context.Context) ([]*QuotaInfo, error) {
	names, err := q.rt.store.QuotaNames(ctx, q.name)
	if err != nil {
		return nil, fmt.Errorf("quotas of %q: %w", q.name, err)
	}
	slices.Sort(names)
	out := make([]*QuotaInfo, 0, len(names))
	for _, n := range names {
		info, err := q.rt.store.Quota(ctx, q.name, n)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("quotas of %q: %w", q.name, err)
		}
		out = append(out, (*QuotaInfo)(info))
	}
	return out, nil
}
