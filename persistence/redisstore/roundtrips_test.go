package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// tripCounter counts round trips to Redis: each command sent alone and each pipeline (MULTI
// … EXEC included) is one.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// The number of round trips of each hot-path operation is a budget: a change that adds one
// to the path every job takes fails here, not in a benchmark months later.
func TestRoundTripBudget(t *testing.T) {
	f := newFixture(t)
	trips := &tripCounter{}
	f.rdb.AddHook(trips)
	measure := func(name string, budget int64, op func()) {
		t.Helper()
		before := trips.n.Load()
		op()
		if got := trips.n.Load() - before; got > budget {
			t.Errorf("%s took %d round trips, budget %d", name, got, budget)
		}
	}
	spec := persistence.JobSpec{Call: persistence.Call{Handler: "h"}}
	if _, err := f.s.Put(f.ctx, "q", spec); err != nil { // the first put of a queue records its name
		t.Fatal(err)
	}
	measure("Put", 1, func() {
		if _, err := f.s.Put(f.ctx, "q", spec); err != nil {
			t.Fatal(err)
		}
	})
	measure("PutMany of 50", 1, func() {
		if _, err := f.s.PutMany(f.ctx, "q", make50(spec)); err != nil {
			t.Fatal(err)
		}
	})
	measure("PutEach of 16 puts and a bad one", 1, func() {
		groups := make([][]persistence.JobSpec, 17)
		for i := range 16 {
			groups[i] = []persistence.JobSpec{spec}
		}
		groups[16] = []persistence.JobSpec{{}} // no handler: refused alone, before any round trip
		if _, errs, err := f.s.PutEach(f.ctx, "q", groups); err != nil || errs[0] != nil || errs[16] == nil {
			t.Fatalf("PutEach: %v, first group %v, bad group %v", err, errs[0], errs[16])
		}
	})
	var jobs []*persistence.Job
	measure("Claim of 3", 1, func() {
		var err error
		jobs, err = f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 3})
		if err != nil || len(jobs) != 3 {
			t.Fatalf("Claim: %d jobs, %v", len(jobs), err)
		}
	})
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 8}}}
	if err := f.s.Register(f.ctx, "q", "d8", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Activate(f.ctx, "q", "d8"); err != nil {
		t.Fatal(err)
	}
	batch, err := f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d8", Agent: "main", Size: 8})
	if err != nil || len(batch) != 8 {
		t.Fatalf("Claim of 8: %d jobs, %v", len(batch), err)
	}
	fences := make([]persistence.Fence, len(batch))
	for i, j := range batch {
		fences[i] = j.Fence()
	}
	var started []*persistence.Job
	measure("StartMany of 8", 2, func() {
		var errs []error
		started, errs, err = f.s.StartMany(f.ctx, fences)
		if err != nil || errors.Join(errs...) != nil {
			t.Fatalf("StartMany: %v %v", errs, err)
		}
	})
	measure("CommitMany of 8", 1, func() {
		commits := make([]persistence.Commit, len(started))
		for i, j := range started {
			commits[i] = persistence.Commit{Fence: j.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}}
		}
		if _, errs, err := f.s.CommitMany(f.ctx, commits); err != nil || errors.Join(errs...) != nil {
			t.Fatalf("CommitMany: %v %v", errs, err)
		}
	})
	// A node's steady state: the finished runs of an agent committed and its freed slots
	// claimed again, in one round trip.
	if _, err := f.s.PutMany(f.ctx, "q", make50(spec)); err != nil {
		t.Fatal(err)
	}
	batch, err = f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d8", Agent: "main", Size: 8, Start: true})
	if err != nil || len(batch) != 8 {
		t.Fatalf("Claim of 8 started: %d jobs, %v", len(batch), err)
	}
	measure("Batch of 8 commits and a claim of 8", 1, func() {
		commits := make([]persistence.Commit, len(batch))
		for i, j := range batch {
			commits[i] = persistence.Commit{Fence: j.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}}
		}
		claims := []persistence.ClaimParams{{Queue: "q", Dispatcher: "d8", Agent: "main", Size: 8, Start: true}}
		_, errs, claimed, claimErrs := f.s.Batch(f.ctx, commits, claims)
		if err := errors.Join(append(errs, claimErrs...)...); err != nil || len(claimed[0]) != 8 {
			t.Fatalf("Batch: %d claimed, %v", len(claimed[0]), err)
		}
	})
	var j *persistence.Job
	measure("Start", 2, func() {
		var err error
		if j, err = f.s.Start(f.ctx, jobs[0].Fence()); err != nil {
			t.Fatal(err)
		}
	})
	measure("Commit and complete", 1, func() {
		if _, err := f.s.Commit(f.ctx, j.Fence(), persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}); err != nil {
			t.Fatal(err)
		}
	})
}

func make50(spec persistence.JobSpec) []persistence.JobSpec {
	specs := make([]persistence.JobSpec, 50)
	for i := range specs {
		specs[i] = spec
	}
	return specs
}

// The server's commands in a node's steady state are a budget too, counted by the server (Lua's
// calls included): for each job, a claim reads and writes its record (HGETALL, HSET) and a
// commit checks its fence, writes its outcome and sets its expiry (HMGET, HSET, PEXPIREAT);
// the rest is per batch. The commits are the executor's: the job as its run knows it, and
// retry counters to clear, which it has none of.
func TestCommandBudget(t *testing.T) {
	f := newFixture(t)
	spec := persistence.JobSpec{Call: persistence.Call{Handler: "h"}}
	if _, err := f.s.PutMany(f.ctx, "q", append(make50(spec), make50(spec)...)); err != nil {
		t.Fatal(err)
	}
	claim := []persistence.ClaimParams{{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 8, Start: true}}
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 8}}}
	if err := f.s.Configure(f.ctx, "q", "d1", cfg); err != nil {
		t.Fatal(err)
	}
	_, _, claimed, errs := f.s.Batch(f.ctx, nil, claim)
	if err := errors.Join(errs...); err != nil || len(claimed[0]) != 8 {
		t.Fatalf("first claim: %d jobs, %v", len(claimed[0]), err)
	}
	held := claimed[0]
	for round := range 3 {
		commits := make([]persistence.Commit, len(held))
		for i, j := range held {
			commits[i] = persistence.Commit{Fence: j.Fence(), Known: j,
				Outcome: persistence.Outcome{Result: json.RawMessage(`null`), Complete: true, Retry: persistence.RetryCounts{}}}
		}
		before := f.m.CommandCount()
		_, errs, claimed, claimErrs := f.s.Batch(f.ctx, commits, claim)
		if err := errors.Join(append(errs, claimErrs...)...); err != nil || len(claimed[0]) != 8 {
			t.Fatalf("round %d: %d claimed, %v", round, len(claimed[0]), err)
		}
		const perJob, perBatch = 5, 16
		if got := f.m.CommandCount() - before; got > perJob*len(held)+perBatch {
			t.Errorf("round %d: %d commands for 8 commits and a claim of 8, budget %d", round, got, perJob*len(held)+perBatch)
		}
		held = claimed[0]
	}
}
