package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Group "History": the completed history of agents (zc.async's jobCompleted and its
// rotating completed collection), newest first, bounded by time and count, and trimmed after
// the store's retention period (7 days by default).
func init() {
	register("History",
		testCase{"NewestFirst", hstNewestFirst},
		testCase{"PerAgent", hstPerAgent},
		testCase{"Retention", hstRetention},
	)
}

// hstCompleteAt pings the dispatcher of j's holder (so that it stays alive) and runs the
// claimed job j to COMPLETED at time at.
func hstCompleteAt(b *bundle, j *persistence.Job, at time.Time) {
	b.t.Helper()
	b.clock.Set(at)
	dspPing(b, j.Queue, j.Owner.Dispatcher)
	done := dspFinish(b, j)
	if !done.Completed.Equal(at) {
		b.t.Fatalf("%s completed at %s, want %s (the store's clock)", j.ID, done.Completed, at)
	}
}

func hstNewestFirst(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, dspConfig(10))
	o := persistence.Owner{Dispatcher: u, Agent: "main"}
	for i := range 4 {
		b.putCall("job", i)
	}
	got := dspClaim(b, Queue, o, 10, 0)
	if len(got) != 4 {
		t.Fatalf("claim: %v, want 4 jobs", ids(got))
	}
	t1, t2, t3 := Epoch.Add(time.Second), Epoch.Add(2*time.Second), Epoch.Add(3*time.Second)
	hstCompleteAt(b, got[0], t1)
	hstCompleteAt(b, got[1], t2)
	hstCompleteAt(b, got[2], t3)
	j0, j1, j2 := got[0].ID, got[1].ID, got[2].ID

	cases := []struct {
		name          string
		since, before time.Time
		limit         int
		want          []string
	}{
		{"unbounded", time.Time{}, time.Time{}, 0, []string{j2, j1, j0}},
		{"limit 2", time.Time{}, time.Time{}, 2, []string{j2, j1}},
		{"limit 1", time.Time{}, time.Time{}, 1, []string{j2}},
		{"since t2", t2, time.Time{}, 0, []string{j2, j1}},
		{"before t3", time.Time{}, t3, 0, []string{j1, j0}},
		{"[t2, t3)", t2, t3, 0, []string{j1}},
		{"[t1, t3) limit 1", t1, t3, 1, []string{j1}},
		{"since after the last", t3.Add(time.Second), time.Time{}, 0, nil},
		{"before the first", time.Time{}, t1, 0, nil},
	}
	for _, c := range cases {
		done, err := b.s.Completed(b.ctx, Queue, o, c.since, c.before, c.limit)
		if err != nil {
			t.Fatalf("Completed(%s): %v", c.name, err)
		}
		if len(done) != len(c.want) || (len(c.want) > 0 && !slices.Equal(done, c.want)) {
			t.Fatalf("Completed(%s): %v, want %v", c.name, done, c.want)
		}
	}
	if held := dspAgentJobs(b, Queue, o); !slices.Equal(held, []string{got[3].ID}) {
		t.Fatalf("AgentJobs: %v, want only the job not completed [%s]", held, got[3].ID)
	}
}

func hstPerAgent(t *testing.T, h Harness) {
	b := setup(t, h)
	o1, o2 := b.dispatcher(), b.dispatcher()
	other := persistence.Owner{Dispatcher: o1.Dispatcher, Agent: "other"}
	b.putCall("a")
	b.putCall("b")
	ja := dspClaim(b, Queue, o1, 3, 1)
	jb := dspClaim(b, Queue, o2, 3, 1)
	if len(ja) != 1 || len(jb) != 1 {
		t.Fatalf("claims: %v and %v, want one job each", ids(ja), ids(jb))
	}
	dspFinish(b, ja[0])
	dspFinish(b, jb[0])
	if hist := dspHistory(b, Queue, o1); !slices.Equal(hist, ids(ja)) {
		t.Fatalf("history of %s: %v, want %v", o1, hist, ids(ja))
	}
	if hist := dspHistory(b, Queue, o2); !slices.Equal(hist, ids(jb)) {
		t.Fatalf("history of %s: %v, want %v", o2, hist, ids(jb))
	}
	if hist := dspHistory(b, Queue, other); len(hist) != 0 {
		t.Fatalf("history of %s, which ran nothing: %v, want empty", other, hist)
	}
	if hist := dspHistory(b, "elsewhere", o1); len(hist) != 0 {
		t.Fatalf("history of %s in another queue: %v, want empty", o1, hist)
	}
}

// The store's default retention is 7 days: a completion trims what is older than that.
func hstRetention(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	o := persistence.Owner{Dispatcher: u, Agent: "main"}
	for i := range 3 {
		b.putCall("job", i)
	}
	got := dspClaim(b, Queue, o, 3, 0)
	if len(got) != 3 {
		t.Fatalf("claim: %v, want 3 jobs", ids(got))
	}
	old, mid, recent := got[0], got[1], got[2]
	const week = 7 * 24 * time.Hour

	hstCompleteAt(b, old, Epoch)
	hstCompleteAt(b, mid, Epoch.Add(6*24*time.Hour))
	if hist := dspHistory(b, Queue, o); !slices.Equal(hist, []string{mid.ID, old.ID}) {
		t.Fatalf("history 6 days after the first completion: %v, want [%s %s] (within retention)", hist, mid.ID, old.ID)
	}
	hstCompleteAt(b, recent, Epoch.Add(week+time.Second))
	if hist := dspHistory(b, Queue, o); !slices.Equal(hist, []string{recent.ID, mid.ID}) {
		t.Fatalf("history after a completion at 7 days + 1 s: %v, want [%s %s] (%s trimmed, %s kept)",
			hist, recent.ID, mid.ID, old.ID, mid.ID)
	}
}
