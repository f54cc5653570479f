package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/zasync/zasync/runtime"
)

func TestPut(t *testing.T) {
	w := newWorld(t)
	// A job with its options: the answer is the job, and the job page shows them.
	backoff, err := runtime.RetryBackoff(3, time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var put jobJSON
	w.post("/v1/queues/work/jobs", map[string]any{
		"handler": "ok", "args": []any{1, "two"}, "kwargs": map[string]any{"k": true},
		"meta": map[string]string{"request": "r-1"}, "begin_in_ms": 3_600_000, "begin_by_ms": 60_000,
		"run_timeout_ms": 5000, "retry": backoff.Name(), "failure_level": "CRITICAL", "priority": 8,
	}, &put)
	if put.Queue != "work" || put.ID == "" || put.Handler != "ok" || put.Status != runtime.StatusPending.String() {
		t.Fatalf("put answered %+v", put)
	}
	var got jobJSON
	w.get("/v1/jobs/work/"+put.ID, &got)
	d := got.Detail
	if d == nil || len(d.Args) != 2 || string(d.Args[1]) != `"two"` || string(d.Kwargs["k"]) != "true" ||
		d.Meta["request"] != "r-1" || got.Priority != 8 || d.TimeoutMS != 5000 || d.RetryPolicy != backoff.Name() {
		t.Fatalf("the job put reads back as %+v / %+v", got, d)
	}
	if wait := got.BeginAfter.Sub(time.Now()); wait < 50*time.Minute {
		t.Fatalf("begin_in_ms of an hour gave begin_after %s", got.BeginAfter)
	}

	// A job put with no options runs, on the serving process.
	w.post("/v1/queues/work/jobs", map[string]any{"handler": "ok"}, &put)
	out, err := w.rt.Job(runtime.Ref{Queue: "work", ID: put.ID}).Wait(w.ctx)
	if err != nil || string(out.Result) != `"fine"` {
		t.Fatalf("the job put ran to %s, %v", out.Result, err)
	}

	// Bad input is refused with a clear error and puts nothing.
	before := w.count()
	for _, bad := range []map[string]any{
		{},
		{"handler": "ok", "begin_in_ms": -1},
		{"handler": "ok", "begin_in_ms": 1, "begin_after": "2026-01-01T00:00:00Z"},
		{"handler": "ok", "retry": "Sometimes"},
		{"handler": "ok", "run_timeout_ms": int64(31 * 24 * time.Hour / time.Millisecond)},
		{"handler": "ok", "failure_level": "LOUD"},
		{"handler": "ok", "priority": 10},
		{"handler": "ok", "priority": 0},
		{"handler": "ok", "quotas": []string{"nonesuch"}},
		{"handler": "ok", "meta": map[string]string{"": "x"}},
		{"handler": "ok", "colour": "blue"},
	} {
		if st, code := w.call("POST", "/v1/queues/work/jobs", bad, nil, nil); st != http.StatusBadRequest || code != "invalid" {
			b, _ := json.Marshal(bad)
			t.Errorf("put %s: %d %s, want 400 invalid", b, st, code)
		}
	}
	if st, code := w.call("POST", "/v1/queues/no%20such/jobs", map[string]any{"handler": "ok"}, nil, nil); st != http.StatusBadRequest {
		t.Errorf("put into an invalid queue name: %d %s", st, code)
	}
	if after := w.count(); after != before {
		t.Fatalf("refused puts changed the queue: %d jobs, then %d", before, after)
	}
}

// count is how many jobs of "work" the API lists, whatever their state.
func (w *world) count() int {
	w.t.Helper()
	var page struct {
		Jobs []jobJSON `json:"jobs"`
	}
	w.get("/v1/jobs?queue=work&state=pending&state=active&state=completed&limit=1000", &page)
	return len(page.Jobs)
}
