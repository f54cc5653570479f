package runtime

import (
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

func TestPutOptions(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{RetryPolicies: []RetryPolicy{customPolicy{NeverRetry, "Custom"}}})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	for _, name := range []string{"db", "api"} {
		if err := q.CreateQuota(ctx, name, 2); err != nil {
			t.Fatalf("CreateQuota: %v", err)
		}
	}
	later := time.Date(2100, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600))

	tests := []struct {
		name  string
		opts  []PutOption
		check func(t *testing.T, rec *JobRecord)
	}{
		{"defaults", nil, func(t *testing.T, rec *JobRecord) {
			if rec.Status != StatusPending || rec.RetryPolicy != "RetryCommonFourTimes" || rec.FailureLogLevel != slog.LevelError ||
				rec.BeginBy != 0 || len(rec.QuotaNames) != 0 || rec.Parent != "" {
				t.Errorf("record %+v", rec)
			}
			if d := time.Since(rec.BeginAfter); d < -time.Minute || d > time.Minute {
				t.Errorf("begin_after %s, want about now", rec.BeginAfter)
			}
		}},
		{"BeginAfter", []PutOption{BeginAfter(later)}, func(t *testing.T, rec *JobRecord) {
			if want := later.UTC().Truncate(time.Microsecond); !rec.BeginAfter.Equal(want) || rec.BeginAfter.Location() != time.UTC {
				t.Errorf("begin_after %s, want %s", rec.BeginAfter, want)
			}
		}},
		{"BeginIn", []PutOption{BeginIn(time.Hour)}, func(t *testing.T, rec *JobRecord) {
			if d := time.Until(rec.BeginAfter); d < 59*time.Minute || d > 61*time.Minute {
				t.Errorf("begin_after %s is %s away, want about an hour", rec.BeginAfter, d)
			}
		}},
		{"the last of BeginIn and BeginAfter wins", []PutOption{BeginIn(time.Hour), BeginAfter(later)}, func(t *testing.T, rec *JobRecord) {
			if !rec.BeginAfter.Equal(later.Truncate(time.Microsecond)) {
				t.Errorf("begin_after %s, want %s", rec.BeginAfter, later)
			}
		}},
		{"BeginBy", []PutOption{BeginBy(5 * time.Minute)}, func(t *testing.T, rec *JobRecord) {
			if rec.BeginBy != 5*time.Minute {
				t.Errorf("begin_by %s", rec.BeginBy)
			}
		}},
		{"Quotas", []PutOption{Quotas("db", "api")}, func(t *testing.T, rec *JobRecord) {
			if !slices.Equal(rec.QuotaNames, []string{"db", "api"}) {
				t.Errorf("quota names %v", rec.QuotaNames)
			}
		}},
		{"Retry built in", []PutOption{Retry(NeverRetry)}, func(t *testing.T, rec *JobRecord) {
			if rec.RetryPolicy != "NeverRetry" {
				t.Errorf("retry policy %s", rec.RetryPolicy)
			}
		}},
		{"Retry registered", []PutOption{Retry(customPolicy{NeverRetry, "Custom"})}, func(t *testing.T, rec *JobRecord) {
			if rec.RetryPolicy != "Custom" {
				t.Errorf("retry policy %s", rec.RetryPolicy)
			}
		}},
		{"FailureLevel", []PutOption{FailureLevel(slog.LevelWarn)}, func(t *testing.T, rec *JobRecord) {
			if rec.FailureLogLevel != slog.LevelWarn {
				t.Errorf("failure level %s", rec.FailureLogLevel)
			}
		}},
		{"all together", []PutOption{BeginAfter(later), BeginBy(time.Second), Quotas("api"), Retry(RetryCommonForever), FailureLevel(LevelCritical)},
			func(t *testing.T, rec *JobRecord) {
				if !rec.BeginAfter.Equal(later.Truncate(time.Microsecond)) || rec.BeginBy != time.Second || !slices.Equal(rec.QuotaNames, []string{"api"}) ||
					rec.RetryPolicy != "RetryCommonForever" || rec.FailureLogLevel != LevelCritical {
					t.Errorf("record %+v", rec)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A context of its own: a parallel subtest may start long after its parent's
			// context was made, once a slot is free.
			ctx := testCtx(t)
			job, err := q.Put(ctx, NewCall("work", 1).Kwarg("k", "v"), tt.opts...)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if job.Queue().Name() != DefaultQueue || job.ID() == "" || job.Ref() != (Ref{Queue: DefaultQueue, ID: job.ID()}) ||
				job.String() != DefaultQueue+"/"+job.ID() {
				t.Fatalf("handle %v: queue %s, id %s", job, job.Queue().Name(), job.ID())
			}
			rec := mustInfo(t, job)
			if rec.Call.String() != `work(1, k="v")` {
				t.Errorf("call %s", rec.Call.String())
			}
			tt.check(t, rec)
		})
	}
}

