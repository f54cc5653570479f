package httpapi

import (
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
