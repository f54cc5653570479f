package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// Group "Dispatcher": dispatcher records (register, activate, deactivate, reactivate,
// configure), pings and the death rule, siblings, claims by agents (zc.async's
// scenarios 39 to 44), and the cleaning of a dead dispatcher's agents.
func init() {
	register("Dispatcher",
		testCase{"RegisterTwice", dspRegisterTwice},
		testCase{"Unregister", dspUnregister},
		testCase{"DispatchersOrderedByUUID", dspDispatchersOrdered},
		testCase{"Configure", dspConfigure},
		testCase{"ActivateTwice", dspActivateTwice},
		testCase{"ActivateDeadTakesOver", dspActivateDeadTakesOver},
		testCase{"DeactivateThenReactivate", dspDeactivateReactivate},
		testCase{"ReactivateDoesNotClean", dspReactivateDoesNotClean},
		testCase{"DeathRule", dspDeathRule},
		testCase{"PingInterval", dspPingInterval},
		testCase{"PingReactivates", dspPingReactivates},
		testCase{"NextSibling", dspNextSibling},
		testCase{"ClaimSize", dspClaimSize},
		testCase{"ClaimMax", dspClaimMax},
		testCase{"ClaimParkedDoesNotCount", dspClaimParked},
		testCase{"ClaimAfterDeactivate", dspClaimAfterDeactivate},
		testCase{"ClaimWhenDead", dspClaimWhenDead},
		testCase{"ClaimFilter", dspClaimFilter},
		testCase{"SiblingDeath", dspSiblingDeath},
		testCase{"RacingCleaners", dspRacingCleaners},
		testCase{"HeldBy", dspHeldBy},
		testCase{"CleanAgent", dspCleanAgent},
		testCase{"CleanJobs", dspCleanJobs},
		testCase{"BuryAlive", dspBuryAlive},
		testCase{"BuryDead", dspBuryDead},
		testCase{"RacingBurials", dspRacingBurials},
		testCase{"ForgetStopped", dspForgetStopped},
		testCase{"Events", dspEvents},
		testCase{"AgentLoads", dspAgentLoads},
	)
}

// dspConfig is DefaultConfig with agent "main" of the given size.
func dspConfig(size int) persistence.DispatcherConfig {
	c := DefaultConfig()
	c.Agents = []persistence.AgentSpec{{Name: "main", Size: size}}
	return c
}

// dspRecord reads the record of uuid in q, failing the test on error.
func dspRecord(b *bundle, q, uuid string) *persistence.DispatcherRecord {
	b.t.Helper()
	r, err := b.s.Dispatcher(b.ctx, q, uuid)
	if err != nil {
		b.t.Fatalf("Dispatcher(%s, %s): %v", q, uuid, err)
	}
	if r.UUID != uuid || r.Queue != q {
		b.t.Fatalf("Dispatcher(%s, %s) returned the record of %s in %s, want %s in %s", q, uuid, r.UUID, r.Queue, uuid, q)
	}
	return r
}

// dspPing pings uuid in q, failing the test on error.
func dspPing(b *bundle, q, uuid string) persistence.PingResult {
	b.t.Helper()
	r, err := b.s.Ping(b.ctx, q, uuid)
	if err != nil {
		b.t.Fatalf("Ping(%s, %s) at %s: %v", q, uuid, b.clock.Now(), err)
	}
	return r
}

// dspClaim claims for agent o in queue q with size and max, failing the test on error.
func dspClaim(b *bundle, q string, o persistence.Owner, size, max int) []*persistence.Job {
	b.t.Helper()
	jobs, err := b.s.Claim(b.ctx, persistence.ClaimParams{
		Queue: q, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: size, Max: max,
	})
	if err != nil {
		b.t.Fatalf("Claim(%s, %s, size %d, max %d): %v", q, o, size, max, err)
	}
	return jobs
}

// dspClaimFull claims for o with size and fails the test unless the claim reports the agent
// full (ErrFull) without claiming anything.
func dspClaimFull(b *bundle, q string, o persistence.Owner, size int, why string) {
	b.t.Helper()
	before := b.pending(q)
	jobs, err := b.s.Claim(b.ctx, persistence.ClaimParams{Queue: q, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: size})
	if !errors.Is(err, persistence.ErrFull) || len(jobs) != 0 {
		b.t.Fatalf("claim %s: %v, %v; want ErrFull and nothing", why, ids(jobs), err)
	}
	if after := b.pending(q); !slices.Equal(after, before) {
		b.t.Fatalf("claim %s changed the queue: %v, was %v", why, after, before)
	}
}

// dspFinish runs a claimed job to COMPLETED with result 1 and no callbacks.
func dspFinish(b *bundle, j *persistence.Job) *persistence.Job {
	b.t.Helper()
	f := j.Fence()
	b.start(f)
	b.commit(f, `1`)
	return b.complete(f, 0)
}

// dspAgentJobs lists what agent o holds in q, failing the test on error.
func dspAgentJobs(b *bundle, q string, o persistence.Owner) []string {
	b.t.Helper()
	held, err := b.s.AgentJobs(b.ctx, q, o)
	if err != nil {
		b.t.Fatalf("AgentJobs(%s, %s): %v", q, o, err)
	}
	// AgentLoads counts what AgentJobs lists, wherever a case looks.
	loads, err := b.s.AgentLoads(b.ctx, q, []persistence.Owner{o})
	if err != nil || len(loads) != 1 || loads[0] != len(held) {
		b.t.Fatalf("AgentLoads(%s, %s): %v %v, want [%d] as AgentJobs lists", q, o, loads, err, len(held))
	}
	return held
}

// dspHistory lists the whole completed history of agent o in q.
func dspHistory(b *bundle, q string, o persistence.Owner) []string {
	b.t.Helper()
	done, err := b.s.Completed(b.ctx, q, o, time.Time{}, time.Time{}, 1000)
	if err != nil {
		b.t.Fatalf("Completed(%s, %s): %v", q, o, err)
	}
	return done
}

// dspUUIDs lists the UUIDs of q's dispatcher records, in the order Dispatchers gives them.
func dspUUIDs(b *bundle, q string) []string {
	b.t.Helper()
	recs, err := b.s.Dispatchers(b.ctx, q)
	if err != nil {
		b.t.Fatalf("Dispatchers(%s): %v", q, err)
	}
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.UUID)
	}
	return out
}

// dspSameSet reports whether a and b hold the same ids, in any order, without duplicates.
func dspSameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y) && len(slices.Compact(x)) == len(a)
}

func dspRegisterTwice(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	c := DefaultConfig()
	if err := b.s.Register(b.ctx, Queue, u, c); err != nil {
		t.Fatalf("first Register(%s): %v", u, err)
	}
	if err := b.s.Register(b.ctx, Queue, u, c); !errors.Is(err, persistence.ErrAlreadyRegistered) {
		t.Fatalf("second Register(%s): got %v, want ErrAlreadyRegistered", u, err)
	}
	r := dspRecord(b, Queue, u)
	if r.IsActivated() {
		t.Fatalf("registered record: Activated %s, want zero (not activated)", r.Activated)
	}
	if r.PingInterval != c.PingInterval || r.PingDeathInterval != c.PingDeathInterval {
		t.Fatalf("registered record intervals: %s/%s, want %s/%s", r.PingInterval, r.PingDeathInterval, c.PingInterval, c.PingDeathInterval)
	}
	if !slices.Equal(r.Agents, c.Agents) {
		t.Fatalf("registered record agents: %v, want %v", r.Agents, c.Agents)
	}
	// A record never activated nor pinged is never dead.
	b.clock.Set(Epoch.AddDate(1, 0, 0))
	if r := dspRecord(b, Queue, u); r.Dead {
		t.Fatalf("record never activated nor pinged: Dead true a year later, want false")
	}
}

