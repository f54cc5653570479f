package redisstore

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// A claim of jobs another store put, without a wake-up to name them, declares none of them:
// the script stops at the first, answers the head, and the claim runs it again at once with
// those declared, taking the jobs in queue order; a claim after it needs one run.
func TestClaimDeclaresTheHeadItDidNotExpect(t *testing.T) {
	f := newFixture(t)
	other, err := New(f.rdb, Options{Prefix: f.s.k.prefix, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]persistence.JobSpec, 6)
	for i := range specs {
		specs[i] = persistence.JobSpec{Call: persistence.Call{Handler: "h"}}
	}
	put, err := other.PutMany(f.ctx, "q", specs)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Millisecond) // the other store's puts got positions a microsecond apart
	runs := &scriptRuns{}
	f.rdb.AddHook(runs)
	claim := persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 3}
	jobs, err := f.s.Claim(f.ctx, claim)
	if err != nil || len(jobs) != 3 {
		t.Fatalf("Claim: %d jobs, %v", len(jobs), err)
	}
	for i, j := range jobs {
		if j.ID != put[i].ID {
			t.Errorf("claimed %s at %d, want %s (queue order)", j.ID, i, put[i].ID)
		}
	}
	if n := runs.n.Load(); n != 2 {
		t.Errorf("a claim of jobs it did not expect ran %d scripts, want 2 (one, then one with the head declared)", n)
	}
	claim.Size = 6 // three more slots
	before := runs.n.Load()
	more, err := f.s.Claim(f.ctx, claim)
	if err != nil || len(more) != 3 || more[0].ID != put[3].ID {
		t.Fatalf("second Claim: %v, %v", more, err)
	}
	if n := runs.n.Load() - before; n != 1 {
		t.Errorf("a claim of the head the last claim answered ran %d scripts, want 1", n)
	}
}

// scriptRuns counts the scripts sent (EVAL and EVALSHA), alone or in pipelines.
type scriptRuns struct{ n atomic.Int64 }

func (c *scriptRuns) count(cmd redis.Cmder) {
	if name := cmd.Name(); name == "eval" || name == "evalsha" {
		c.n.Add(1)
	}
}

func (c *scriptRuns) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *scriptRuns) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.count(cmd); return next(ctx, cmd) }
}

func (c *scriptRuns) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

// Ids put while a claim is on its way stay expected when its answer comes back: the answer's
// head was read before they were put.
func TestIdsPutDuringAClaimStayExpected(t *testing.T) {
	var h queueHead
	h.expect("a")
	declared, _ := h.reserve(4, 0)
	h.expect("b") // put while the claim runs
	h.saw([]string{"c", "d"}, declared)
	if got, _ := h.reserve(4, 0); !slices.Equal(got, []string{"c", "d", "b"}) {
		t.Errorf("candidates after the answer: %v, want the head then the id put meanwhile", got)
	}
	if got, _ := h.reserve(1, 0); !slices.Equal(got, []string{"c", "b"}) {
		t.Errorf("candidates of a claim of one: %v, want the first of the head then the id put meanwhile", got)
	}
}

// Two claims of a queue on their way at once declare different jobs of the head: the second
// skips those the first expects to take, until the first's answer is back.
func TestClaimsOnTheirWayDeclareDifferentJobs(t *testing.T) {
	var h queueHead
	h.saw([]string{"a", "b", "c", "d", "e", "f"}, nil)
	first, mine := h.reserve(3, 2)
	if !slices.Equal(first, []string{"a", "b", "c"}) || !slices.Equal(mine, []string{"a", "b"}) {
		t.Fatalf("first claim declares %v, reserves %v; want a b c, reserving a b", first, mine)
	}
	second, theirs := h.reserve(3, 2)
	if !slices.Equal(second, []string{"c", "d", "e"}) || !slices.Equal(theirs, []string{"c", "d"}) {
		t.Errorf("second claim declares %v, reserves %v; want c d e, reserving c d", second, theirs)
	}
	h.release(mine)
	if got, _ := h.reserve(2, 0); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("after the first is back, a claim declares %v, want a b again", got)
	}
	h.release(theirs)
	if len(h.reserved) != 0 {
		t.Errorf("reservations left after both are back: %v", h.reserved)
	}
}
