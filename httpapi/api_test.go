package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/runtime"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

// world is an installation for the API: a process serving "work" (one agent of size 2) and
// the API of another process, which serves nothing, over real HTTP.
type world struct {
	t       *testing.T
	ctx     context.Context
	server  *runtime.Runtime // serves the queue
	rt      *runtime.Runtime // behind the API
	url     string
	started chan string // ids of "block" jobs as they start
}

func newWorld(t *testing.T, opts ...Option) *world {
	t.Helper()
	addr, prefix := testredis.Shared(t, "api")
	client := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	w := &world{t: t, ctx: ctx, started: make(chan string, 16)}
	var err error
	w.server, err = runtime.New(runtime.Config{Redis: client(), Prefix: prefix, UUID: "api-server",
		Queues:       []runtime.QueueConfig{{Name: "work", Agents: []runtime.AgentConfig{{Name: "main", Size: 2}}}},
		PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.server.Close() })
	w.server.Handle("ok", func(context.Context, *runtime.Call) (any, error) { return "fine", nil })
	w.server.Handle("fail", func(ctx context.Context, _ *runtime.Call) (any, error) {
		if a, _ := runtime.Attempt(ctx); a > 1 {
			return "second time lucky", nil
		}
		return nil, errors.New("first time unlucky")
	})
	w.server.Handle("block", func(ctx context.Context, _ *runtime.Call) (any, error) {
		j, _ := runtime.JobFrom(ctx)
		w.started <- j.ID()
		<-ctx.Done()
		return nil, context.Cause(ctx)
	})
	if err := w.server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.server.Stop(context.Background()) })
	w.rt, err = runtime.New(runtime.Config{Redis: client(), Prefix: prefix, UUID: "api"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.rt.Close() })
	srv := httptest.NewServer(New(w.rt, opts...))
	t.Cleanup(srv.Close)
	w.url = srv.URL
	w.eventually("the server's dispatcher to register", func() bool { return w.rt.CheckQueue(ctx, "work") == nil })
	return w
}

// put puts a job of handler into "work", retried never.
func (w *world) put(handler string, opts ...runtime.PutOption) *runtime.Job {
	w.t.Helper()
	j, err := w.rt.Queue("work").Put(w.ctx, runtime.NewCall(handler), append(opts, runtime.Retry(runtime.NeverRetry))...)
	if err != nil {
		w.t.Fatal(err)
	}
	return j
}

// call sends a request and decodes the JSON answer into v (when not nil); it returns the
// status and the error code of an error answer.
func (w *world) call(method, path string, body any, header http.Header, v any) (int, string) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(w.ctx, method, w.url+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		w.t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(raw, &e)
	if res.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			w.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	if res.StatusCode != http.StatusOK && (e.Error.Code == "" || e.Error.Message == "") {
		w.t.Fatalf("%s %s: status %d without a JSON error: %s", method, path, res.StatusCode, raw)
	}
	return res.StatusCode, e.Error.Code
}

// get is call for a GET that must succeed.
func (w *world) get(path string, v any) {
	w.t.Helper()
	if st, code := w.call("GET", path, nil, nil, v); st != http.StatusOK {
		w.t.Fatalf("GET %s: %d %s", path, st, code)
	}
}

// post is call for a POST that must succeed.
func (w *world) post(path string, body, v any) {
	w.t.Helper()
	if st, code := w.call("POST", path, body, nil, v); st != http.StatusOK {
		w.t.Fatalf("POST %s: %d %s", path, st, code)
	}
}

func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

