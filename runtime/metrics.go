package runtime

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/zasync/zasync/actors"
)

// Prometheus metrics of a runtime. Counters count what this process did (puts, claims,
// outcomes, retries, interruptions, reassignments) and are labelled by queue, and by agent
// where the event belongs to one; job ids never become labels. Gauges are read from Redis
// when the metrics are gathered, with a short deadline, for the queues the runtime serves
// (Config.Queues): so every process serving a queue reports the same queue gauges, and its
// own running jobs.
//
// Metric names:
//
//	zasync_jobs_put_total{queue}                         counter
//	zasync_jobs_claimed_total{queue,agent}               counter
//	zasync_jobs_succeeded_total{queue}                   counter
//	zasync_jobs_failed_total{queue}                      counter
//	zasync_jobs_retried_total{queue,reason}              counter (reason: error, commit)
//	zasync_jobs_interrupted_total{queue}                 counter
//	zasync_jobs_reassigned_total{queue,agent}            counter
//	zasync_jobs_cancelled_total{queue}                   counter (Cancel, by this process)
//	zasync_jobs_operator_retried_total{queue}            counter (Runtime.Retry, by this process)
//	zasync_poll_duration_seconds                         histogram
//	zasync_job_run_seconds{queue}                        histogram (start to stored outcome)
//	zasync_job_wait_seconds{queue}                       histogram (due to start)
//	zasync_queue_pending_jobs{queue}                     gauge (due + scheduled)
//	zasync_queue_due_jobs{queue}                         gauge
//	zasync_queue_scheduled_jobs{queue}                   gauge
//	zasync_queue_active_jobs{queue}                      gauge (held by agents)
//	zasync_running_jobs{queue,agent}                     gauge (in this process)
//	zasync_dispatcher_last_ping_age_seconds{queue,uuid}  gauge
//	zasync_dispatcher_dead{queue,uuid}                   gauge (0 or 1)

// MetricsCollectTimeout bounds the Redis reads of one gathering of the gauges. A read that
// does not finish in time makes the gauges it would have given missing from that gathering
// (the gatherer reports the error), never a scrape that hangs.
const MetricsCollectTimeout = 5 * time.Second

// Retry reasons, the values of the reason label of zasync_jobs_retried_total.
const (
	// RetryReasonError: the handler failed and its retry policy asked for another attempt.
	RetryReasonError = "error"
	// RetryReasonCommit: storing the outcome failed and the retry policy asked to try again.
	RetryReasonCommit = "commit"
	// RetryReasonInterrupt: the job was interrupted (its dispatcher stopped or died) and its
	// retry policy asked for another attempt.
	RetryReasonInterrupt = "interrupt"
)

// metrics are a runtime's metrics. Its methods are safe on a nil *metrics (a runtime made
// without New, as JobFrom's detached one, counts nothing).
type metrics struct {
	gatherer prometheus.Gatherer // what Runtime.Metrics returns; nil if the Registerer is not one

	put, claimed, succeeded, failed, retried, interrupted, reassigned *prometheus.CounterVec
	cancels, operatorRetries                                          *prometheus.CounterVec
	pollDuration                                                      prometheus.Histogram
	runTime, waitTime                                                 *prometheus.HistogramVec

	// The counters counted once per job, by queue, found without hashing their label: a
	// lookup in a CounterVec was a noticeable part of a put's own CPU.
	putBy, succeededBy byQueue
	// timings keeps each queue's run and wait histograms (queueTimings), for the same reason.
	timings sync.Map
}

// queueTimings are one queue's run and wait histograms.
type queueTimings struct{ run, wait prometheus.Observer }

// timingsOf returns queue's histograms.
func (m *metrics) timingsOf(queue string) *queueTimings {
	if t, ok := m.timings.Load(queue); ok {
		return t.(*queueTimings)
	}
	t := &queueTimings{run: m.runTime.WithLabelValues(queue), wait: m.waitTime.WithLabelValues(queue)}
	m.timings.Store(queue, t)
	return t
}

// byQueue keeps the counters of a CounterVec labelled by queue alone.
type byQueue struct {
	vec *prometheus.CounterVec
	m   sync.Map // queue name → prometheus.Counter
}

func (b *byQueue) of(queue string) prometheus.Counter {
	if c, ok := b.m.Load(queue); ok {
		return c.(prometheus.Counter)
	}
	c := b.vec.WithLabelValues(queue)
	b.m.Store(queue, c)
	return c
}