func TestPutErrors(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	tests := []struct {
		name  string
		queue string
		call  Call
		opts  []PutOption
		want  error
		text  string
	}{
		{"unregistered retry policy", "default", NewCall("f"), []PutOption{Retry(customPolicy{NeverRetry, "Unknown"})}, ErrInvalid, `retry policy "Unknown" is not registered`},
		{"nil retry policy", "default", NewCall("f"), []PutOption{Retry(nil)}, ErrInvalid, "nil retry policy"},
		{"negative BeginIn", "default", NewCall("f"), []PutOption{BeginIn(-time.Second)}, ErrInvalid, "negative BeginIn"},
		{"negative BeginBy", "default", NewCall("f"), []PutOption{BeginBy(-time.Second)}, ErrInvalid, "negative begin_by"},
		{"unknown quota", "default", NewCall("f"), []PutOption{Quotas("nope")}, ErrUnknownQuota, "nope"},
		{"quota twice", "default", NewCall("f"), []PutOption{Quotas("a", "a")}, ErrInvalid, "given twice"},
		{"unmarshalable argument", "default", NewCall("f", make(chan int)), nil, ErrInvalid, `argument 0 of "f"`},
		{"empty handler", "default", NewCall(""), nil, ErrInvalid, "empty handler name"},
		{"bad queue name", "a b", NewCall("f"), nil, ErrInvalid, "queue name"},
		// Past year 294,247 the microseconds since 1970 wrapped round into the past: due at once.
		{"BeginAfter in year 294,248", "default", NewCall("f"), []PutOption{BeginAfter(time.Date(294248, 1, 1, 0, 0, 0, 0, time.UTC))}, ErrInvalid, "begin_after 294248-01-01T00:00:00Z is out of range"},
		{"BeginAfter past year 9999", "default", NewCall("f"), []PutOption{BeginAfter(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))}, ErrInvalid, "out of range"},
		{"BeginAfter before year 1", "default", NewCall("f"), []PutOption{BeginAfter(time.Date(-300000, 1, 1, 0, 0, 0, 0, time.UTC))}, ErrInvalid, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := rt.Queue(tt.queue).Put(ctx, tt.call, tt.opts...)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) || job != nil {
				t.Fatalf("Put = %v, %v; want %v mentioning %q", job, err, tt.want, tt.text)
			}
			if _, err := rt.Queue(tt.queue).PutMany(ctx, []Call{NewCall("ok"), tt.call}, tt.opts...); !errors.Is(err, tt.want) {
				t.Fatalf("PutMany: %v, want %v", err, tt.want)
			}
		})
	}
	stats, err := rt.store.Stats(ctx, DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Due+stats.Scheduled != 0 {
		t.Fatalf("failed puts wrote jobs: %+v", stats)
	}
}

func TestPutMany(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	q := rt.Queue("batch")
	later := time.Now().Add(time.Hour)
	calls := []Call{NewCall("a", 1), NewCall("b", 2), NewCall("c").Kwarg("k", 3)}
	jobs, err := q.PutMany(ctx, calls, BeginAfter(later), Retry(NeverRetry))
	if err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	if len(jobs) != len(calls) {
		t.Fatalf("%d jobs for %d calls", len(jobs), len(calls))
	}
	seen := map[string]bool{}
	for i, job := range jobs {
		rec := mustInfo(t, job)
		if seen[job.ID()] {
			t.Fatalf("id %s given twice", job.ID())
		}
		seen[job.ID()] = true
		if rec.Queue != "batch" || rec.Call.String() != calls[i].String() || rec.Status != StatusPending ||
			rec.RetryPolicy != "NeverRetry" || !rec.BeginAfter.Equal(later.UTC().Truncate(time.Microsecond)) {
			t.Errorf("job %d: %+v", i, rec)
		}
	}
	stats, err := rt.store.Stats(ctx, "batch")
	if err != nil || stats.Scheduled != 3 {
		t.Fatalf("stats %+v, %v; want 3 scheduled", stats, err)
	}

	if jobs, err := q.PutMany(ctx, nil); err != nil || jobs != nil {
		t.Fatalf("PutMany(nil) = %v, %v", jobs, err)
	}
}