// The reads: queues, dispatchers, jobs by state a page at a time, one job.
func TestReads(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var done []*runtime.Job
	for range 25 {
		done = append(done, w.put("ok"))
	}
	for _, j := range done {
		if _, err := j.Wait(w.ctx); err != nil {
			t.Fatal(err)
		}
	}
	later := w.put("ok", runtime.BeginIn(time.Hour), runtime.Priority(8))

	var qs struct{ Queues []queueJSON }
	w.get("/v1/queues", &qs)
	if len(qs.Queues) != 1 || qs.Queues[0].Name != "work" || qs.Queues[0].Scheduled != 1 || qs.Queues[0].Alive != 1 || qs.Queues[0].Paused {
		t.Fatalf("queues: %+v", qs)
	}
	var q queueJSON
	w.get("/v1/queues/work", &q)
	if len(q.Dispatchers) != 1 || q.Dispatchers[0].UUID != "api-server" || q.Dispatchers[0].PID == 0 || q.Dispatchers[0].Agents[0].Size != 2 ||
		q.Dispatchers[0].DeathMS <= 0 {
		t.Fatalf("queue work: %+v", q)
	}
	var tp struct {
		StepMS int64 `json:"step_ms"`
		Points []struct {
			Start     time.Time
			Completed int64
		}
	}
	w.get("/v1/queues/work/throughput", &tp)
	total := int64(0)
	for _, p := range tp.Points {
		total += p.Completed
	}
	if tp.StepMS != 60000 || len(tp.Points) != 60 || total != 25 {
		t.Fatalf("throughput: step %d ms, %d points, %d completed; want a minute, 60 points, 25", tp.StepMS, len(tp.Points), total)
	}
	var ds struct{ Dispatchers []dispatcherJSON }
	w.get("/v1/dispatchers", &ds)
	if len(ds.Dispatchers) != 1 || !ds.Dispatchers[0].Alive {
		t.Fatalf("dispatchers: %+v", ds)
	}
	var evs struct{ Events []eventJSON }
	w.get("/v1/dispatchers/events?queue=w*&limit=5", &evs)
	if len(evs.Events) != 1 || evs.Events[0].Kind != "activated" || evs.Events[0].Dispatcher != ds.Dispatchers[0].UUID || evs.Events[0].At.IsZero() {
		t.Fatalf("dispatcher events: %+v, want the one activation", evs)
	}

	// The succeeded jobs, ten at a time, newest first, each once.
	seen := map[string]bool{}
	path := "/v1/jobs?state=succeeded&callable=ok&limit=10"
	for pages := 0; ; pages++ {
		var page struct {
			Jobs       []jobJSON
			NextCursor string `json:"next_cursor"`
		}
		w.get(path, &page)
		for _, j := range page.Jobs {
			if seen[j.Job] || j.Status != "completed" || string(j.Result) != `"fine"` {
				t.Fatalf("page %d: %+v (seen before: %v)", pages, j, seen[j.Job])
			}
			seen[j.Job] = true
		}
		if page.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("too many pages")
		}
		path = "/v1/jobs?state=succeeded&callable=ok&limit=10&cursor=" + page.NextCursor
	}
	if len(seen) != 25 {
		t.Fatalf("the pages gave %d jobs, want 25", len(seen))
	}
	var none struct{ Jobs []jobJSON }
	w.get("/v1/jobs?state=succeeded&completed_before=2000-01-01T00:00:00Z", &none)
	if len(none.Jobs) != 0 {
		t.Fatalf("jobs completed before 2000: %d", len(none.Jobs))
	}
	var pending struct{ Jobs []jobJSON }
	w.get("/v1/jobs?state=pending", &pending)
	if len(pending.Jobs) != 1 || pending.Jobs[0].ID != later.ID() || pending.Jobs[0].BeginAfter.IsZero() || pending.Jobs[0].Priority != 8 {
		t.Fatalf("pending: %+v", pending)
	}
	var one jobJSON
	w.get("/v1/jobs/work/"+done[0].ID(), &one)
	if one.Detail == nil || one.Detail.Args == nil || one.Detail.Annotations == nil || one.Handler != "ok" || one.ActiveMS < 0 ||
		one.Priority != runtime.DefaultPriority {
		t.Fatalf("one job: %+v", one)
	}
}

