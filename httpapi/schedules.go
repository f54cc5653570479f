package httpapi

import (
	"net/http"
	"path"
	"time"
)

// scheduleJSON is a periodic job as GET /v1/schedules gives it.
type scheduleJSON struct {
	Name    string `json:"name"`
	Queue   string `json:"queue"`
	Spec    string `json:"spec"`
	Handler string `json:"handler"`
	Call    string `json:"call,omitempty"`
	Missed  string `json:"missed"` // run-once or skip
	// NextTick is absent when no process declares it: it does not tick.
	NextTick  time.Time           `json:"next_tick,omitzero"`
	LastTick  time.Time           `json:"last_tick,omitzero"`
	LastJob   string              `json:"last_job,omitempty"`
	Declarers []scheduleProcessJS `json:"declarers"`
	Corrupt   string              `json:"corrupt,omitempty"`
}

// scheduleProcessJS is a process declaring a schedule.
type scheduleProcessJS struct {
	UUID  string    `json:"uuid"`
	Host  string    `json:"host,omitempty"`
	PID   int       `json:"pid,omitempty"`
	Spec  string    `json:"spec"`
	Until time.Time `json:"until"`
}

// schedules answers GET /v1/schedules?queue=GLOB: every schedule, or those of the queues
// the glob matches.
func (a *api) schedules(w http.ResponseWriter, r *http.Request) {
	glob := r.URL.Query().Get("queue")
	if _, err := path.Match(glob, ""); err != nil {
		a.fail(w, badRequest("queue %q: %v", glob, err))
		return
	}
	list, err := a.rt.Schedules(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	out := []scheduleJSON{}
	for _, s := range list {
		if ok, _ := path.Match(glob, s.Queue); glob != "" && !ok {
			continue
		}
		v := scheduleJSON{Name: s.Name, Queue: s.Queue, Spec: s.Spec, Handler: s.Handler, Missed: string(s.Missed),
			NextTick: s.NextTick, LastTick: s.LastTick, LastJob: s.LastJob, Declarers: []scheduleProcessJS{}}
		if s.Call != nil {
			v.Call = s.Call.String()
		}
		if s.Corrupt != nil {
			v.Corrupt = s.Corrupt.Error()
		}
		for _, d := range s.Declarers {
			v.Declarers = append(v.Declarers, scheduleProcessJS{UUID: d.ID, Host: d.Host, PID: d.PID, Spec: d.Spec, Until: d.Until})
		}
		out = append(out, v)
	}
	a.reply(w, map[string]any{"schedules": out})
}