func TestQuotas(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	q := rt.Queue(DefaultQueue)
	if err := q.CreateQuota(ctx, "db", 2); err != nil {
		t.Fatalf("CreateQuota: %v", err)
	}
	if err := q.CreateQuota(ctx, "db", 2); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CreateQuota twice: %v, want ErrInvalid", err)
	}
	if err := q.CreateQuota(ctx, "zero", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CreateQuota of size 0: %v, want ErrInvalid", err)
	}
	if info, err := q.Quota(ctx, "db"); err != nil || info.Size != 2 || info.Name != "db" {
		t.Fatalf("Quota = %+v, %v", info, err)
	}
	if err := q.ResizeQuota(ctx, "db", 5); err != nil {
		t.Fatalf("ResizeQuota: %v", err)
	}
	if info, err := q.Quota(ctx, "db"); err != nil || info.Size != 5 {
		t.Fatalf("Quota after resize = %+v, %v", info, err)
	}
	if _, err := q.Put(ctx, NewCall("f"), Quotas("db")); err != nil {
		t.Fatalf("Put naming the quota: %v", err)
	}
	if err := q.RemoveQuota(ctx, "db"); err != nil {
		t.Fatalf("RemoveQuota: %v", err)
	}
	if _, err := q.Quota(ctx, "db"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Quota after remove: %v, want ErrNotFound", err)
	}
	if _, err := q.Put(ctx, NewCall("f"), Quotas("db")); !errors.Is(err, ErrUnknownQuota) {
		t.Fatalf("Put naming a removed quota: %v, want ErrUnknownQuota", err)
	}
	if err := q.ResizeQuota(ctx, "db", 1); !errors.Is(err, persistence.ErrNotFound) && !errors.Is(err, ErrUnknownQuota) {
		t.Fatalf("ResizeQuota of a removed quota: %v", err)
	}
}

func TestQueueStats(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	q := rt.Queue("counted")
	if _, err := q.Put(ctx, NewCall("now")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Put(ctx, NewCall("later"), BeginIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil || st.Due != 1 || st.Scheduled != 1 || st.Held != 0 {
		t.Fatalf("Stats: %+v %v, want one due and one scheduled", st, err)
	}
}

// The latest begin_after accepted is stored as given and keeps the job scheduled: it does
// not wrap round into the past.
func TestPutBeginAfterMaxTime(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	job, err := rt.Queue(DefaultQueue).Put(ctx, NewCall("f"), BeginAfter(persistence.MaxTime))
	if err != nil {
		t.Fatal(err)
	}
	s, err := job.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.BeginAfter.Equal(persistence.MaxTime) {
		t.Errorf("begin_after %s, want %s", s.BeginAfter, persistence.MaxTime)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Errorf("the summary does not marshal: %v", err)
	}
	stats, err := rt.store.Stats(ctx, DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Due != 0 || stats.Scheduled != 1 {
		t.Errorf("stats %+v, want the job scheduled, not due", stats)
	}
}

// No public path stores a call of zasync's own handlers: such a job runs as nothing the
// program meant (a system job without its target held its agent's slot for good). Each
// path refuses the name with ErrInvalid, says why, and writes nothing.
func TestReservedHandlerNamesRefused(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	ctx := testCtx(t)
	parent, err := rt.Queue("other").Put(ctx, NewCall("f"))
	if err != nil {
		t.Fatal(err)
	}
	composite, err := rt.Queue("other").Put(ctx, Serial(NewCall("a")))
	if err != nil {
		t.Fatal(err)
	}
	before, err := composite.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok := NewCall("ok")
	for _, name := range []string{persistence.HandlerFail, persistence.HandlerHandleInterrupt, persistence.HandlerResumeCallbacks,
		persistence.HandlerResumeOuter, "zasync.serial", "zasync.collect", "zasync.", "zasync.anything"} {
		bad := NewCall(name, 1)
		paths := map[string]func() error{
			"Put": func() error { _, err := rt.Queue(DefaultQueue).Put(ctx, bad); return err },
			"PutMany": func() error {
				_, err := rt.Queue(DefaultQueue).PutMany(ctx, []Call{ok, bad})
				return err
			},
			"Serial part":        func() error { _, err := rt.Queue(DefaultQueue).Put(ctx, Serial(ok, bad)); return err },
			"Parallel part":      func() error { _, err := rt.Queue(DefaultQueue).Put(ctx, Parallel(Serial(ok, bad))); return err },
			"Postprocess":        func() error { _, err := rt.Queue(DefaultQueue).Put(ctx, Serial(ok, Postprocess(bad))); return err },
			"AddCallback":        func() error { _, err := parent.AddCallback(ctx, bad); return err },
			"AddCallbacks":       func() error { _, err := parent.AddCallbacks(ctx, &ok, &bad); return err },
			"AddSubJob":          func() error { _, err := AddSubJob(ctx, composite, bad); return err },
			"Put a Call literal": func() error { _, err := rt.Queue(DefaultQueue).Put(ctx, Call{Handler: name}); return err },
		}
		for path, put := range paths {
			err := put()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "reserved for zasync") ||
				!strings.Contains(err.Error(), strconv.Quote(name)) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s of %s: %v, want ErrInvalid saying the name is reserved, on one line", path, name, err)
			}
		}
	}
	stats, err := rt.store.Stats(ctx, DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Due+stats.Scheduled != 0 {
		t.Fatalf("refused puts wrote jobs: %+v", stats)
	}
	if rec, err := parent.Info(ctx); err != nil || len(rec.Callbacks) != 0 {
		t.Fatalf("refused callbacks were added: %v %v", rec.Callbacks, err)
	}
	if after, err := composite.Info(ctx); err != nil || len(after.Children) != len(before.Children) {
		t.Fatalf("a refused sub-job was added: %v, had %v (%v)", after.Children, before.Children, err)
	}
}