func dspUnregister(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	if err := b.s.Unregister(b.ctx, Queue, u); !errors.Is(err, persistence.ErrActivated) {
		t.Fatalf("Unregister of an activated record: got %v, want ErrActivated", err)
	}
	if r := dspRecord(b, Queue, u); !r.IsActivated() {
		t.Fatalf("after a refused Unregister the record is not activated any more, want it unchanged")
	}
	if _, err := b.s.Deactivate(b.ctx, Queue, u); err != nil {
		t.Fatalf("Deactivate(%s): %v", u, err)
	}
	if err := b.s.Unregister(b.ctx, Queue, u); err != nil {
		t.Fatalf("Unregister of a deactivated record: %v", err)
	}
	if _, err := b.s.Dispatcher(b.ctx, Queue, u); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("Dispatcher after Unregister: got %v, want ErrNotFound", err)
	}
	if err := b.s.Unregister(b.ctx, Queue, u); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("second Unregister: got %v, want ErrNotFound", err)
	}
	if err := b.s.Unregister(b.ctx, Queue, newUUID()); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("Unregister of an unknown UUID: got %v, want ErrNotFound", err)
	}
	if err := b.s.Register(b.ctx, Queue, u, DefaultConfig()); err != nil {
		t.Fatalf("Register after Unregister: %v, want the UUID free again", err)
	}
}

func dspDispatchersOrdered(t *testing.T, h Harness) {
	b := setup(t, h)
	u1, u2, u3 := newUUID(), newUUID(), newUUID()
	for _, u := range []string{u3, u1, u2} {
		if err := b.s.Register(b.ctx, Queue, u, DefaultConfig()); err != nil {
			t.Fatalf("Register(%s): %v", u, err)
		}
	}
	if _, err := b.s.Activate(b.ctx, Queue, u2); err != nil {
		t.Fatalf("Activate(%s): %v", u2, err)
	}
	recs, err := b.s.Dispatchers(b.ctx, Queue)
	if err != nil {
		t.Fatalf("Dispatchers: %v", err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.UUID)
	}
	if want := []string{u1, u2, u3}; !slices.Equal(got, want) {
		t.Fatalf("Dispatchers: %v, want %v (UUID order)", got, want)
	}
	for _, r := range recs {
		if r.IsActivated() != (r.UUID == u2) {
			t.Fatalf("Dispatchers: %s activated=%v, want only %s activated", r.UUID, r.IsActivated(), u2)
		}
	}
	if recs, err := b.s.Dispatchers(b.ctx, "other"); err != nil || len(recs) != 0 {
		t.Fatalf("Dispatchers of another queue: %d records, err %v; want none", len(recs), err)
	}
}

func dspConfigure(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	c := persistence.DispatcherConfig{
		PingInterval:      10 * time.Second,
		PingDeathInterval: 20 * time.Second,
		Agents:            []persistence.AgentSpec{{Name: "main", Size: 5}, {Name: "other", Size: 1}},
	}
	if err := b.s.Configure(b.ctx, Queue, u, c); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	r := dspRecord(b, Queue, u)
	if r.PingInterval != c.PingInterval || r.PingDeathInterval != c.PingDeathInterval || !slices.Equal(r.Agents, c.Agents) {
		t.Fatalf("after Configure: intervals %s/%s agents %v, want %s/%s %v",
			r.PingInterval, r.PingDeathInterval, r.Agents, c.PingInterval, c.PingDeathInterval, c.Agents)
	}
	if !r.IsActivated() || !r.Activated.Equal(Epoch) {
		t.Fatalf("after Configure: Activated %s, want %s (Configure does not touch activation)", r.Activated, Epoch)
	}
	// The new death interval rules: dead 21 s after activation instead of 61 s.
	b.clock.Set(Epoch.Add(21 * time.Second))
	if r := dspRecord(b, Queue, u); !r.Dead {
		t.Fatalf("21 s after activation with a 20 s ping death interval: Dead false, want true")
	}
}

func dspActivateTwice(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	r := dspRecord(b, Queue, u)
	if !r.Activated.Equal(Epoch) || r.Dead {
		t.Fatalf("activated record: Activated %s Dead %v, want %s and alive", r.Activated, r.Dead, Epoch)
	}
	b.clock.Set(Epoch.Add(30 * time.Second))
	if _, err := b.s.Activate(b.ctx, Queue, u); !errors.Is(err, persistence.ErrAlreadyActivated) {
		t.Fatalf("Activate of a live activated record: got %v, want ErrAlreadyActivated", err)
	}
	if r := dspRecord(b, Queue, u); !r.Activated.Equal(Epoch) {
		t.Fatalf("after a refused Activate: Activated %s, want it unchanged at %s", r.Activated, Epoch)
	}
}

func dspActivateDeadTakesOver(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	o := persistence.Owner{Dispatcher: u, Agent: "main"}
	ja, jb := b.putCall("a"), b.putCall("b")
	got := dspClaim(b, Queue, o, 3, 0)
	if !slices.Equal(ids(got), []string{ja.ID, jb.ID}) {
		t.Fatalf("claim: %v, want [%s %s]", ids(got), ja.ID, jb.ID)
	}
	b.start(got[1].Fence())

	now := b.clock.Advance(61 * time.Second)
	rep, err := b.s.Activate(b.ctx, Queue, u)
	if err != nil {
		t.Fatalf("Activate of a dead activated record: %v, want it cleaned and taken over", err)
	}
	if !slices.Equal(rep.Requeued, []string{ja.ID}) || !slices.Equal(rep.Interrupted, []string{jb.ID}) || len(rep.SystemJobs) != 1 {
		t.Fatalf("Activate report: requeued %v interrupted %v system jobs %v, want [%s] [%s] and one system job",
			rep.Requeued, rep.Interrupted, rep.SystemJobs, ja.ID, jb.ID)
	}
	r := dspRecord(b, Queue, u)
	if !r.Activated.Equal(now) || r.Dead {
		t.Fatalf("taken-over record: Activated %s Dead %v, want %s and alive", r.Activated, r.Dead, now)
	}
	if held := dspAgentJobs(b, Queue, o); len(held) != 0 {
		t.Fatalf("agent after Activate: holds %v, want nothing (cleaned first)", held)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{rep.SystemJobs[0], ja.ID}) {
		t.Fatalf("queue after Activate: %v, want [%s %s]", p, rep.SystemJobs[0], ja.ID)
	}
}

func dspDeactivateReactivate(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	o := persistence.Owner{Dispatcher: u, Agent: "main"}
	ja := b.putCall("a")
	dspClaim(b, Queue, o, 3, 0)

	rep, err := b.s.Deactivate(b.ctx, Queue, u)
	if err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if !slices.Equal(rep.Requeued, []string{ja.ID}) {
		t.Fatalf("Deactivate report: requeued %v, want [%s]", rep.Requeued, ja.ID)
	}
	if r := dspRecord(b, Queue, u); r.IsActivated() {
		t.Fatalf("after Deactivate: Activated %s, want zero", r.Activated)
	}
	// Deactivating again is safe and finds nothing left.
	rep, err = b.s.Deactivate(b.ctx, Queue, u)
	if err != nil || rep.Len() != 0 {
		t.Fatalf("second Deactivate: report %+v err %v, want an empty report", rep, err)
	}

	now := b.clock.Advance(10 * time.Second)
	if err := b.s.Reactivate(b.ctx, Queue, u); err != nil {
		t.Fatalf("Reactivate: %v", err)
	}
	if r := dspRecord(b, Queue, u); !r.Activated.Equal(now) || r.Dead {
		t.Fatalf("after Reactivate: Activated %s Dead %v, want %s and alive", r.Activated, r.Dead, now)
	}
	if got := dspClaim(b, Queue, o, 3, 0); !slices.Equal(ids(got), []string{ja.ID}) {
		t.Fatalf("claim after Reactivate: %v, want [%s]", ids(got), ja.ID)
	}
}

