package runtime

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// retryErrors is a user policy that runs a job again, at once, whatever its handler's error.
type retryErrors struct{ RetryPolicy }

func (retryErrors) Name() string                         { return "RetryErrors" }
func (retryErrors) JobError(error, RetryCounts) Decision { return RetryNow() }

// metricValue gathers g and returns the value of the sample of name whose labels include
// labels (a counter's or gauge's value, a histogram's sample count), and whether there is one.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// histogramSum returns the sum of the samples of histogram name with labels.
func histogramSum(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && hasLabels(m, labels) && m.Histogram != nil {
				return m.GetHistogram().GetSampleSum()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}

// waitMetric waits until the sample of name with labels has value want.
func waitMetric(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	eventually(t, name+" reaching its value", func() bool {
		v, ok := metricValue(t, g, name, labels)
		return ok && v == want
	})
}

// The counters move with what the runtime does, the poll histogram fills, and the gauges
// read the queue and the dispatchers from Redis.
func TestMetrics(t *testing.T) {
	t.Parallel()
	uuid := "metrics-" + t.Name()
	rt := newRuntime(t, Config{
		UUID:          uuid,
		Queues:        []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 3}}}},
		PollInterval:  50 * time.Millisecond,
		PingInterval:  time.Second,
		RetryPolicies: []RetryPolicy{retryErrors{NeverRetry}},
	})
	g := rt.Metrics()
	if g == nil {
		t.Fatal("a runtime with its own registry has no gatherer")
	}
	q := map[string]string{"queue": DefaultQueue}
	qa := map[string]string{"queue": DefaultQueue, "agent": "main"}
	// Before anything happened the served queue's series exist, at zero.
	for _, name := range []string{"zasync_jobs_put_total", "zasync_jobs_succeeded_total", "zasync_jobs_failed_total", "zasync_jobs_interrupted_total"} {
		if v, ok := metricValue(t, g, name, q); !ok || v != 0 {
			t.Fatalf("%s before any put: %v, %v", name, v, ok)
		}
	}
	if v, ok := metricValue(t, g, "zasync_jobs_claimed_total", qa); !ok || v != 0 {
		t.Fatalf("claimed before any claim: %v, %v", v, ok)
	}

	var flakyCalls atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	rt.Handle("add", Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil }))
	rt.Handle("boom", Func0(func(context.Context) (int, error) { return 0, errors.New("boom") }))
	rt.Handle("flaky", Func0(func(context.Context) (int, error) {
		if flakyCalls.Add(1) == 1 {
			return 0, errors.New("not yet")
		}
		return 7, nil
	}))
	rt.Handle("block", Func0(func(context.Context) (int, error) {
		close(started)
		<-release
		return 1, nil
	}))
	if err := rt.Start(testCtx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		rt.Stop(context.Background())
	})

	add := mustPut(t, rt, NewCall("add", 40, 2))
	boom := mustPut(t, rt, NewCall("boom"), Retry(NeverRetry))
	flaky := mustPut(t, rt, NewCall("flaky"), Retry(retryErrors{}))
	mustPut(t, rt, NewCall("add", 1, 1), BeginIn(time.Hour)) // scheduled, never claimed here
	if n := waitInt(t, add); n != 42 {
		t.Fatalf("add: %d", n)
	}
	if n := waitInt(t, flaky); n != 7 {
		t.Fatalf("flaky: %d", n)
	}
	if out, err := boom.Wait(testCtx(t)); err != nil || out.Failure == nil {
		t.Fatalf("boom: %+v, %v", out, err)
	}

	waitMetric(t, g, "zasync_jobs_put_total", q, 4)
	waitMetric(t, g, "zasync_jobs_claimed_total", qa, 3)
	waitMetric(t, g, "zasync_jobs_succeeded_total", q, 2)
	waitMetric(t, g, "zasync_jobs_failed_total", q, 1)
	waitMetric(t, g, "zasync_jobs_retried_total", map[string]string{"queue": DefaultQueue, "reason": RetryReasonError}, 1)
	if v, _ := metricValue(t, g, "zasync_jobs_retried_total", map[string]string{"queue": DefaultQueue, "reason": RetryReasonCommit}); v != 0 {
		t.Errorf("commit retries: %v", v)
	}
	for _, name := range []string{"zasync_jobs_interrupted_total", "zasync_jobs_reassigned_total"} {
		if v, _ := metricValue(t, g, name, q); v != 0 {
			t.Errorf("%s: %v", name, v)
		}
	}
	eventually(t, "polls in the histogram", func() bool {
		v, ok := metricValue(t, g, "zasync_poll_duration_seconds", nil)
		return ok && v > 0
	})

	// The gauges: one job scheduled for later, nothing due, nothing held.
	waitMetric(t, g, "zasync_queue_active_jobs", q, 0)
	for name, want := range map[string]float64{"zasync_queue_pending_jobs": 1, "zasync_queue_scheduled_jobs": 1, "zasync_queue_due_jobs": 0} {
		if v, ok := metricValue(t, g, name, q); !ok || v != want {
			t.Errorf("%s = %v, %v; want %v", name, v, ok, want)
		}
	}
	ping := map[string]string{"queue": DefaultQueue, "uuid": uuid}
	if v, ok := metricValue(t, g, "zasync_dispatcher_last_ping_age_seconds", ping); !ok || v < 0 || v > time.Minute.Seconds() {
		t.Errorf("ping age of %s: %v, %v", uuid, v, ok)
	}
	if v, ok := metricValue(t, g, "zasync_dispatcher_dead", ping); !ok || v != 0 {
		t.Errorf("%s dead: %v, %v", uuid, v, ok)
	}

	// A running job is active in the queue and running here.
	b := mustPut(t, rt, NewCall("block"))
	<-started
	waitMetric(t, g, "zasync_queue_active_jobs", q, 1)
	waitMetric(t, g, "zasync_running_jobs", qa, 1)
	close(release)
	released = true
	waitInt(t, b)
	waitMetric(t, g, "zasync_running_jobs", qa, 0)
	waitMetric(t, g, "zasync_jobs_succeeded_total", q, 3)
	// Every stored outcome of a job that ran is timed: four so far (add, boom, flaky, block).
	for _, name := range []string{"zasync_job_run_seconds", "zasync_job_wait_seconds"} {
		waitMetric(t, g, name, q, 4)
	}
	if sum := histogramSum(t, g, "zasync_job_run_seconds", q); sum <= 0 {
		t.Errorf("run time of the jobs: %v s in all, want some", sum)
	}

	// A cancel and an operator's retry are counted.
	later := mustPut(t, rt, NewCall("boom"), BeginIn(time.Hour), Retry(NeverRetry))
	if _, err := later.Cancel(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := boom.Retry(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, g, "zasync_jobs_cancelled_total", q, 1)
	waitMetric(t, g, "zasync_jobs_operator_retried_total", q, 1)

	// The process's own collectors are in the runtime's registry too.
	if _, ok := metricValue(t, g, "go_goroutines", nil); !ok {
		t.Error("no go_goroutines in the runtime's registry")
	}
}

