package monitor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/monitor"
	"github.com/zasync/zasync/runtime"
)

// newRuntime returns a Runtime for cfg, closed when the test ends: on the embedded Redis, or
// when ZASYNC_TEST_REDIS is set on that real Redis under a key prefix of its own, whose keys
// are deleted at the end.
func newRuntime(t *testing.T, cfg runtime.Config) *runtime.Runtime {
	t.Helper()
	if addr := testredis.Addr(); addr != "" && cfg.Redis == nil {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		cfg.Redis, cfg.Prefix = c, testredis.Prefix("mon")
		testredis.DeleteAtCleanup(t, addr, cfg.Prefix)
	}
	rt, err := runtime.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rt
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond (a condition, not a timing) until it holds, for at most 30 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

// client makes one connection per request, so that no idle connection outlives a test.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// get does a GET and returns the status and body.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return do(t, http.MethodGet, url)
}

func do(t *testing.T, method, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasSuffix(url, "/metrics") && ct != "application/json; charset=utf-8" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	return resp.StatusCode, body
}

// getJSON does a GET that must answer want, and decodes the body into an untyped value.
func getJSON(t *testing.T, url string, want int) any {
	t.Helper()
	status, body := get(t, url)
	if status != want {
		t.Fatalf("GET %s: %d %s, want %d", url, status, body, want)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	return v
}

// obj is a JSON object from getJSON.
func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %#v", v)
	}
	return m
}

var timeFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// isTime checks a JSON time.
func isTime(t *testing.T, what string, v any) {
	t.Helper()
	if s, ok := v.(string); !ok || !timeFormat.MatchString(s) {
		t.Errorf("%s: %#v is not a UTC time to the microsecond", what, v)
	}
}

// retryErrors runs a job again, at once, whatever its handler's error.
type retryErrors struct{ runtime.RetryPolicy }

func (retryErrors) Name() string                                         { return "RetryErrors" }
func (retryErrors) JobError(error, runtime.RetryCounts) runtime.Decision { return runtime.RetryNow() }

