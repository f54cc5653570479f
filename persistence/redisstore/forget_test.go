package redisstore

import (
	"slices"
	"testing"
	"time"
)

// A dispatcher that comes back while it is being forgotten is kept: the transaction watches
// its record and checks again.
func TestForgetRecheckedAfterARace(t *testing.T) {
	f := newFixture(t)
	if _, err := f.s.Ping(f.ctx, "q", "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Deactivate(f.ctx, "q", "d1"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(8 * 24 * time.Hour)
	raced := false
	f.s.beforeExec = func(op string) {
		if op == "forget stopped" {
			f.s.beforeExec = nil
			raced = true
			if err := f.s.Reactivate(f.ctx, "q", "d1"); err != nil {
				t.Errorf("Reactivate: %v", err)
			}
		}
	}
	got, err := f.s.ForgetStopped(f.ctx, "q")
	if err != nil || len(got) != 0 || !raced {
		t.Fatalf("ForgetStopped racing a reactivation: %v, %v (raced %v); want nothing forgotten", got, err, raced)
	}
	if d, err := f.s.Dispatcher(f.ctx, "q", "d1"); err != nil || !d.IsActivated() {
		t.Fatalf("record after the race: %+v, %v; want it activated", d, err)
	}
}

// An agent that still holds a job keeps its dispatcher remembered, record or not, until it is
// cleaned.
func TestForgetKeepsAnAgentThatHolds(t *testing.T) {
	f := newFixture(t)
	j := f.running()
	// Its record and ping removed by hand: only the agent is left.
	f.m.HDel(f.s.k.dispatchers("q"), "d1")
	f.m.Del(f.s.k.ping("q", "d1"))
	f.clock.Advance(8 * 24 * time.Hour)
	if got, err := f.s.ForgetStopped(f.ctx, "q"); err != nil || len(got) != 0 {
		t.Fatalf("ForgetStopped with %s held: %v, %v; want nothing forgotten", j.ID, got, err)
	}
	if _, err := f.s.CleanAgent(f.ctx, "q", f.owner); err != nil {
		t.Fatal(err)
	}
	if got, err := f.s.ForgetStopped(f.ctx, "q"); err != nil || !slices.Equal(got, []string{"d1"}) {
		t.Fatalf("ForgetStopped once cleaned: %v, %v; want [d1]", got, err)
	}
	if f.m.Exists(f.s.k.agents("q")) {
		members, _ := f.m.Members(f.s.k.agents("q"))
		t.Fatalf("agents left after forgetting d1: %v", members)
	}
	if held, err := f.s.HeldBy(f.ctx, "q"); err != nil || len(held) != 0 {
		t.Fatalf("HeldBy: %v, %v", held, err)
	}
}