func dspReactivateDoesNotClean(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	o := persistence.Owner{Dispatcher: u, Agent: "main"}
	ja, jb := b.putCall("a"), b.putCall("b")
	got := dspClaim(b, Queue, o, 3, 0)
	b.start(got[1].Fence())

	now := b.clock.Advance(61 * time.Second)
	if r := dspRecord(b, Queue, u); !r.Dead {
		t.Fatalf("61 s after activation without a ping: Dead false, want true")
	}
	if err := b.s.Reactivate(b.ctx, Queue, u); err != nil {
		t.Fatalf("Reactivate: %v", err)
	}
	if r := dspRecord(b, Queue, u); !r.Activated.Equal(now) || r.Dead {
		t.Fatalf("after Reactivate: Activated %s Dead %v, want %s and alive", r.Activated, r.Dead, now)
	}
	if held := dspAgentJobs(b, Queue, o); !slices.Equal(held, []string{ja.ID, jb.ID}) {
		t.Fatalf("agent after Reactivate: holds %v, want [%s %s] (no cleaning)", held, ja.ID, jb.ID)
	}
	for i, want := range []persistence.Status{persistence.StatusAssigned, persistence.StatusActive} {
		j := b.get(got[i].Ref)
		if j.Status != want || j.Owner != o || j.Attempt != got[i].Attempt {
			t.Fatalf("%s after Reactivate: %s owner %s attempt %d, want %s owner %s attempt %d",
				j.ID, j.Status, j.Owner, j.Attempt, want, o, got[i].Attempt)
		}
	}
	// The run is still its own: the fenced commit goes through.
	b.commit(got[1].Fence(), `2`)
}

func dspDeathRule(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	dspPing(b, Queue, u)
	check := func(at time.Duration, dead, activated bool, why string) {
		t.Helper()
		b.clock.Set(Epoch.Add(at))
		r := dspRecord(b, Queue, u)
		if r.Dead != dead || r.IsActivated() != activated {
			t.Fatalf("at +%s: Dead %v activated %v (Activated %s, LastPing %s), want Dead %v activated %v: %s",
				at, r.Dead, r.IsActivated(), r.Activated, r.LastPing, dead, activated, why)
		}
	}
	check(60*time.Second, false, true, "ping + 60 s is not before now")
	check(61*time.Second, true, true, "ping + 60 s is before now")
	dspPing(b, Queue, u) // at +61 s: the ping is old enough to be rewritten
	check(61*time.Second, false, true, "a ping at +61 s revives it")
	if r := dspRecord(b, Queue, u); !r.LastPing.Equal(Epoch.Add(61 * time.Second)) {
		t.Fatalf("LastPing %s, want %s", r.LastPing, Epoch.Add(61*time.Second))
	}
	b.clock.Set(Epoch.Add(100 * time.Second))
	if _, err := b.s.Deactivate(b.ctx, Queue, u); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if err := b.s.Reactivate(b.ctx, Queue, u); err != nil {
		t.Fatalf("Reactivate: %v", err)
	}
	// Activated (+100 s) is later than LastPing (+61 s): it is the reference.
	check(150*time.Second, false, true, "activation at +100 s is later than the last ping at +61 s")
	check(161*time.Second, true, true, "activation at +100 s + 60 s is before now")
	b.clock.Set(Epoch.Add(150 * time.Second))
	if _, err := b.s.Deactivate(b.ctx, Queue, u); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	// Deactivated, only the last ping (+61 s) counts.
	check(150*time.Second, true, false, "a deactivated record is judged by its last ping alone")
}

// Scenario 43: last_ping unchanged at +5 s and +15 s, updated at +30 s.
func dspPingInterval(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	before := dspRecord(b, Queue, u)
	r := dspPing(b, Queue, u)
	if before.LastPing.IsZero() && !r.Wrote {
		t.Fatalf("first ping of a record without one: Wrote false, want true")
	}
	if r.Reactivated {
		t.Fatalf("ping of an activated record: Reactivated true, want false")
	}
	if !r.At.Equal(Epoch) {
		t.Fatalf("ping At %s, want %s (the store's clock)", r.At, Epoch)
	}
	if rec := dspRecord(b, Queue, u); !rec.LastPing.Equal(Epoch) {
		t.Fatalf("after the first ping: LastPing %s, want %s", rec.LastPing, Epoch)
	}
	for _, d := range []time.Duration{5 * time.Second, 15 * time.Second, 29 * time.Second} {
		b.clock.Set(Epoch.Add(d))
		if r := dspPing(b, Queue, u); r.Wrote {
			t.Fatalf("ping at +%s with a 30 s ping interval: Wrote true, want false", d)
		}
		if rec := dspRecord(b, Queue, u); !rec.LastPing.Equal(Epoch) {
			t.Fatalf("after a ping at +%s: LastPing %s, want it unchanged at %s", d, rec.LastPing, Epoch)
		}
	}
	at := Epoch.Add(30 * time.Second)
	b.clock.Set(at)
	if r := dspPing(b, Queue, u); !r.Wrote || !r.At.Equal(at) {
		t.Fatalf("ping at +30 s: Wrote %v At %s, want true at %s", r.Wrote, r.At, at)
	}
	if rec := dspRecord(b, Queue, u); !rec.LastPing.Equal(at) {
		t.Fatalf("after a ping at +30 s: LastPing %s, want %s", rec.LastPing, at)
	}
	b.clock.Set(Epoch.Add(45 * time.Second))
	if r := dspPing(b, Queue, u); r.Wrote {
		t.Fatalf("ping at +45 s, 15 s after the last one: Wrote true, want false")
	}
	if rec := dspRecord(b, Queue, u); !rec.LastPing.Equal(at) {
		t.Fatalf("after a ping at +45 s: LastPing %s, want it unchanged at %s", rec.LastPing, at)
	}
}

// Scenarios 42 and 49: a ping of a record that a sibling deactivated reactivates it without
// cleaning, and the dispatcher claims again.
func dspPingReactivates(t *testing.T, h Harness) {
	b := setup(t, h)
	u := newUUID()
	b.activate(Queue, u, DefaultConfig())
	o := persistence.Owner{Dispatcher: u, Agent: "main"}
	b.clock.Set(Epoch.Add(10 * time.Second))
	if _, err := b.s.Deactivate(b.ctx, Queue, u); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	now := b.clock.Advance(10 * time.Second)
	r := dspPing(b, Queue, u)
	if !r.Reactivated {
		t.Fatalf("ping of a deactivated record: Reactivated false, want true")
	}
	rec := dspRecord(b, Queue, u)
	if !rec.Activated.Equal(now) || rec.Dead {
		t.Fatalf("after the reactivating ping: Activated %s Dead %v, want %s and alive", rec.Activated, rec.Dead, now)
	}
	if r := dspPing(b, Queue, u); r.Reactivated {
		t.Fatalf("second ping: Reactivated true, want false (the record is activated)")
	}
	j := b.putCall("after")
	if got := dspClaim(b, Queue, o, 3, 0); !slices.Equal(ids(got), []string{j.ID}) {
		t.Fatalf("claim after the reactivating ping: %v, want [%s]", ids(got), j.ID)
	}
}

func dspNextSibling(t *testing.T, h Harness) {
	b := setup(t, h)
	u1 := newUUID()
	b.activate(Queue, u1, DefaultConfig())
	if _, err := b.s.NextSibling(b.ctx, Queue, u1); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("NextSibling of a lone dispatcher: got %v, want ErrNotFound", err)
	}
	u2, u3, u4 := newUUID(), newUUID(), newUUID()
	b.activate(Queue, u2, DefaultConfig())
	b.activate(Queue, u3, DefaultConfig())
	if err := b.s.Register(b.ctx, Queue, u4, DefaultConfig()); err != nil { // registered, never activated
		t.Fatalf("Register(%s): %v", u4, err)
	}
	next := func(u, want string) {
		t.Helper()
		r, err := b.s.NextSibling(b.ctx, Queue, u)
		if err != nil {
			t.Fatalf("NextSibling(%s): %v, want %s", u, err, want)
		}
		if r.UUID != want {
			t.Fatalf("NextSibling(%s) = %s, want %s", u, r.UUID, want)
		}
		if !r.IsActivated() {
			t.Fatalf("NextSibling(%s) returned a record not activated", u)
		}
	}
	next(u1, u2)
	next(u2, u3)
	next(u3, u1) // wraps around, skipping u4 which is not activated
	if _, err := b.s.Deactivate(b.ctx, Queue, u2); err != nil {
		t.Fatalf("Deactivate(%s): %v", u2, err)
	}
	next(u1, u3)
	// The sibling is reported with Dead computed at the store's now.
	dspPing(b, Queue, u1)
	b.clock.Set(Epoch.Add(61 * time.Second))
	dspPing(b, Queue, u1)
	r, err := b.s.NextSibling(b.ctx, Queue, u1)
	if err != nil || r.UUID != u3 || !r.Dead {
		t.Fatalf("NextSibling(%s) after 61 s: %v (err %v), want %s Dead", u1, r, err, u3)
	}
}