// Every endpoint over real HTTP, against a started runtime that ran a success, a failure, a
// job retried once, and runs a job that blocks.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	uuid := "monitor-" + t.Name()
	rt := newRuntime(t, runtime.Config{
		UUID:          uuid,
		Queues:        []runtime.QueueConfig{{Name: runtime.DefaultQueue, Agents: []runtime.AgentConfig{{Name: "main", Size: 3}}}},
		PollInterval:  50 * time.Millisecond,
		PingInterval:  time.Second,
		RetryPolicies: []runtime.RetryPolicy{retryErrors{runtime.NeverRetry}},
	})
	var flaky atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	rt.Handle("add", runtime.Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil }))
	rt.Handle("boom", runtime.Func0(func(context.Context) (int, error) { return 0, errors.New("boom <&>") }))
	rt.Handle("flaky", runtime.Func0(func(context.Context) (int, error) {
		if flaky.Add(1) == 1 {
			return 0, errors.New("not yet")
		}
		return 7, nil
	}))
	rt.Handle("block", runtime.Func0(func(context.Context) (int, error) {
		close(started)
		<-release
		return 1, nil
	}))
	srv := httptest.NewServer(monitor.New(rt))
	t.Cleanup(srv.Close)
	u := srv.URL

	// Not started: STOPPED, no uptime, no poll.
	st := obj(t, getJSON(t, u+"/status", http.StatusOK))
	if st["status"] != "STOPPED" || st["uptime"] != nil || st["time since last poll"] != nil ||
		fmt.Sprint(st["poll interval"]) != "map[seconds:0.05]" {
		t.Fatalf("status before Start: %v", st)
	}
	getJSON(t, u+"/poll", http.StatusNotFound)

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
	q := rt.Queue(runtime.DefaultQueue)
	put := func(call runtime.Call, opts ...runtime.PutOption) *runtime.Job {
		t.Helper()
		j, err := q.Put(testCtx(t), call, opts...)
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		return j
	}
	add := put(runtime.NewCall("add", 40, 2))
	boom := put(runtime.NewCall("boom"), runtime.Retry(runtime.NeverRetry))
	retried := put(runtime.NewCall("flaky"), runtime.Retry(retryErrors{}))
	for _, j := range []*runtime.Job{add, boom, retried} {
		if _, err := j.Wait(testCtx(t)); err != nil {
			t.Fatalf("Wait %s: %v", j, err)
		}
	}
	block := put(runtime.NewCall("block"))
	<-started

	// status: RUNNING, keys sorted, indented by four spaces.
	eventually(t, "RUNNING", func() bool { return obj(t, getJSON(t, u+"/status", http.StatusOK))["status"] == "RUNNING" })
	status, body := get(t, u+"/status")
	if status != http.StatusOK || !bytes.HasPrefix(body, []byte("{\n    \"poll interval\": {\n        \"seconds\": 0.05\n    },\n    \"status\": ")) {
		t.Fatalf("status body:\n%s", body)
	}
	st = obj(t, getJSON(t, u+"/status", http.StatusOK))
	if st["uuid"] != uuid || st["uptime"] == nil || st["time since last poll"] == nil {
		t.Fatalf("status: %v", st)
	}
	if v := getJSON(t, u+"/uuid", http.StatusOK); v != uuid {
		t.Errorf("uuid: %v", v)
	}
	isTime(t, "utcnow", getJSON(t, u+"/utcnow", http.StatusOK))

	// jobs: the one running (once the runs of the jobs waited for have reported their end),
	// filtered by queue and agent.
	eventually(t, "only the blocking job running", func() bool {
		return fmt.Sprint(getJSON(t, u+"/jobs", http.StatusOK)) == "["+block.ID()+"]"
	})
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"", "[" + block.ID() + "]"},
		{"?queue=default&agent=main", "[" + block.ID() + "]"},
		{"?queue=default", "[" + block.ID() + "]"},
		{"?queue=other", "[]"},
		{"?agent=other", "[]"},
	} {
		if got := fmt.Sprint(getJSON(t, u+"/jobs"+tc.query, http.StatusOK)); got != tc.want {
			t.Errorf("jobs%s: %s, want %s", tc.query, got, tc.want)
		}
	}

	// job: a success, a failure, a retried job, the running one, and an unknown one.
	var info map[string]any
	eventually(t, "the runs recorded as ended", func() bool {
		info = obj(t, getJSON(t, u+"/job/"+add.ID(), http.StatusOK))
		b := obj(t, getJSON(t, u+"/job/"+boom.ID(), http.StatusOK))
		return info["completed"] != nil && b["completed"] != nil
	})
	if info["id"] != add.ID() || info["queue"] != "default" || info["agent"] != "main" || info["call"] != "add(40, 2)" ||
		info["result"] != "42" || info["failed"] != false || info["reassigned"] != false || info["ending"] != "finished" ||
		fmt.Sprint(info["quota names"]) != "[]" || info["worker"] == "" {
		t.Errorf("job %s: %v", add.ID(), info)
	}
	isTime(t, "started", info["started"])
	isTime(t, "completed", info["completed"])
	if p, ok := info["poll id"].(float64); !ok || p < 1 {
		t.Errorf("poll id: %v", info["poll id"])
	}
	b := obj(t, getJSON(t, u+"/job/"+boom.ID(), http.StatusOK))
	if b["failed"] != true || !strings.Contains(fmt.Sprint(b["result"]), "boom <&>") {
		t.Errorf("job %s: %v", boom.ID(), b)
	}
	if status, body := get(t, u+"/job/"+boom.ID()); status != http.StatusOK || !bytes.Contains(body, []byte("boom <&>")) {
		t.Errorf("the failure is HTML-escaped in the JSON: %s", body)
	}
	r := obj(t, getJSON(t, u+"/job/"+block.ID(), http.StatusOK))
	if r["completed"] != nil || r["result"] != nil || r["ending"] != nil {
		t.Errorf("running job: %v", r)
	}
	if e := obj(t, getJSON(t, u+"/job/nope", http.StatusNotFound)); !strings.Contains(fmt.Sprint(e["error"]), "nope") {
		t.Errorf("unknown job: %v", e)
	}

	// jobstats: four runs claimed (the retried job runs once: its retry is in place).
	js := obj(t, getJSON(t, u+"/jobstats", http.StatusOK))
	if js["started"] != 4.0 || js["successful"] != 2.0 || js["failed"] != 1.0 || js["unknown"] != 0.0 {
		t.Errorf("jobstats: %v", js)
	}
	if la := obj(t, js["longest active"]); la["job"] != block.ID() || la["duration"] == nil {
		t.Errorf("longest active: %v", js["longest active"])
	}
	if js["longest failed"] == nil || js["shortest successful"] == nil {
		t.Errorf("jobstats: %v", js)
	}
	isTime(t, "statistics start", js["statistics start"])
	isTime(t, "statistics end", js["statistics end"])
	if js := obj(t, getJSON(t, u+"/jobstats?queue=other", http.StatusOK)); js["started"] != 0.0 || js["longest active"] != nil {
		t.Errorf("jobstats of another queue: %v", js)
	}
	if js := obj(t, getJSON(t, u+"/jobstats?since=1H&agent=main", http.StatusOK)); js["started"] != 4.0 {
		t.Errorf("jobstats since an hour: %v", js)
	}
	if js := obj(t, getJSON(t, u+"/jobstats?before=1H", http.StatusOK)); js["started"] != 0.0 {
		t.Errorf("jobstats before an hour ago: %v", js)
	}

	// poll and polls.
	p := obj(t, getJSON(t, u+"/poll", http.StatusOK))
	isTime(t, "poll time", p["time"])
	key := int(p["key"].(float64))
	main := obj(t, obj(t, obj(t, p["results"])["default"])["main"])
	if main["size"] != 3.0 || main["error"] != nil {
		t.Errorf("poll: %v", p)
	}
	for _, k := range []string{"active jobs", "new jobs", "len"} {
		if _, ok := main[k]; !ok {
			t.Errorf("poll: no %q in %v", k, main)
		}
	}
	if at := obj(t, getJSON(t, fmt.Sprintf("%s/poll?at=%d", u, key), http.StatusOK)); at["key"] != float64(key) {
		t.Errorf("poll at %d: %v", key, at["key"])
	}
	if key > 1 {
		if before := obj(t, getJSON(t, fmt.Sprintf("%s/poll?before=%d", u, key), http.StatusOK)); before["key"] != float64(key-1) {
			t.Errorf("poll before %d: %v", key, before["key"])
		}
	}
	if at := obj(t, getJSON(t, u+"/poll?at=0S", http.StatusOK)); at["key"].(float64) < float64(key) {
		t.Errorf("poll at now: %v", at["key"])
	}
	getJSON(t, u+"/poll?at=999999999", http.StatusNotFound)
	getJSON(t, u+"/poll?before=1H", http.StatusNotFound)

	eventually(t, "three polls", func() bool { return len(getJSON(t, u+"/polls", http.StatusOK).([]any)) == 3 })
	polls := getJSON(t, u+"/polls?count=2", http.StatusOK).([]any)
	if len(polls) != 2 || obj(t, polls[0])["key"].(float64) <= obj(t, polls[1])["key"].(float64) {
		t.Errorf("polls?count=2: not the newest two, newest first: %v", polls)
	}
	first := int(obj(t, polls[1])["key"].(float64))
	since := getJSON(t, fmt.Sprintf("%s/polls?since=%d&count=1000", u, first), http.StatusOK).([]any)
	if len(since) < 2 || obj(t, since[len(since)-1])["key"] != float64(first) {
		t.Errorf("polls since %d: %d polls, the oldest %v", first, len(since), since[len(since)-1])
	}
	if at := getJSON(t, fmt.Sprintf("%s/polls?at=%d&count=1", u, first), http.StatusOK).([]any); len(at) != 1 || obj(t, at[0])["key"] != float64(first) {
		t.Errorf("polls at %d: %v", first, at)
	}
	if now := time.Now().UTC().Format(time.RFC3339Nano); len(getJSON(t, u+"/polls?before="+now, http.StatusOK).([]any)) != 3 {
		t.Errorf("polls before now (RFC 3339)")
	}

	// Bad parameters.
	for _, path := range []string{
		"/polls?count=0", "/polls?count=x", "/polls?at=1&before=2", "/polls?at=soon", "/polls?since=-1",
		"/jobstats?bogus=1", "/status?queue=default", "/jobs?queue=a&queue=b", "/poll?since=1H", "/jobstats?since=999999999",
	} {
		e := obj(t, getJSON(t, u+path, http.StatusBadRequest))
		if s, ok := e["error"].(string); !ok || s == "" {
			t.Errorf("%s: %v", path, e)
		}
	}
	getJSON(t, u+"/nothing", http.StatusNotFound)
	if status, _ := do(t, http.MethodPost, u+"/status"); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /status: %d", status)
	}

	// The index lists the endpoints.
	idx := obj(t, getJSON(t, u+"/", http.StatusOK))
	eps := obj(t, idx["endpoints"])
	for _, ep := range []string{"/status", "/jobs?queue=&agent=", "/job/{id}", "/jobstats?at=&before=&since=&queue=&agent=",
		"/poll?at=&before=", "/polls?at=&before=&since=&count=", "/metrics"} {
		if _, ok := eps[ep]; !ok {
			t.Errorf("index: no %s in %v", ep, eps)
		}
	}

	// metrics, in the Prometheus text format.
	eventually(t, "the counters", func() bool {
		mfs := scrape(t, u+"/metrics")
		return value(mfs, "zasync_jobs_succeeded_total", "queue", "default") == 2
	})
	mfs := scrape(t, u+"/metrics")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zasync_jobs_put_total", []string{"queue", "default"}, 4},
		{"zasync_jobs_claimed_total", []string{"queue", "default", "agent", "main"}, 4},
		{"zasync_jobs_succeeded_total", []string{"queue", "default"}, 2},
		{"zasync_jobs_failed_total", []string{"queue", "default"}, 1},
		{"zasync_jobs_retried_total", []string{"queue", "default", "reason", "error"}, 1},
		{"zasync_jobs_interrupted_total", []string{"queue", "default"}, 0},
		{"zasync_jobs_reassigned_total", []string{"queue", "default", "agent", "main"}, 0},
		{"zasync_queue_pending_jobs", []string{"queue", "default"}, 0},
		{"zasync_queue_active_jobs", []string{"queue", "default"}, 1},
		{"zasync_running_jobs", []string{"queue", "default", "agent", "main"}, 1},
		{"zasync_dispatcher_dead", []string{"queue", "default", "uuid", uuid}, 0},
	} {
		if got := value(mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if age := value(mfs, "zasync_dispatcher_last_ping_age_seconds", "queue", "default", "uuid", uuid); age < 0 || age > 60 {
		t.Errorf("ping age %v", age)
	}
	if n := value(mfs, "zasync_poll_duration_seconds"); n < 1 {
		t.Errorf("poll duration histogram count %v", n)
	}
	for name, mf := range mfs {
		if strings.HasPrefix(name, "zasync_") && mf.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
	}

	close(release)
	released = true
	if _, err := block.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// scrape GETs url and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := get(t, url)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, body)
	}
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", url, err, body)
	}
	return mfs
}