// A job taken from a run (its dispatcher presumed dead, its agent cleaned) counts as
// interrupted where its handleInterrupt job runs, and the run that lost it as reassigned.
func TestMetricsInterruptedAndReassigned(t *testing.T) {
	t.Parallel()
	uuid := "metrics-" + t.Name()
	rt := newRuntime(t, Config{
		UUID:         uuid,
		Queues:       []QueueConfig{{Name: DefaultQueue, Agents: []AgentConfig{{Name: "main", Size: 3}}}},
		PollInterval: 50 * time.Millisecond, PingInterval: time.Second, PingDeathInterval: time.Minute,
	})
	var calls atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	rt.Handle("hold", Func0(func(context.Context) (int, error) {
		if calls.Add(1) == 1 { // the first run holds on; the run after the interruption does not
			close(started)
			<-release
			return 1, nil
		}
		return 2, nil
	}))
	if err := rt.Start(testCtx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		rt.Stop(context.Background())
	})
	j := mustPut(t, rt, NewCall("hold"))
	<-started
	// What a sibling does to a dispatcher it finds dead: the job goes to a handleInterrupt job.
	// A ping of the dispatcher may reactivate it between the deactivation and the cleaning,
	// which then refuses to take jobs from a live dispatcher: do it again, as the next
	// sibling's check would.
	report, err := rt.store.Deactivate(testCtx(t), DefaultQueue, uuid)
	for deadline := time.Now().Add(30 * time.Second); errors.Is(err, persistence.ErrActivated) && time.Now().Before(deadline); {
		report, err = rt.store.Deactivate(testCtx(t), DefaultQueue, uuid)
	}
	if err != nil || len(report.Interrupted) != 1 {
		t.Fatalf("Deactivate: %+v, %v", report, err)
	}
	// The dispatcher reactivates at its next ping, runs the handleInterrupt job, and the job
	// runs again.
	if n := waitInt(t, j); n != 2 {
		t.Fatalf("result %d, want the second run's", n)
	}
	g := rt.Metrics()
	waitMetric(t, g, "zasync_jobs_interrupted_total", map[string]string{"queue": DefaultQueue}, 1)
	// The first run ends: its commit is refused.
	close(release)
	released = true
	waitMetric(t, g, "zasync_jobs_reassigned_total", map[string]string{"queue": DefaultQueue, "agent": "main"}, 1)
	waitMetric(t, g, "zasync_jobs_succeeded_total", map[string]string{"queue": DefaultQueue}, 1)
}