// newMetrics makes rt's metrics and registers them with reg, or with a registry of their own
// (with the Go and process collectors) when reg is nil.
func newMetrics(rt *Runtime, reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "zasync", Name: name, Help: help}, labels)
	}
	m := &metrics{
		put: counter("jobs_put_total",
			"Jobs this process put into a queue (Queue.Put and PutMany; a composite counts once).", "queue"),
		claimed: counter("jobs_claimed_total",
			"Jobs this process's agents claimed, zasync's own system jobs included.", "queue", "agent"),
		succeeded: counter("jobs_succeeded_total",
			"Jobs whose success this process stored (callbacks and composites included, zasync's own system jobs not).", "queue"),
		failed: counter("jobs_failed_total",
			"Jobs whose failure this process stored, once their retry policy gave up.", "queue"),
		retried: counter("jobs_retried_total",
			"Times a retry policy decided in this process to run a job again, by reason: error (the handler failed) or commit (storing the outcome failed).",
			"queue", "reason"),
		interrupted: counter("jobs_interrupted_total",
			"Interrupted jobs (found running in the agent of a dispatcher that stopped or died) whose recovery this process ran.", "queue"),
		reassigned: counter("jobs_reassigned_total",
			"Runs of this process that lost their job to another dispatcher: their fenced write was refused.", "queue", "agent"),
		cancels: counter("jobs_cancelled_total",
			"Jobs this process cancelled (Runtime.Cancel, a composite's parts included).", "queue"),
		operatorRetries: counter("jobs_operator_retried_total",
			"Completed jobs this process put back to run again (Runtime.Retry).", "queue"),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "zasync", Name: "job_run_seconds",
			Help:    "How long jobs whose outcome this process stored ran: from the start of their last attempt to the stored outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 1 ms to about 70 min
		}, []string{"queue"}),
		waitTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "zasync", Name: "job_wait_seconds",
			Help:    "How long jobs whose outcome this process stored waited to start: from when they were due (put, or their begin_after) to their start.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"queue"}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "zasync", Name: "poll_duration_seconds",
			Help:    "How long this process's dispatcher took to poll: activate, ping and check its agents in every queue it serves.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to 16 s
		}),
	}
	m.putBy.vec, m.succeededBy.vec = m.put, m.succeeded
	// Series of the served queues and agents exist from the start, at zero, so that rates
	// and alerts see them before the first event.
	for _, q := range rt.cfg.Queues {
		m.put.WithLabelValues(q.Name)
		m.succeeded.WithLabelValues(q.Name)
		m.failed.WithLabelValues(q.Name)
		m.interrupted.WithLabelValues(q.Name)
		m.cancels.WithLabelValues(q.Name)
		m.timingsOf(q.Name)
		m.operatorRetries.WithLabelValues(q.Name)
		for _, reason := range []string{RetryReasonError, RetryReasonCommit, RetryReasonInterrupt} {
			m.retried.WithLabelValues(q.Name, reason)
		}
		for _, a := range q.Agents {
			m.claimed.WithLabelValues(q.Name, a.Name)
			m.reassigned.WithLabelValues(q.Name, a.Name)
		}
	}
	cs := []prometheus.Collector{m.put, m.claimed, m.succeeded, m.failed, m.retried, m.interrupted, m.reassigned,
		m.cancels, m.operatorRetries, m.pollDuration, m.runTime, m.waitTime, &gauges{rt: rt}}
	if reg == nil {
		own := prometheus.NewRegistry()
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, m.gatherer = own, own
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] { // leave the Registerer as it was
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("%w: config: Metrics: %w", ErrInvalid, err)
		}
	}
	return m, nil
}

// Metrics returns what gathers this runtime's metrics, for an HTTP handler such as
// promhttp.HandlerFor or the monitor package: by default a registry of the runtime's own
// holding zasync's metrics and the Go and process collectors; with Config.Metrics set, that
// Registerer if it is also a Gatherer (a *prometheus.Registry is), else nil.
func (rt *Runtime) Metrics() prometheus.Gatherer {
	if rt.metrics == nil {
		return nil
	}
	return rt.metrics.gatherer
}

// puts counts n jobs put into queue.
func (m *metrics) puts(queue string, n int) {
	if m != nil {
		m.putBy.of(queue).Add(float64(n))
	}
}

// cancelled counts a job cancelled.
func (m *metrics) cancelled(queue string) {
	if m != nil {
		m.cancels.WithLabelValues(queue).Inc()
	}
}

// retriedByOperator counts a completed job put back to run again.
func (m *metrics) retriedByOperator(queue string) {
	if m != nil {
		m.operatorRetries.WithLabelValues(queue).Inc()
	}
}

// Observe counts what the dispatcher's actors report.
func (m *metrics) Observe(e actors.Event) {
	if m == nil {
		return
	}
	switch e.Kind {
	case actors.EventClaimed:
		m.claimed.WithLabelValues(e.Queue, e.Agent).Add(float64(e.N))
	case actors.EventSucceeded:
		m.succeededBy.of(e.Queue).Inc()
		m.timed(e)
	case actors.EventFailed:
		m.failed.WithLabelValues(e.Queue).Inc()
		m.timed(e)
	case actors.EventRetried:
		m.retried.WithLabelValues(e.Queue, e.Reason).Inc()
	case actors.EventInterrupted:
		m.interrupted.WithLabelValues(e.Queue).Inc()
	case actors.EventReassigned:
		m.reassigned.WithLabelValues(e.Queue, e.Agent).Inc()
	case actors.EventPolled:
		m.pollDuration.Observe(e.Duration.Seconds())
	}
}