// The actions, each over real HTTP: pause and resume, cancel of a running job, retry of a
// failed one with its attempts shown, delete, the bulk forms and purge.
func TestActions(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var paused map[string]any
	w.post("/v1/queues/work/pause", nil, &paused)
	if paused["changed"] != true || paused["paused"] != true {
		t.Fatalf("pause: %v", paused)
	}
	var q queueJSON
	w.get("/v1/queues/work", &q)
	if !q.Paused {
		t.Fatal("the queue is not shown paused")
	}
	w.post("/v1/queues/work/resume", nil, nil)

	b := w.put("block")
	<-w.started
	var cancelled map[string]any
	w.post("/v1/jobs/work/"+b.ID()+"/cancel", nil, &cancelled)
	if cancelled["was"] != "active" {
		t.Fatalf("cancel: %v", cancelled)
	}
	if out, err := b.Wait(w.ctx); err != nil || !errors.Is(out.Failure, runtime.ErrCancelled) {
		t.Fatalf("the cancelled job: %+v %v", out, err)
	}
	if st, code := w.call("POST", "/v1/jobs/work/"+b.ID()+"/cancel", nil, nil, nil); st != http.StatusConflict || code != "bad_status" {
		t.Fatalf("second cancel: %d %s, want 409 bad_status", st, code)
	}

	f := w.put("fail")
	if out, _ := f.Wait(w.ctx); out == nil || out.Failure == nil {
		t.Fatal("the fail job did not fail")
	}
	w.post("/v1/jobs/work/"+f.ID()+"/retry", nil, nil)
	if out, err := f.Wait(w.ctx); err != nil || out.Failure != nil {
		t.Fatalf("the retried job: %+v %v", out, err)
	}
	var one jobJSON
	w.get("/v1/jobs/work/"+f.ID(), &one)
	if len(one.Detail.Attempts) != 1 || one.Detail.Attempts[0].Failure.Message != "first time unlucky" {
		t.Fatalf("the retried job's attempts: %+v", one.Detail.Attempts)
	}
	var deleted map[string]any
	w.post("/v1/jobs/work/"+f.ID()+"/delete", nil, &deleted)
	if st, code := w.call("GET", "/v1/jobs/work/"+f.ID(), nil, nil, nil); st != http.StatusNotFound || code != "not_found" {
		t.Fatalf("GET of a deleted job: %d %s", st, code)
	}

	// Bulk: three failed jobs, a dry run, then the retry.
	var fails []*runtime.Job
	for range 3 {
		fails = append(fails, w.put("fail"))
	}
	for _, j := range fails {
		j.Wait(w.ctx)
	}
	var rep bulkJSON
	w.post("/v1/bulk/retry", map[string]any{"states": []string{"failed"}, "callable": "fail", "dry_run": true}, &rep)
	if rep.Matched != 3 || rep.Done != 0 || len(rep.Jobs) != 3 || !rep.DryRun {
		t.Fatalf("bulk dry run: %+v", rep)
	}
	w.post("/v1/bulk/retry", map[string]any{"states": []string{"failed"}, "callable": "fail"}, &rep)
	if rep.Matched != 3 || rep.Done != 3 {
		t.Fatalf("bulk retry: %+v", rep)
	}
	for _, j := range fails {
		if out, err := j.Wait(w.ctx); err != nil || out.Failure != nil {
			t.Fatalf("bulk-retried job: %+v %v", out, err)
		}
	}
	rep = bulkJSON{}
	w.post("/v1/purge", map[string]any{"state": "succeeded", "older_than_ms": 0}, &rep)
	if rep.Done < 3 {
		t.Fatalf("purge: %+v", rep)
	}
	for _, j := range fails {
		if _, err := j.Info(w.ctx); !errors.Is(err, runtime.ErrNotFound) {
			t.Fatalf("purged job %s: %v", j, err)
		}
	}
}

