package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/zasync/zasync/runtime"
)

// A job's JSON shows the unique key it was put with, and none for a job without one.
func TestJobUniqueKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	keyed := w.put("block", runtime.Unique("report-42", runtime.UniqueOpts{}))
	plain := w.put("ok")
	var got struct {
		UniqueKey *string `json:"unique_key"`
	}
	w.get("/v1/jobs/"+keyed.String(), &got)
	if got.UniqueKey == nil || *got.UniqueKey != "report-42" {
		t.Fatalf("unique_key %v, want report-42", got.UniqueKey)
	}
	got.UniqueKey = nil
	w.get("/v1/jobs/"+plain.String(), &got)
	if got.UniqueKey != nil {
		t.Fatalf("unique_key %q for a job without one", *got.UniqueKey)
	}
	if _, err := keyed.Cancel(w.ctx); err != nil {
		t.Fatal(err)
	}
}

// A put through the API with a unique key: the second returns the first job, marked; bad
// unique options are refused and put nothing.
func TestPutUniqueKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	body := map[string]any{"handler": "ok", "begin_in_ms": 3_600_000, "unique_key": "nightly",
		"unique_states": []string{"pending", "scheduled"}, "unique_completed_ms": 60_000}
	var first, second jobJSON
	w.post("/v1/queues/work/jobs", body, &first)
	if first.Duplicate || first.UniqueKey != "nightly" {
		t.Fatalf("first put answered %+v", first)
	}
	body["args"], body["debounce"] = []any{2}, true
	w.post("/v1/queues/work/jobs", body, &second)
	if second.ID != first.ID || !second.Duplicate || !second.Debounced {
		t.Fatalf("second put answered %+v, want %s debounced", second, first.ID)
	}
	before := w.count()
	for _, bad := range []map[string]any{
		{"handler": "ok", "unique_key": ""},
		{"handler": "ok", "debounce": true},
		{"handler": "ok", "unique_key": "k", "unique_states": []string{"running"}},
		{"handler": "ok", "unique_key": "k", "unique_completed_ms": -1},
	} {
		if st, code := w.call("POST", "/v1/queues/work/jobs", bad, nil, nil); st != http.StatusBadRequest || code != "invalid" {
			b, _ := json.Marshal(bad)
			t.Errorf("put %s: %d %s, want 400 invalid", b, st, code)
		}
	}
	if after := w.count(); after != before {
		t.Fatalf("refused puts changed the queue: %d jobs, then %d", before, after)
	}
}