// Scenario 39: an agent of size 3 with 5 jobs queued.
func dspClaimSize(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	var put []string
	for i := range 5 {
		put = append(put, b.putCall("job", i).ID)
	}
	got := dspClaim(b, Queue, o, 3, 0)
	if !slices.Equal(ids(got), put[:3]) {
		t.Fatalf("first claim: %v, want %v", ids(got), put[:3])
	}
	for _, j := range got {
		if j.Status != persistence.StatusAssigned || j.Owner != o || j.Holder != o || j.Attempt < 1 {
			t.Fatalf("claimed %s: %s owner %s holder %s attempt %d, want assigned to %s with an attempt",
				j.ID, j.Status, j.Owner, j.Holder, j.Attempt, o)
		}
	}
	dspClaimFull(b, Queue, o, 3, "with the agent full")
	if held := dspAgentJobs(b, Queue, o); !slices.Equal(held, put[:3]) {
		t.Fatalf("AgentJobs: %v, want %v", held, put[:3])
	}
	if p := b.pending(Queue); !slices.Equal(p, put[3:]) {
		t.Fatalf("queue: %v, want %v", p, put[3:])
	}

	b.clock.Advance(time.Second)
	done := dspFinish(b, got[0])
	if string(done.Result) != "1" {
		t.Fatalf("completed job result %s, want 1", done.Result)
	}
	if held := dspAgentJobs(b, Queue, o); !slices.Equal(held, put[1:3]) {
		t.Fatalf("AgentJobs after one completion: %v, want %v", held, put[1:3])
	}
	if hist := dspHistory(b, Queue, o); !slices.Equal(hist, put[:1]) {
		t.Fatalf("completed history: %v, want %v", hist, put[:1])
	}
	if got := dspClaim(b, Queue, o, 3, 0); !slices.Equal(ids(got), put[3:4]) {
		t.Fatalf("claim after one completion: %v, want %v", ids(got), put[3:4])
	}
	dspClaimFull(b, Queue, o, 3, "with the agent full again")
}

func dspClaimMax(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	var put []string
	for i := range 5 {
		put = append(put, b.putCall("job", i).ID)
	}
	if got := dspClaim(b, Queue, o, 3, 2); !slices.Equal(ids(got), put[:2]) {
		t.Fatalf("claim with Max 2: %v, want %v", ids(got), put[:2])
	}
	if got := dspClaim(b, Queue, o, 3, 2); !slices.Equal(ids(got), put[2:3]) {
		t.Fatalf("claim with Max 2 and one free slot: %v, want %v", ids(got), put[2:3])
	}
}

func dspClaimParked(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	var put []string
	for i := range 4 {
		put = append(put, b.putCall("job", i).ID)
	}
	got := dspClaim(b, Queue, o, 3, 0)
	if len(got) != 3 {
		t.Fatalf("first claim: %v, want 3 jobs", ids(got))
	}
	inner, err := b.s.Create(b.ctx, Queue, persistence.JobSpec{Call: call("inner")})
	if err != nil {
		t.Fatalf("Create(inner): %v", err)
	}
	f := got[0].Fence()
	b.start(f)
	w, err := b.s.Wait(b.ctx, f, inner.ID, true)
	if err != nil {
		t.Fatalf("Wait(park): %v", err)
	}
	if !w.Parked || w.WaitingOn != inner.ID || w.Status != persistence.StatusActive {
		t.Fatalf("parked job: Parked %v WaitingOn %q status %s, want parked on %s and active", w.Parked, w.WaitingOn, w.Status, inner.ID)
	}
	if more := dspClaim(b, Queue, o, 3, 0); !slices.Equal(ids(more), put[3:]) {
		t.Fatalf("claim with one job parked: %v, want %v (parked jobs free their slot)", ids(more), put[3:])
	}
	if held := dspAgentJobs(b, Queue, o); !dspSameSet(held, put) {
		t.Fatalf("AgentJobs with one job parked: %v, want %v (parked jobs stay held)", held, put)
	}
	b.putCall("extra")
	dspClaimFull(b, Queue, o, 3, "with 3 unparked jobs held")
}

// Scenario 40: after Deactivate the agent holds nothing and claims are refused.
func dspClaimAfterDeactivate(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	j1, j2 := b.putCall("a"), b.putCall("b")
	dspClaim(b, Queue, o, 3, 0)
	if _, err := b.s.Deactivate(b.ctx, Queue, o.Dispatcher); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if held := dspAgentJobs(b, Queue, o); len(held) != 0 {
		t.Fatalf("AgentJobs after Deactivate: %v, want empty", held)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{j1.ID, j2.ID}) {
		t.Fatalf("queue after Deactivate: %v, want [%s %s]", p, j1.ID, j2.ID)
	}
	_, err := b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: 3})
	if !errors.Is(err, persistence.ErrNotActivated) {
		t.Fatalf("Claim after Deactivate: got %v, want ErrNotActivated", err)
	}
	if p := b.pending(Queue); len(p) != 2 {
		t.Fatalf("queue after a refused claim: %v, want both jobs still there", p)
	}
}

// Scenario 40, second half: a dead record cannot claim until it pings.
func dspClaimWhenDead(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	dspPing(b, Queue, o.Dispatcher)
	j := b.putCall("a")
	b.clock.Set(Epoch.Add(61 * time.Second))
	_, err := b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: 3})
	if !errors.Is(err, persistence.ErrNotActivated) {
		t.Fatalf("Claim 61 s after the last ping: got %v, want ErrNotActivated (dead)", err)
	}
	b.clock.Set(Epoch.AddDate(1, 0, 0))
	_, err = b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: 3})
	if !errors.Is(err, persistence.ErrNotActivated) {
		t.Fatalf("Claim a year after the last ping: got %v, want ErrNotActivated (dead)", err)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{j.ID}) {
		t.Fatalf("queue after refused claims: %v, want [%s]", p, j.ID)
	}
	dspPing(b, Queue, o.Dispatcher)
	if got := dspClaim(b, Queue, o, 3, 0); !slices.Equal(ids(got), []string{j.ID}) {
		t.Fatalf("claim after a ping: %v, want [%s]", ids(got), j.ID)
	}
}

// Scenario 41: a filter claims only the jobs it accepts.
func dspClaimFilter(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	var match, other []string
	for i := range 6 {
		if i%2 == 0 {
			match = append(match, b.putCall("match", i).ID)
		} else {
			other = append(other, b.putCall("other", i).ID)
		}
	}
	var seen sync.Map
	filter := func(j *persistence.Job) bool {
		seen.Store(j.ID, true)
		return j.Call.Handler == "match"
	}
	got, err := b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: 10, Filter: filter})
	if err != nil {
		t.Fatalf("Claim with a filter: %v", err)
	}
	if !slices.Equal(ids(got), match) {
		t.Fatalf("Claim with a filter: %v, want %v", ids(got), match)
	}
	if _, ok := seen.Load(other[0]); !ok {
		t.Fatalf("the filter never saw %s, want it consulted for every job examined", other[0])
	}
	if p := b.pending(Queue); !slices.Equal(p, other) {
		t.Fatalf("queue after a filtered claim: %v, want %v (rejected jobs stay, in order)", p, other)
	}
	for _, id := range other {
		if j := b.get(dspRef(id)); j.Status != persistence.StatusPending || !j.Owner.IsZero() {
			t.Fatalf("rejected job %s: %s owner %s, want pending with no owner", id, j.Status, j.Owner)
		}
	}
}

// dspRef is the ref of job id in Queue.
func dspRef(id string) persistence.Ref { return persistence.Ref{Queue: Queue, ID: id} }