// Bad input and unknown things are JSON errors with a code, and change nothing.
func TestErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	j := w.put("ok", runtime.BeginIn(time.Hour))
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"GET", "/v1/jobs/work/nope", nil, 404, "not_found"},
		{"GET", "/v1/jobs/a%20b/x", nil, 400, "invalid"},
		{"GET", "/v1/jobs?state=nonsense", nil, 400, "invalid"},
		{"GET", "/v1/jobs", nil, 400, "invalid"},
		{"GET", "/v1/jobs?state=pending&limit=0", nil, 400, "invalid"},
		{"GET", "/v1/jobs?state=pending&cursor=%21%21", nil, 400, "invalid"},
		{"GET", "/v1/jobs?state=failed&completed_since=yesterday", nil, 400, "invalid"},
		{"GET", "/v1/queues/nosuch", nil, 404, "not_found"},
		{"GET", "/v1/queues/work/throughput?step_ms=0", nil, 400, "invalid"},
		{"GET", "/v1/queues/work/throughput?step_ms=1&span_ms=86400000", nil, 400, "invalid"},
		{"GET", "/v2/everything", nil, 404, "not_found"},
		{"GET", "/v1/dispatchers/events?limit=0", nil, 400, "invalid"},
		{"GET", "/v1/dispatchers/events?limit=501", nil, 400, "invalid"},
		{"GET", "/v1/dispatchers/events?queue=[", nil, 400, "invalid"},
		{"POST", "/v1/queues/nosuch/pause", nil, 404, "not_found"},
		{"POST", "/v1/queues/work/explode", nil, 404, "not_found"},
		{"POST", "/v1/jobs/work/" + j.ID() + "/explode", nil, 404, "not_found"},
		{"POST", "/v1/jobs/work/" + j.ID() + "/retry", nil, 409, "bad_status"},
		{"POST", "/v1/bulk/retry", map[string]any{"states": []string{"pending"}}, 400, "invalid"},
		{"POST", "/v1/bulk/retry", map[string]any{"states": []string{"failed"}, "bogus": 1}, 400, "invalid"},
		{"POST", "/v1/bulk/explode", map[string]any{"states": []string{"failed"}}, 404, "not_found"},
		{"POST", "/v1/purge", map[string]any{"state": "failed"}, 400, "invalid"},
		{"POST", "/v1/purge", map[string]any{"state": "pending", "older_than_ms": 0}, 400, "invalid"},
	} {
		if st, code := w.call(tc.method, tc.path, tc.body, nil, nil); st != tc.status || code != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, st, code, tc.status, tc.code)
		}
	}
	if rec, err := j.Info(w.ctx); err != nil || rec.Status != runtime.StatusPending {
		t.Fatalf("after the bad requests the job is %v %v", rec, err)
	}
	if paused, _ := w.rt.QueuePaused(w.ctx, "work"); paused {
		t.Fatal("a refused request paused the queue")
	}
}

// With a token, actions need it; cross-site browser requests are refused, token or not;
// reads stay open. Without a token, only loopback clients act.
func TestTokenAndCrossSite(t *testing.T) {
	t.Parallel()
	w := newWorld(t, WithToken("s3cret"))
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	for _, tc := range []struct {
		header http.Header
		status int
		code   string
	}{
		{nil, 401, "unauthorized"},
		{bearer("wrong"), 401, "unauthorized"},
		{http.Header{"Authorization": {"s3cret"}}, 401, "unauthorized"},
		{http.Header{"Authorization": {"Bearer s3cret"}, "Sec-Fetch-Site": {"cross-site"}}, 403, "forbidden"},
		{http.Header{"Authorization": {"Bearer s3cret"}, "Origin": {"https://evil.example"}}, 403, "forbidden"},
	} {
		if st, code := w.call("POST", "/v1/queues/work/pause", nil, tc.header, nil); st != tc.status || code != tc.code {
			t.Errorf("pause with %v: %d %s, want %d %s", tc.header, st, code, tc.status, tc.code)
		}
	}
	if paused, _ := w.rt.QueuePaused(w.ctx, "work"); paused {
		t.Fatal("a refused pause paused the queue")
	}
	if st, _ := w.call("POST", "/v1/queues/work/pause", nil, bearer("s3cret"), nil); st != 200 {
		t.Fatalf("pause with the token: %d", st)
	}
	if st, _ := w.call("POST", "/v1/queues/work/resume", nil, http.Header{"Authorization": {"Bearer s3cret"}, "Sec-Fetch-Site": {"same-origin"}}, nil); st != 200 {
		t.Fatalf("resume from the same origin with the token: %d", st)
	}
	w.get("/v1/queues", nil)

	// No token: a client that is not on loopback may read, not act.
	open := New(w.rt)
	for _, tc := range []struct {
		method string
		status int
	}{{"GET", 200}, {"POST", 403}} {
		req := httptest.NewRequest(tc.method, "/v1/queues"+map[string]string{"GET": "", "POST": "/work/pause"}[tc.method], nil)
		req.RemoteAddr = "203.0.113.7:5555"
		rec := httptest.NewRecorder()
		open.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s from a remote client without a token: %d, want %d: %s", tc.method, rec.Code, tc.status, rec.Body)
		}
	}
	req := httptest.NewRequest("POST", "/v1/queues/work/pause", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	rec := httptest.NewRecorder()
	open.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"changed": true`) {
		t.Fatalf("pause from loopback without a token: %d %s", rec.Code, rec.Body)
	}
}