// Runtimes have registries of their own by default; sharing one Registerer needs labels to
// tell them apart, and a clash fails New without leaving half the metrics registered.
func TestMetricsRegistries(t *testing.T) {
	t.Parallel()
	a := newRuntime(t, Config{})
	b := newRuntime(t, Config{})
	if a.Metrics() == nil || b.Metrics() == nil || a.Metrics() == b.Metrics() {
		t.Fatal("two runtimes do not have registries of their own")
	}

	plain := prometheus.NewRegistry()
	c := newRuntime(t, Config{Metrics: plain})
	if c.Metrics() != prometheus.Gatherer(plain) {
		t.Fatal("Metrics is not the registry given")
	}
	if _, err := New(Config{Metrics: plain}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a second runtime on the same registry: %v", err)
	}
	// A clash on a metric registered late leaves none of the earlier ones behind.
	taken := prometheus.NewRegistry()
	taken.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "zasync_poll_duration_seconds", Help: "taken"}))
	if _, err := New(Config{Metrics: taken}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("New on a registry where a name is taken: %v", err)
	}
	if v, ok := metricValue(t, taken, "zasync_jobs_put_total", nil); ok {
		t.Fatalf("a failed New left its counters registered (%v)", v)
	}

	shared := prometheus.NewRegistry()
	for name, puts := range map[string]int{"d": 1, "e": 2} {
		rt := newRuntime(t, Config{Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"runtime": name}, shared)})
		if rt.Metrics() != nil {
			t.Fatal("a Registerer that is not a Gatherer gives a gatherer")
		}
		calls := make([]Call, puts)
		for i := range calls {
			calls[i] = NewCall("x", i)
		}
		if _, err := rt.Queue(DefaultQueue).PutMany(testCtx(t), calls); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]float64{"d": 1, "e": 2} {
		if v, ok := metricValue(t, shared, "zasync_jobs_put_total", map[string]string{"queue": DefaultQueue, "runtime": name}); !ok || v != want {
			t.Errorf("puts of %s: %v, %v; want %v", name, v, ok, want)
		}
	}
}

// When Redis does not answer, gathering reports the gauges' error and still gives the
// counters.
func TestMetricsGaugesFail(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	rt := newRuntime(t, Config{Redis: c})
	m.Close() // Redis goes away
	mfs, err := rt.Metrics().Gather()
	if err == nil {
		t.Fatal("gathering the gauges of a closed runtime succeeded")
	}
	for _, mf := range mfs {
		if mf.GetName() == "zasync_jobs_put_total" {
			return
		}
	}
	t.Fatal("the counters are missing when the gauges fail")
}
