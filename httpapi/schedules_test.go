package httpapi

import (
	"strings"
	"testing"

	"github.com/zasync/zasync/runtime"
)

// GET /v1/schedules lists a schedule a serving process declared, with its last tick's job
// and the process; a queue glob filters, and a bad one is invalid.
func TestSchedules(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	if err := w.server.Every("beat", "* * * * * *", runtime.NewCall("ok"), runtime.EveryQueue("work")); err != nil {
		t.Fatal(err)
	}
	var got struct{ Schedules []scheduleJSON }
	w.eventually("a tick put", func() bool {
		w.get("/v1/schedules", &got)
		return len(got.Schedules) == 1 && got.Schedules[0].LastJob != ""
	})
	s := got.Schedules[0]
	if s.Name != "beat" || s.Queue != "work" || s.Spec != "* * * * * *" || s.Handler != "ok" || s.Missed != "run-once" ||
		s.NextTick.IsZero() || !strings.HasPrefix(s.LastJob, "tick.beat.") || len(s.Declarers) != 1 || s.Declarers[0].UUID != "api-server" {
		t.Errorf("schedule: %+v", s)
	}
	w.get("/v1/schedules?queue=other*", &got)
	if len(got.Schedules) != 0 {
		t.Errorf("filtered by another queue: %+v", got.Schedules)
	}
	if code, body := w.call("GET", "/v1/schedules?queue=[", nil, nil, nil); code != 400 || body != "invalid" {
		t.Errorf("bad glob: %d %s", code, body)
	}
}