// Scenario 44: a dead sibling's agent is cleaned by the dispatcher that finds it.
func dspSiblingDeath(t *testing.T, h Harness) {
	b := setup(t, h)
	ou, su := newUUID(), newUUID()
	b.activate(Queue, ou, DefaultConfig())
	b.activate(Queue, su, dspConfig(5))
	so := persistence.Owner{Dispatcher: su, Agent: "main"}
	ja, jb, jc, jd := b.putCall("A"), b.putCall("B"), b.putCall("C"), b.putCall("D")
	je := b.putCall("E")
	got := dspClaim(b, Queue, so, 5, 4)
	if !slices.Equal(ids(got), []string{ja.ID, jb.ID, jc.ID, jd.ID}) {
		t.Fatalf("sibling's claim: %v, want [A B C D] = [%s %s %s %s]", ids(got), ja.ID, jb.ID, jc.ID, jd.ID)
	}
	fb, fc, fd := got[1].Fence(), got[2].Fence(), got[3].Fence()
	b.start(fb) // B ACTIVE
	b.start(fc)
	b.commit(fc, `3`) // C CALLBACKS
	b.start(fd)
	b.commit(fd, `4`)
	b.complete(fd, 0) // D COMPLETED

	dspPing(b, Queue, ou)
	b.clock.Set(Epoch.Add(61 * time.Second))
	dspPing(b, Queue, ou) // O lives on; S never pings

	sib, err := b.s.NextSibling(b.ctx, Queue, ou)
	if err != nil {
		t.Fatalf("NextSibling(O): %v", err)
	}
	if sib.UUID != su || !sib.Dead || !sib.IsActivated() {
		t.Fatalf("NextSibling(O): %s Dead %v activated %v, want S=%s activated and Dead", sib.UUID, sib.Dead, sib.IsActivated(), su)
	}
	if r := dspRecord(b, Queue, ou); r.Dead {
		t.Fatalf("O, which pinged at +61 s, reads as dead, want alive")
	}

	rep, err := b.s.Deactivate(b.ctx, Queue, su)
	if err != nil {
		t.Fatalf("Deactivate(S): %v", err)
	}
	if r := dspRecord(b, Queue, su); r.IsActivated() || !r.Dead {
		t.Fatalf("S after Deactivate: activated %v Dead %v, want not activated and Dead", r.IsActivated(), r.Dead)
	}
	if held := dspAgentJobs(b, Queue, so); len(held) != 0 {
		t.Fatalf("S's agent after Deactivate: holds %v, want nothing", held)
	}
	if !slices.Equal(rep.Requeued, []string{ja.ID}) || !slices.Equal(rep.Interrupted, []string{jb.ID}) ||
		!slices.Equal(rep.Resumed, []string{jc.ID}) || len(rep.Completed) != 0 || len(rep.SystemJobs) != 2 {
		t.Fatalf("clean report %+v, want Requeued [%s] Interrupted [%s] Resumed [%s] Completed [] and 2 system jobs",
			rep, ja.ID, jb.ID, jc.ID)
	}

	// zc.async queued the system jobs at the end ([E, A, B.handleInterrupt,
	// C.resumeCallbacks]); they go to the head here, so that a dead dispatcher's work never
	// waits behind the backlog (ARCHITECTURE.md, "What good means": a dead dispatcher's work
	// runs elsewhere within ping_death_interval plus two poll intervals).
	p := b.pending(Queue)
	if len(p) != 4 || p[2] != je.ID || p[3] != ja.ID {
		t.Fatalf("queue after cleaning: %v, want [B.handleInterrupt C.resumeCallbacks E=%s A=%s]", p, je.ID, ja.ID)
	}
	if !dspSameSet(rep.SystemJobs, p[:2]) {
		t.Fatalf("report system jobs %v, want the queued ones %v", rep.SystemJobs, p[:2])
	}
	for i, want := range []struct {
		handler, target string
	}{{persistence.HandlerHandleInterrupt, jb.ID}, {persistence.HandlerResumeCallbacks, jc.ID}} {
		sj := b.get(dspRef(p[i]))
		if sj.Call.Handler != want.handler || sj.Target != want.target {
			t.Fatalf("queue[%d] = %s(%s target %q), want %s with target %s", i, sj.ID, sj.Call.Handler, sj.Target, want.handler, want.target)
		}
		if sj.Status != persistence.StatusPending || sj.RetryPolicy != persistence.RetryCommonForeverName || sj.FailureLogLevel != persistence.LevelCritical {
			t.Fatalf("system job %s: %s policy %q level %v, want pending, %s, LevelCritical",
				sj.ID, sj.Status, sj.RetryPolicy, sj.FailureLogLevel, persistence.RetryCommonForeverName)
		}
	}

	a := b.get(ja.Ref)
	if a.Status != persistence.StatusPending || !a.Owner.IsZero() || !a.Holder.IsZero() {
		t.Fatalf("A after cleaning: %s owner %q holder %q, want pending with no owner nor holder", a.Status, a.Owner, a.Holder)
	}
	bb := b.get(jb.Ref)
	if bb.Status != persistence.StatusActive || !bb.Owner.IsZero() {
		t.Fatalf("B after cleaning: %s owner %q, want active with no owner", bb.Status, bb.Owner)
	}
	c := b.get(jc.Ref)
	if c.Status != persistence.StatusCallbacks || !c.Owner.IsZero() || string(c.Result) != "3" {
		t.Fatalf("C after cleaning: %s owner %q result %s, want callbacks with no owner and result 3", c.Status, c.Owner, c.Result)
	}
	if d := b.get(jd.Ref); d.Status != persistence.StatusCompleted {
		t.Fatalf("D after cleaning: %s, want completed", d.Status)
	}
	if hist := dspHistory(b, Queue, so); !slices.Equal(hist, []string{jd.ID}) {
		t.Fatalf("S's completed history: %v, want [D=%s]", hist, jd.ID)
	}

	// S's late writes are fenced out.
	if _, err := b.s.Commit(b.ctx, fb, persistence.Outcome{Result: json.RawMessage(`2`)}); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("S's late Commit of B: got %v, want ErrReassigned", err)
	}
	if _, err := b.s.Complete(b.ctx, fc, 0); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("S's late Complete of C: got %v, want ErrReassigned", err)
	}
	if bb := b.get(jb.Ref); bb.Status != persistence.StatusActive || bb.Result != nil {
		t.Fatalf("B after a refused late commit: %s result %s, want active without result", bb.Status, bb.Result)
	}
	_, err = b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: su, Agent: "main", Size: 5})
	if !errors.Is(err, persistence.ErrNotActivated) {
		t.Fatalf("Claim by deactivated S: got %v, want ErrNotActivated", err)
	}
	if _, err := b.s.NextSibling(b.ctx, Queue, ou); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("NextSibling(O) once S is deactivated: got %v, want ErrNotFound", err)
	}
}

// dspRetry calls f until it does not fail with ErrConflict, at most 1000 times.
func dspRetry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 1000 {
		v, err = f()
		if !errors.Is(err, persistence.ErrConflict) {
			return v, err
		}
	}
	return v, err
}