// timed records the run and wait times of an outcome's job, when it started.
func (m *metrics) timed(e actors.Event) {
	if e.Started {
		t := m.timingsOf(e.Queue)
		t.run.Observe(e.Run.Seconds())
		t.wait.Observe(e.Wait.Seconds())
	}
}

// observer returns m as the node's observer; nil when there are no metrics, so that the node
// skips the calls.
func (m *metrics) observer() actors.Observer {
	if m == nil {
		return nil
	}
	return m
}

var _ actors.Observer = (*metrics)(nil)

// gauges reads the gauges of the served queues when the metrics are gathered.
type gauges struct{ rt *Runtime }

func gaugeDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName("zasync", "", name), help, labels, nil)
}

var (
	pendingDesc = gaugeDesc("queue_pending_jobs",
		"Jobs waiting in the queue: due now or scheduled for later (read from Redis when gathered).", "queue")
	dueDesc = gaugeDesc("queue_due_jobs",
		"Jobs of the queue that may be claimed now, put-back ones included (read from Redis when gathered).", "queue")
	scheduledDesc = gaugeDesc("queue_scheduled_jobs",
		"Jobs of the queue whose begin_after is still ahead (read from Redis when gathered).", "queue")
	activeDesc = gaugeDesc("queue_active_jobs",
		"Jobs held by the agents of any dispatcher: assigned, running, running callbacks, or parked waiting for sub-jobs (read from Redis when gathered).",
		"queue")
	runningDesc = gaugeDesc("running_jobs",
		"Jobs running in this process's agents now.", "queue", "agent")
	pingAgeDesc = gaugeDesc("dispatcher_last_ping_age_seconds",
		"Seconds since each activated dispatcher of the queue last pinged, by the Redis server's clock (read from Redis when gathered).",
		"queue", "uuid")
	deadDesc = gaugeDesc("dispatcher_dead",
		"1 for an activated dispatcher of the queue that has not pinged within its ping death interval, else 0 (read from Redis when gathered).",
		"queue", "uuid")
)

// Describe sends the gauges' descriptions.
func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pendingDesc, dueDesc, scheduledDesc, activeDesc, runningDesc, pingAgeDesc, deadDesc} {
		ch <- d
	}
}

// Collect reads the gauges. A read that fails is reported as an invalid metric for the
// gauges it would have given, and the others are still sent.
func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	rt := g.rt
	ctx, cancel := context.WithTimeout(context.Background(), MetricsCollectTimeout)
	defer cancel()
	for _, q := range rt.cfg.Queues {
		for _, a := range q.Agents {
			ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(len(rt.ActiveJobIDs(q.Name, a.Name))), q.Name, a.Name)
		}
	}
	for _, q := range rt.cfg.Queues {
		st, err := rt.store.Stats(ctx, q.Name)
		if err != nil {
			err = fmt.Errorf("zasync: gather the stats of %s: %w", q.Name, err)
			for _, d := range []*prometheus.Desc{pendingDesc, dueDesc, scheduledDesc, activeDesc} {
				ch <- prometheus.NewInvalidMetric(d, err)
			}
			continue
		}
		gauge := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), q.Name)
		}
		gauge(pendingDesc, st.Due+st.Scheduled)
		gauge(dueDesc, st.Due)
		gauge(scheduledDesc, st.Scheduled)
		gauge(activeDesc, st.Held)
	}
	now, err := rt.store.Now(ctx)
	if err != nil {
		err = fmt.Errorf("zasync: gather the dispatchers' pings: %w", err)
		ch <- prometheus.NewInvalidMetric(pingAgeDesc, err)
		ch <- prometheus.NewInvalidMetric(deadDesc, err)
		return
	}
	for _, q := range rt.cfg.Queues {
		recs, err := rt.store.Dispatchers(ctx, q.Name)
		if err != nil {
			err = fmt.Errorf("zasync: gather the dispatchers of %s: %w", q.Name, err)
			ch <- prometheus.NewInvalidMetric(pingAgeDesc, err)
			ch <- prometheus.NewInvalidMetric(deadDesc, err)
			continue
		}
		for _, d := range recs {
			if !d.IsActivated() {
				continue // a dispatcher that stopped cleanly, or was found dead and cleaned
			}
			last := d.LastPing
			if last.IsZero() {
				last = d.Activated // activated, not pinged yet: the death rule counts from here
			}
			dead := 0.0
			if d.IsDead(now) {
				dead = 1
			}
			ch <- prometheus.MustNewConstMetric(pingAgeDesc, prometheus.GaugeValue, now.Sub(last).Seconds(), q.Name, d.UUID)
			ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, dead, q.Name, d.UUID)
		}
	}
}
