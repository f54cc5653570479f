package chaos

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zasync/zasync/persistence"
)

// checkResult, which decides whether a completed job is doubled, tells each kind of double
// from the one good outcome. It runs without Redis, in every `go test ./...`.
func TestCheckResult(t *testing.T) {
	result := func(id string, attempt int64, token string) json.RawMessage {
		b, err := json.Marshal(run{Event: "done", ID: id, Attempt: attempt, Token: token, UUID: "n", PID: 1})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	job := func(attempt int64, res json.RawMessage) *persistence.Job {
		return &persistence.Job{Ref: persistence.Ref{Queue: "q", ID: "j1"}, Status: persistence.StatusCompleted,
			Attempt: attempt, Result: res}
	}
	runs := []run{
		{Event: "start", ID: "j1", Attempt: 1, Token: "t1"},
		{Event: "start", ID: "j1", Attempt: 2, Token: "t2"},
		{Event: "done", ID: "j1", Attempt: 2, Token: "t2"},
		{Event: "done", ID: "j1", Attempt: 1, Token: "t1"},
	}
	one := []persistence.Owner{{Dispatcher: "a", Agent: "main"}}
	good := job(2, result("j1", 2, "t2"))
	for _, c := range []struct {
		name       string
		rec, first *persistence.Job
		hist       []persistence.Owner
		want       string // a part of the reason, "" for none
	}{
		{"the latest run's result", good, good, one, ""},
		{"not seen completed before the final read", good, nil, one, ""},
		{"a result of an earlier attempt", job(2, result("j1", 1, "t1")), nil, one, "result of attempt 1 stored"},
		{"another job's result", job(2, result("j2", 2, "t2")), nil, one, "result of job j2"},
		{"a run the ledger never saw finish", job(2, result("j1", 2, "t9")), nil, one, "not seen finish"},
		{"a second commit after completion", job(3, result("j1", 3, "t3")), good, one, "committed twice"},
		{"a result rewritten at the same attempt", job(2, result("j1", 2, "t1")), good, one, "committed twice"},
		{"completed by two agents", good, good, append(one, persistence.Owner{Dispatcher: "b", Agent: "main"}), "completed by 2 agents"},
		{"not a run at all", job(2, json.RawMessage(`42`)), nil, one, "is not a run"},
	} {
		got := checkResult(c.rec, c.first, runs, c.hist)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