// Two cleaners racing on one dead agent: every job is handled exactly once.
func dspRacingCleaners(t *testing.T, h Harness) {
	b := setup(t, h)
	const assigned, active, inCallbacks = 3, 4, 2
	for round := range 10 {
		q := fmt.Sprintf("race%d", round)
		su := newUUID()
		b.activate(q, su, dspConfig(20))
		so := persistence.Owner{Dispatcher: su, Agent: "main"}
		specs := make([]persistence.JobSpec, assigned+active+inCallbacks)
		for i := range specs {
			specs[i] = persistence.JobSpec{Call: call("job", i)}
		}
		if _, err := b.s.PutMany(b.ctx, q, specs); err != nil {
			t.Fatalf("PutMany: %v", err)
		}
		got := dspClaim(b, q, so, 20, 0)
		if len(got) != len(specs) {
			t.Fatalf("round %d: claimed %d jobs, want %d", round, len(got), len(specs))
		}
		want := map[string]string{} // id → "requeued", "interrupted" or "resumed"
		for i, j := range got {
			switch {
			case i < assigned:
				want[j.ID] = "requeued"
			case i < assigned+active:
				b.start(j.Fence())
				want[j.ID] = "interrupted"
			default:
				b.start(j.Fence())
				b.commit(j.Fence(), `0`)
				want[j.ID] = "resumed"
			}
		}
		b.clock.Advance(61 * time.Second)

		start := make(chan struct{})
		reports := make(chan *persistence.CleanReport, 2)
		errs := make(chan error, 2)
		var wg sync.WaitGroup
		for k := range 2 {
			wg.Go(func() {
				<-start
				rep, err := dspRetry(func() (*persistence.CleanReport, error) {
					if k == 1 && round%2 == 1 {
						return b.s.CleanAgent(b.ctx, q, so)
					}
					return b.s.Deactivate(b.ctx, q, su)
				})
				if err != nil {
					errs <- fmt.Errorf("cleaner %d: %w", k, err)
					return
				}
				reports <- rep
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		close(reports)
		for err := range errs {
			t.Fatalf("round %d: racing cleaners: %v", round, err)
		}
		seen := map[string]string{}
		var system []string
		for rep := range reports {
			for kind, list := range map[string][]string{"requeued": rep.Requeued, "interrupted": rep.Interrupted, "resumed": rep.Resumed, "completed": rep.Completed} {
				for _, id := range list {
					if prev, ok := seen[id]; ok {
						t.Fatalf("round %d: job %s handled twice (%s and %s), want exactly once", round, id, prev, kind)
					}
					seen[id] = kind
				}
			}
			system = append(system, rep.SystemJobs...)
		}
		for id, kind := range want {
			if seen[id] != kind {
				t.Fatalf("round %d: job %s was %q by the cleaners, want %q exactly once", round, id, seen[id], kind)
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("round %d: cleaners reported %d jobs, want %d", round, len(seen), len(want))
		}
		if len(system) != active+inCallbacks {
			t.Fatalf("round %d: %d system jobs reported, want %d", round, len(system), active+inCallbacks)
		}
		p, err := b.s.Pending(b.ctx, q, 0, 1000)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		if len(p) != assigned+active+inCallbacks {
			t.Fatalf("round %d: queue after racing cleaners holds %d jobs %v, want %d", round, len(p), p, assigned+active+inCallbacks)
		}
		queued, err := b.s.GetMany(b.ctx, q, p)
		if err != nil {
			t.Fatalf("GetMany: %v", err)
		}
		targets := map[string]int{}
		for i, j := range queued {
			if j == nil {
				t.Fatalf("round %d: queued job %s not found", round, p[i])
			}
			switch j.Call.Handler {
			case persistence.HandlerHandleInterrupt, persistence.HandlerResumeCallbacks:
				targets[j.Target]++
				if kind := want[j.Target]; (kind == "interrupted") != (j.Call.Handler == persistence.HandlerHandleInterrupt) || kind == "requeued" {
					t.Fatalf("round %d: system job %s for %s (%s), want handleInterrupt for active jobs and resumeCallbacks for callbacks", round, j.Call.Handler, j.Target, kind)
				}
			default:
				if want[j.ID] != "requeued" {
					t.Fatalf("round %d: job %s queued, want only assigned jobs requeued", round, j.ID)
				}
				targets[j.ID]++
			}
		}
		for id := range want {
			if targets[id] != 1 {
				t.Fatalf("round %d: job %s is in the queue (itself or through a system job) %d times, want exactly once", round, id, targets[id])
			}
		}
		if held := dspAgentJobs(b, q, so); len(held) != 0 {
			t.Fatalf("round %d: agent after racing cleaners holds %v, want nothing", round, held)
		}
	}
}

func dspHeldBy(t *testing.T, h Harness) {
	b := setup(t, h)
	o1, o2, o3 := b.dispatcher(), b.dispatcher(), b.dispatcher()
	for i := range 3 {
		b.putCall("job", i)
	}
	dspClaim(b, Queue, o1, 3, 2)
	got2 := dspClaim(b, Queue, o2, 3, 1)
	held, err := b.s.HeldBy(b.ctx, Queue)
	if err != nil {
		t.Fatalf("HeldBy: %v", err)
	}
	if len(held) != 2 || !slices.Contains(held, o1) || !slices.Contains(held, o2) || slices.Contains(held, o3) {
		t.Fatalf("HeldBy: %v, want %s and %s (and not %s, which holds nothing)", held, o1, o2, o3)
	}
	dspFinish(b, got2[0])
	held, err = b.s.HeldBy(b.ctx, Queue)
	if err != nil {
		t.Fatalf("HeldBy: %v", err)
	}
	if !slices.Equal(held, []persistence.Owner{o1}) {
		t.Fatalf("HeldBy after %s completed its job: %v, want [%s]", o2, held, o1)
	}
}

func dspCleanAgent(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	ja, jb := b.putCall("a"), b.putCall("b")
	got := dspClaim(b, Queue, o, 3, 0)
	b.start(got[1].Fence())
	// Its dispatcher is activated and alive: nothing is taken from it.
	if _, err := b.s.CleanAgent(b.ctx, Queue, o); !errors.Is(err, persistence.ErrActivated) {
		t.Fatalf("CleanAgent of a live dispatcher's agent: %v, want ErrActivated", err)
	}
	if held := dspAgentJobs(b, Queue, o); len(held) != 2 {
		t.Fatalf("agent after a refused CleanAgent: holds %v, want both jobs", held)
	}
	b.clock.Advance(61 * time.Second) // now it is dead
	rep, err := b.s.CleanAgent(b.ctx, Queue, o)
	if err != nil {
		t.Fatalf("CleanAgent: %v", err)
	}
	if !slices.Equal(rep.Requeued, []string{ja.ID}) || !slices.Equal(rep.Interrupted, []string{jb.ID}) || len(rep.SystemJobs) != 1 {
		t.Fatalf("CleanAgent report %+v, want Requeued [%s] Interrupted [%s] and one system job", rep, ja.ID, jb.ID)
	}
	if held := dspAgentJobs(b, Queue, o); len(held) != 0 {
		t.Fatalf("agent after CleanAgent: holds %v, want nothing", held)
	}
	if held, err := b.s.HeldBy(b.ctx, Queue); err != nil || len(held) != 0 {
		t.Fatalf("HeldBy after CleanAgent: %v (err %v), want none", held, err)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{rep.SystemJobs[0], ja.ID}) {
		t.Fatalf("queue after CleanAgent: %v, want [%s %s]", p, rep.SystemJobs[0], ja.ID)
	}
	if _, err := b.s.Start(b.ctx, got[0].Fence()); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("Start of a cleaned job with its old fence: got %v, want ErrReassigned", err)
	}
	// An agent whose dispatcher was never registered can be cleaned too.
	ghost := persistence.Owner{Dispatcher: newUUID(), Agent: "main"}
	rep, err = b.s.CleanAgent(b.ctx, Queue, ghost)
	if err != nil {
		t.Fatalf("CleanAgent of an agent without a record: %v, want an empty report", err)
	}
	if rep.Len() != 0 || len(rep.SystemJobs) != 0 {
		t.Fatalf("CleanAgent of an agent without jobs: %+v, want an empty report", rep)
	}
}

// dspCleanJobs: a live dispatcher cleans the jobs of its own agent that its fences name, as
// CleanAgent would, and only those: not a parked job, not a job claimed again since (another
// attempt), not a job its agent no longer holds.
func dspCleanJobs(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	ja, jb, jc, jd := b.putCall("a"), b.putCall("b"), b.putCall("c"), b.putCall("d")
	got := dspClaim(b, Queue, o, 4, 0)
	if len(got) != 4 {
		t.Fatalf("claim: %v, want 4 jobs", ids(got))
	}
	b.start(got[1].Fence())
	b.start(got[2].Fence())
	inner, err := b.s.Create(b.ctx, Queue, persistence.JobSpec{Call: call("inner")})
	if err != nil {
		t.Fatalf("Create(inner): %v", err)
	}
	if _, err := b.s.Wait(b.ctx, got[2].Fence(), inner.ID, true); err != nil {
		t.Fatalf("Wait(park): %v", err)
	}
	stale := got[3].Fence()
	stale.Attempt-- // an earlier run of d
	rep, err := b.s.CleanJobs(b.ctx, []persistence.Fence{got[0].Fence(), got[1].Fence(), got[2].Fence(), stale})
	if err != nil {
		t.Fatalf("CleanJobs of a live dispatcher's own jobs: %v", err)
	}
	if !slices.Equal(rep.Requeued, []string{ja.ID}) || !slices.Equal(rep.Interrupted, []string{jb.ID}) || len(rep.SystemJobs) != 1 {
		t.Fatalf("CleanJobs report %+v, want Requeued [%s] Interrupted [%s] and one system job", rep, ja.ID, jb.ID)
	}
	if held := dspAgentJobs(b, Queue, o); !dspSameSet(held, []string{jc.ID, jd.ID}) {
		t.Fatalf("agent after CleanJobs: holds %v, want the parked %s and %s, claimed at another attempt", held, jc.ID, jd.ID)
	}
	if p := b.pending(Queue); !slices.Equal(p, []string{rep.SystemJobs[0], ja.ID}) {
		t.Fatalf("queue after CleanJobs: %v, want [%s %s]", p, rep.SystemJobs[0], ja.ID)
	}
	if _, err := b.s.Start(b.ctx, got[0].Fence()); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("Start of a cleaned job with its old fence: got %v, want ErrReassigned", err)
	}
	// Again: nothing is held under those fences any more.
	rep, err = b.s.CleanJobs(b.ctx, []persistence.Fence{got[0].Fence(), got[1].Fence()})
	if err != nil || rep.Len() != 0 || len(rep.SystemJobs) != 0 {
		t.Fatalf("CleanJobs of jobs cleaned already: %+v, %v; want an empty report", rep, err)
	}
	if _, err := b.s.CleanJobs(b.ctx, []persistence.Fence{{Ref: ja.Ref}}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("CleanJobs without an agent: %v, want ErrInvalid", err)
	}
}

// dspBuryAlive: a record that is alive is not buried, also when it was read dead a moment
// before and pinged since (the check is in the deactivating transaction).
func dspBuryAlive(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	b.putCall("a")
	dspClaim(b, Queue, o, 3, 0)
	rep, ok, err := b.s.Bury(b.ctx, Queue, o.Dispatcher)
	if err != nil || ok || rep != nil {
		t.Fatalf("Bury of a live record: %v, %v, %v; want nothing done", rep, ok, err)
	}
	b.clock.Advance(61 * time.Second)
	if r := dspRecord(b, Queue, o.Dispatcher); !r.Dead {
		t.Fatalf("record not dead after 61 s without a ping")
	}
	dspPing(b, Queue, o.Dispatcher) // it was only slow
	if _, ok, err := b.s.Bury(b.ctx, Queue, o.Dispatcher); err != nil || ok {
		t.Fatalf("Bury of a record that pinged again: ok %v, %v; want not buried", ok, err)
	}
	if r := dspRecord(b, Queue, o.Dispatcher); !r.IsActivated() || r.Dead {
		t.Fatalf("record after a refused Bury: activated %v dead %v, want activated and alive", r.IsActivated(), r.Dead)
	}
	if held := dspAgentJobs(b, Queue, o); len(held) != 1 {
		t.Fatalf("agent after a refused Bury: holds %v, want its job", held)
	}
	if _, _, err := b.s.Bury(b.ctx, Queue, newUUID()); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("Bury of an unknown record: %v, want ErrNotFound", err)
	}
}

// dspBuryDead: a dead record is deactivated and its agents cleaned; burying it again cleans
// only what is left, and a dispatcher that pings after its burial is reactivated.
func dspBuryDead(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	ja, jb := b.putCall("a"), b.putCall("b")
	got := dspClaim(b, Queue, o, 3, 0)
	b.start(got[1].Fence())
	b.clock.Advance(61 * time.Second)
	rep, ok, err := b.s.Bury(b.ctx, Queue, o.Dispatcher)
	if err != nil || !ok {
		t.Fatalf("Bury of a dead record: ok %v, %v", ok, err)
	}
	if !slices.Equal(rep.Requeued, []string{ja.ID}) || !slices.Equal(rep.Interrupted, []string{jb.ID}) || len(rep.SystemJobs) != 1 {
		t.Fatalf("Bury report %+v, want Requeued [%s] Interrupted [%s] and one system job", rep, ja.ID, jb.ID)
	}
	buriedAt := b.clock.Now().Truncate(time.Microsecond)
	if r := dspRecord(b, Queue, o.Dispatcher); r.IsActivated() || !r.Buried.Equal(buriedAt) {
		t.Fatalf("record after Bury: activated %v, buried %s; want deactivated, buried at %s", r.IsActivated(), r.Buried, buriedAt)
	}
	if held := dspAgentJobs(b, Queue, o); len(held) != 0 {
		t.Fatalf("agent after Bury: holds %v, want nothing", held)
	}
	// The run taken from the active job is kept as an earlier run, interrupted.
	if a := b.get(jb.Ref).Attempts; len(a) != 1 || !a[0].Interrupted || a[0].Owner != o.String() || a[0].Attempt != got[1].Attempt ||
		!a[0].End.Equal(buriedAt) {
		t.Fatalf("attempts of the interrupted job: %+v, want its run by %s, interrupted at %s", a, o, buriedAt)
	}
	if a := b.get(ja.Ref).Attempts; len(a) != 0 {
		t.Fatalf("attempts of the job put back unstarted: %+v, want none", a)
	}
	if _, err := b.s.Commit(b.ctx, got[1].Fence(), persistence.Outcome{Result: json.RawMessage(`1`)}); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("late commit of a buried dispatcher's job: %v, want ErrReassigned", err)
	}
	rep, ok, err = b.s.Bury(b.ctx, Queue, o.Dispatcher)
	if err != nil || !ok || rep.Len() != 0 {
		t.Fatalf("second Bury: %+v, ok %v, %v; want an empty report", rep, ok, err)
	}
	if res := dspPing(b, Queue, o.Dispatcher); !res.Reactivated {
		t.Fatalf("ping of a buried dispatcher: %+v, want Reactivated", res)
	}
	// Back, it keeps the time of its last burial, also when its configuration is written.
	if err := b.s.Configure(b.ctx, Queue, o.Dispatcher, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if r := dspRecord(b, Queue, o.Dispatcher); !r.IsActivated() || !r.Buried.Equal(buriedAt) {
		t.Fatalf("record back after its burial: activated %v, buried %s; want activated, buried at %s", r.IsActivated(), r.Buried, buriedAt)
	}
}

// dspRacingBurials: siblings that find the same record dead at once bury it together, and
// each job is cleaned exactly once.
func dspRacingBurials(t *testing.T, h Harness) {
	b := setup(t, h)
	o := b.dispatcher()
	for i := range 6 {
		b.putCall("job", i)
	}
	got := dspClaim(b, Queue, o, 6, 0)
	for _, j := range got[3:] {
		b.start(j.Fence())
	}
	b.clock.Advance(61 * time.Second)
	var wg sync.WaitGroup
	reports := make([]*persistence.CleanReport, 3)
	errs := make([]error, 3)
	for k := range 3 {
		wg.Go(func() {
			reports[k], errs[k] = dspRetry(func() (*persistence.CleanReport, error) {
				rep, _, err := b.s.Bury(b.ctx, Queue, o.Dispatcher)
				return rep, err
			})
		})
	}
	wg.Wait()
	seen := map[string]int{}
	system := 0
	for k, rep := range reports {
		if errs[k] != nil {
			t.Fatalf("burial %d: %v", k, errs[k])
		}
		if rep == nil {
			continue
		}
		for _, id := range slices.Concat(rep.Requeued, rep.Interrupted, rep.Resumed, rep.Completed) {
			seen[id]++
		}
		system += len(rep.SystemJobs)
	}
	for _, j := range got {
		if seen[j.ID] != 1 {
			t.Fatalf("job %s cleaned %d times by racing burials, want exactly once", j.ID, seen[j.ID])
		}
	}
	if system != 3 {
		t.Fatalf("%d system jobs from racing burials, want 3", system)
	}
}

// dspForgetStopped: a dispatcher deactivated for longer than the retention (7 days by
// default) is forgotten, with its agents' histories, and so is what an unregistered one left;
// a dispatcher activated (alive or dead), stopped recently, or never known alive is kept. A
// forgotten UUID can start again.
func dspForgetStopped(t *testing.T, h Harness) {
	b := setup(t, h)
	forget := func(when string) []string {
		t.Helper()
		got, err := b.s.ForgetStopped(b.ctx, Queue)
		if err != nil {
			t.Fatalf("ForgetStopped %s: %v", when, err)
		}
		return got
	}
	stopped, unregistered := b.dispatcher(), b.dispatcher()
	alive, dead, recent := b.dispatcher(), b.dispatcher(), b.dispatcher()
	idle := newUUID() // registered, never activated
	if err := b.s.Register(b.ctx, Queue, idle, DefaultConfig()); err != nil {
		t.Fatalf("Register: %v", err)
	}
	dspPing(b, Queue, dead.Dispatcher) // then never again: dead, but not buried yet
	var done []string
	for _, o := range []persistence.Owner{stopped, unregistered} {
		dspPing(b, Queue, o.Dispatcher)
		b.putCall("job")
		done = append(done, dspFinish(b, dspClaim(b, Queue, o, 3, 1)[0]).ID)
		if _, err := b.s.Deactivate(b.ctx, Queue, o.Dispatcher); err != nil {
			t.Fatalf("Deactivate(%s): %v", o.Dispatcher, err)
		}
	}
	if err := b.s.Unregister(b.ctx, Queue, unregistered.Dispatcher); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	if got := forget("within the retention"); len(got) != 0 {
		t.Fatalf("ForgetStopped right after the stops forgot %v, want nothing", got)
	}

	b.clock.Advance(8 * 24 * time.Hour)
	dspPing(b, Queue, alive.Dispatcher)
	dspPing(b, Queue, recent.Dispatcher)
	if _, err := b.s.Deactivate(b.ctx, Queue, recent.Dispatcher); err != nil {
		t.Fatalf("Deactivate(%s): %v", recent.Dispatcher, err)
	}
	if h := dspHistory(b, Queue, stopped); !slices.Equal(h, done[:1]) {
		t.Fatalf("history of %s before it is forgotten: %v, want %v", stopped, h, done[:1])
	}
	got := forget("8 days later")
	if want := []string{stopped.Dispatcher, unregistered.Dispatcher}; !dspSameSet(got, want) {
		t.Fatalf("ForgetStopped 8 days later forgot %v, want %v (not %s alive, %s dead but activated, %s stopped now, %s never activated)",
			got, want, alive.Dispatcher, dead.Dispatcher, recent.Dispatcher, idle)
	}
	if _, err := b.s.Dispatcher(b.ctx, Queue, stopped.Dispatcher); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("record of a forgotten dispatcher: %v, want ErrNotFound", err)
	}
	for _, o := range []persistence.Owner{stopped, unregistered} {
		if h := dspHistory(b, Queue, o); len(h) != 0 {
			t.Fatalf("history of forgotten %s: %v, want none", o, h)
		}
	}
	if kept, want := dspUUIDs(b, Queue), []string{alive.Dispatcher, dead.Dispatcher, recent.Dispatcher, idle}; !dspSameSet(kept, want) {
		t.Fatalf("records left: %v, want %v", kept, want)
	}
	if got := forget("again"); len(got) != 0 {
		t.Fatalf("a second ForgetStopped forgot %v, want nothing", got)
	}
	// The forgotten UUID starts again as a new dispatcher.
	b.activate(Queue, stopped.Dispatcher, DefaultConfig())
	b.putCall("job")
	if jobs := dspClaim(b, Queue, stopped, 3, 1); len(jobs) != 1 {
		t.Fatalf("claim of a forgotten UUID started again: %d jobs, want 1", len(jobs))
	}
}