// value is the value of the sample of name with labels (name, value pairs) among others: a
// counter's or gauge's value, a histogram's sample count; -1 when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf, ok := mfs[name]
	if !ok {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}

// A runtime whose metrics cannot be gathered by the monitor says so; WithGatherer serves
// another gatherer.
func TestMetricsGatherer(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, runtime.Config{Metrics: noGatherer{}})
	srv := httptest.NewServer(monitor.New(rt))
	t.Cleanup(srv.Close)
	getJSON(t, srv.URL+"/metrics", http.StatusNotFound)

	other := newRuntime(t, runtime.Config{})
	srv2 := httptest.NewServer(monitor.New(rt, monitor.WithGatherer(other.Metrics())))
	t.Cleanup(srv2.Close)
	if _, err := other.Queue(runtime.DefaultQueue).Put(testCtx(t), runtime.NewCall("x")); err != nil {
		t.Fatal(err)
	}
	if v := value(scrape(t, srv2.URL+"/metrics"), "zasync_jobs_put_total", "queue", "default"); v != 1 {
		t.Errorf("put through the other gatherer: %v", v)
	}
}

// noGatherer registers everything and gathers nothing.
type noGatherer struct{}

func (noGatherer) Register(prometheus.Collector) error  { return nil }
func (noGatherer) MustRegister(...prometheus.Collector) {}
func (noGatherer) Unregister(prometheus.Collector) bool { return true }

