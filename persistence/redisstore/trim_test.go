package redisstore

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// TrimCompleted reaches every agent listed in the queue, however many pipelines that takes,
// and leaves alone the entries within the retention and the agents of other queues.
func TestTrimCompletedEveryAgent(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	old, recent := float64(micros(now.Add(-DefaultRetention-time.Second))), float64(micros(now.Add(-time.Hour)))
	const n = 2*trimBatch + 1
	for i := range n {
		o := persistence.Owner{Dispatcher: fmt.Sprintf("d%04d", i), Agent: "main"}
		f.m.SetAdd(f.s.k.agents("q"), o.String())
		f.m.ZAdd(f.s.k.completed("q", o), old, "old")
		f.m.ZAdd(f.s.k.completed("q", o), recent, "recent")
		f.m.ZAdd(f.s.k.completed("other", o), old, "old")
	}
	removed, err := f.s.TrimCompleted(f.ctx, "q")
	if err != nil || removed != n {
		t.Fatalf("TrimCompleted: %d, %v; want %d entries removed", removed, err, n)
	}
	for i := range n {
		o := persistence.Owner{Dispatcher: fmt.Sprintf("d%04d", i), Agent: "main"}
		if left, _ := f.m.ZMembers(f.s.k.completed("q", o)); len(left) != 1 || left[0] != "recent" {
			t.Fatalf("history of %s after the trim: %v, want [recent]", o, left)
		}
		if left, _ := f.m.ZMembers(f.s.k.completed("other", o)); len(left) != 1 {
			t.Fatalf("history of %s in another queue: %v, want it untouched", o, left)
		}
	}
}

// A store that keeps completed jobs forever keeps their histories too.
func TestTrimCompletedKeepsForever(t *testing.T) {
	f := newFixture(t)
	s := newStore(t, f.rdb, Options{Clock: f.clock, Retention: -1})
	o := persistence.Owner{Dispatcher: "d1", Agent: "main"}
	f.m.SetAdd(s.k.agents("q"), o.String())
	f.m.ZAdd(s.k.completed("q", o), float64(micros(f.clock.Now().Add(-365*24*time.Hour))), "old")
	if removed, err := s.TrimCompleted(f.ctx, "q"); err != nil || removed != 0 {
		t.Fatalf("TrimCompleted keeping forever: %d, %v; want nothing removed", removed, err)
	}
	if left, _ := f.m.ZMembers(s.k.completed("q", o)); len(left) != 1 {
		t.Fatalf("history kept forever: %v, want [old]", left)
	}
}

// An agent's commits trim its history of entries past the retention, once a second at most:
// a commit within the second after a trim leaves an expired entry, the first one after it
// removes it.
func TestCommitsTrimOnceASecond(t *testing.T) {
	f := newFixture(t)
	hist := f.s.k.completed("q", f.owner)
	commit := func() {
		t.Helper()
		j := f.running()
		if _, err := f.s.Commit(f.ctx, j.Fence(), persistence.Outcome{Result: []byte(`1`), Complete: true}); err != nil {
			t.Fatal(err)
		}
	}
	commit() // trims, and starts the second
	expired := float64(micros(f.clock.Now().Add(-DefaultRetention - time.Minute)))
	f.m.ZAdd(hist, expired, "expired")
	f.clock.Advance(trimEvery / 2)
	commit()
	if members, _ := f.m.ZMembers(hist); !slices.Contains(members, "expired") {
		t.Fatal("a commit within a second of the last trim trimmed again")
	}
	f.clock.Advance(trimEvery / 2)
	commit()
	if members, _ := f.m.ZMembers(hist); slices.Contains(members, "expired") || len(members) != 3 {
		t.Fatalf("history after a commit a second later: %v, want the three jobs only", members)
	}
}