// dspEvents: the queue's log of dispatcher events has, newest first, a start, a death found
// by a sibling with the jobs it handed on, a return, a clean stop and a takeover; calls that
// change nothing (a second burial, a second stop, an idle ping) add nothing; the log is per
// queue and the limit is checked.
func dspEvents(t *testing.T, h Harness) {
	b := setup(t, h)
	if evs, err := b.s.DispatcherEvents(b.ctx, Queue, 10); err != nil || len(evs) != 0 {
		t.Fatalf("events of a new queue: %v %v, want none", evs, err)
	}
	o := b.dispatcher()
	started := b.clock.Now()
	b.putCall("a")
	b.putCall("b")
	got := dspClaim(b, Queue, o, 3, 0)
	b.start(got[1].Fence())
	b.clock.Advance(61 * time.Second)
	found := b.clock.Now()
	if _, ok, err := b.s.Bury(b.ctx, Queue, o.Dispatcher); err != nil || !ok {
		t.Fatalf("Bury: %v %v", ok, err)
	}
	if _, _, err := b.s.Bury(b.ctx, Queue, o.Dispatcher); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(time.Second)
	back := b.clock.Now()
	dspPing(b, Queue, o.Dispatcher)
	dspPing(b, Queue, o.Dispatcher) // too soon to write, and active: nothing to log
	b.clock.Advance(time.Second)
	stopped := b.clock.Now()
	b.qrDeactivate(o)
	b.qrDeactivate(o)
	b.clock.Advance(time.Second)
	again := b.clock.Now()
	if _, err := b.s.Activate(b.ctx, Queue, o.Dispatcher); err != nil {
		t.Fatal(err)
	}
	other := newUUID()
	b.activate("other", other, DefaultConfig())

	evs, err := b.s.DispatcherEvents(b.ctx, Queue, persistence.MaxDispatcherEvents)
	if err != nil {
		t.Fatal(err)
	}
	want := []persistence.DispatcherEvent{
		{Queue: Queue, Dispatcher: o.Dispatcher, At: again, Kind: persistence.EventActivated},
		{Queue: Queue, Dispatcher: o.Dispatcher, At: stopped, Kind: persistence.EventStopped},
		{Queue: Queue, Dispatcher: o.Dispatcher, At: back, Kind: persistence.EventCameBack},
		{Queue: Queue, Dispatcher: o.Dispatcher, At: found, Kind: persistence.EventFoundDead, Jobs: 2},
		{Queue: Queue, Dispatcher: o.Dispatcher, At: started, Kind: persistence.EventActivated},
	}
	if len(evs) != len(want) {
		t.Fatalf("events: %+v, want %+v", evs, want)
	}
	for i := range want {
		w := want[i]
		w.At = w.At.Truncate(time.Microsecond)
		if g := evs[i]; g.Queue != w.Queue || g.Dispatcher != w.Dispatcher || !g.At.Equal(w.At) || g.Kind != w.Kind || g.Jobs != w.Jobs {
			t.Fatalf("event %d: %+v, want %+v", i, g, w)
		}
	}
	if evs, err := b.s.DispatcherEvents(b.ctx, Queue, 2); err != nil || len(evs) != 2 || evs[1].Kind != persistence.EventStopped {
		t.Fatalf("the newest two events: %+v %v", evs, err)
	}
	if evs, err := b.s.DispatcherEvents(b.ctx, "other", 10); err != nil || len(evs) != 1 || evs[0].Dispatcher != other {
		t.Fatalf("the other queue's events: %+v %v, want its one activation", evs, err)
	}
	for _, bad := range []int{0, -1, persistence.MaxDispatcherEvents + 1} {
		if _, err := b.s.DispatcherEvents(b.ctx, Queue, bad); !errors.Is(err, persistence.ErrInvalid) {
			t.Fatalf("DispatcherEvents with limit %d: %v, want ErrInvalid", bad, err)
		}
	}
}

// dspAgentLoads: the counts of several agents in one call, in their order, an agent that
// never claimed counting none; an invalid owner is refused.
func dspAgentLoads(t *testing.T, h Harness) {
	b := setup(t, h)
	a, c := b.dispatcher(), b.dispatcher()
	for range 3 {
		b.putCall("x")
	}
	dspClaim(b, Queue, a, 2, 0)
	dspClaim(b, Queue, c, 3, 0)
	idle := persistence.Owner{Dispatcher: a.Dispatcher, Agent: "idle"}
	loads, err := b.s.AgentLoads(b.ctx, Queue, []persistence.Owner{c, idle, a})
	if err != nil || !slices.Equal(loads, []int{1, 0, 2}) {
		t.Fatalf("AgentLoads: %v %v, want [1 0 2]", loads, err)
	}
	if loads, err := b.s.AgentLoads(b.ctx, Queue, nil); err != nil || len(loads) != 0 {
		t.Fatalf("AgentLoads of no agent: %v %v", loads, err)
	}
	if _, err := b.s.AgentLoads(b.ctx, Queue, []persistence.Owner{{Dispatcher: "a:b", Agent: "main"}}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("AgentLoads of an invalid owner: %v, want ErrInvalid", err)
	}
}
