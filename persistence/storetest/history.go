package storetest

import (
	"errors"
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
		testCase{"TrimWithoutCompletions", hstTrim},
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

// hstTrim: TrimCompleted removes, from the history of every agent that ever claimed in the
// queue, the entries older than the retention (their records have expired), without any
// further completion: an agent that went idle, one whose dispatcher stopped, and one whose
// dispatcher's record is gone. An entry exactly one retention old is kept, as a completion's
// own trim keeps it, and so is a newer one.
func hstTrim(t *testing.T, h Harness) {
	b := setup(t, h)
	const week = 7 * 24 * time.Hour
	trim := func(when string, want int64) {
		t.Helper()
		n, err := b.s.TrimCompleted(b.ctx, Queue)
		if err != nil || n != want {
			t.Fatalf("TrimCompleted %s: %d, %v; want %d entries removed", when, n, err, want)
		}
	}
	idle := newUUID()
	c := DefaultConfig()
	c.Agents = append(c.Agents, persistence.AgentSpec{Name: "other", Size: 3})
	b.activate(Queue, idle, c)
	main, other := persistence.Owner{Dispatcher: idle, Agent: "main"}, persistence.Owner{Dispatcher: idle, Agent: "other"}
	stopped, unregistered := b.dispatcher(), b.dispatcher()
	for range 5 {
		b.putCall("job")
	}
	jm := dspClaim(b, Queue, main, 3, 2)
	jo := dspClaim(b, Queue, other, 3, 1)
	js := dspClaim(b, Queue, stopped, 3, 1)
	ju := dspClaim(b, Queue, unregistered, 3, 1)
	if len(jm) != 2 || len(jo) != 1 || len(js) != 1 || len(ju) != 1 {
		t.Fatalf("claims: %v %v %v %v, want 2, 1, 1 and 1 jobs", ids(jm), ids(jo), ids(js), ids(ju))
	}
	hstCompleteAt(b, jm[0], Epoch)
	hstCompleteAt(b, js[0], Epoch)
	hstCompleteAt(b, ju[0], Epoch)
	hstCompleteAt(b, jm[1], Epoch.Add(time.Second))
	for _, o := range []persistence.Owner{stopped, unregistered} {
		if _, err := b.s.Deactivate(b.ctx, Queue, o.Dispatcher); err != nil {
			t.Fatalf("Deactivate(%s): %v", o.Dispatcher, err)
		}
	}
	if err := b.s.Unregister(b.ctx, Queue, unregistered.Dispatcher); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	hstCompleteAt(b, jo[0], Epoch.Add(6*24*time.Hour))

	trim("within the retention", 0)
	b.clock.Set(Epoch.Add(week))
	trim("exactly one retention after the first completions", 0)
	if hist := dspHistory(b, Queue, main); !slices.Equal(hist, []string{jm[1].ID, jm[0].ID}) {
		t.Fatalf("history of %s at the retention: %v, want [%s %s]", main, hist, jm[1].ID, jm[0].ID)
	}
	b.clock.Set(Epoch.Add(week + time.Microsecond))
	trim("one retention and a microsecond later", 3)
	want := map[persistence.Owner][]string{main: {jm[1].ID}, other: {jo[0].ID}, stopped: nil, unregistered: nil}
	for o, w := range want {
		if hist := dspHistory(b, Queue, o); !slices.Equal(hist, w) {
			t.Fatalf("history of %s after the trim: %v, want %v", o, hist, w)
		}
	}
	b.clock.Set(Epoch.Add(14 * 24 * time.Hour))
	trim("14 days on", 2)
	for o := range want {
		if n, err := b.s.CountCompleted(b.ctx, Queue, o, time.Time{}, time.Time{}); err != nil || n != 0 {
			t.Fatalf("CountCompleted(%s) 14 days on: %d, %v; want 0", o, n, err)
		}
	}
	trim("again", 0)
	if _, err := b.s.TrimCompleted(b.ctx, "bad:queue"); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("TrimCompleted of a bad queue name: %v, want ErrInvalid", err)
	}
}