// Listen serves on loopback addresses, refuses others unless allowed, reports the port it
// got, and stops when its context ends or on Close.
func TestListen(t *testing.T) {
	t.Parallel()
	h := monitor.New(newRuntime(t, runtime.Config{}))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, err := monitor.Listen(ctx, "127.0.0.1:0", h)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0") {
		t.Fatalf("URL %s", s.URL())
	}
	if st := obj(t, getJSON(t, s.URL()+"/status", http.StatusOK)); st["status"] != "STOPPED" {
		t.Errorf("status: %v", st)
	}
	cancel()
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait after the context ended: %v", err)
	}
	if _, err := client.Get(s.URL() + "/status"); err == nil {
		t.Fatal("still serving after its context ended")
	}

	s, err = monitor.Listen(t.Context(), "localhost:0", h)
	if err != nil {
		t.Fatalf("Listen on localhost: %v", err)
	}
	getJSON(t, s.URL()+"/uuid", http.StatusOK)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close again: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}

	for _, addr := range []string{":0", "0.0.0.0:0"} {
		if _, err := monitor.Listen(t.Context(), addr, h); !errors.Is(err, monitor.ErrNotLoopback) {
			t.Errorf("Listen(%q): %v, want ErrNotLoopback", addr, err)
		}
	}
	s, err = monitor.Listen(t.Context(), ":0", h, monitor.AllowRemote())
	if err != nil {
		t.Fatalf("Listen with AllowRemote: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := monitor.Listen(t.Context(), "127.0.0.1:x", h); err == nil || errors.Is(err, monitor.ErrNotLoopback) {
		t.Errorf("Listen on a bad address: %v", err)
	}
}
