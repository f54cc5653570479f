package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/zasync/zasync/persistence"
)

// Group "Concurrency": claims, quota slots and puts racing from many goroutines. Claims may
// lose a race with ErrConflict (the caller retries); nothing else may go wrong, no job is
// handed out twice, no agent holds more than its size and no quota is exceeded.
func init() {
	register("Concurrency",
		testCase{"ClaimRace", cncClaimRace},
		testCase{"QuotaStrict", cncQuotaStrict},
		testCase{"ConcurrentPuts", cncConcurrentPuts},
	)
}

// cncClaimer is one agent's result in a claim race.
type cncClaimer struct {
	owner   persistence.Owner
	claimed []*persistence.Job
	err     error
}

// cncRace starts one goroutine per owner at once; each claims passes times (retrying
// ErrConflict), with size. It waits for all of them and returns what each got.
func cncRace(b *bundle, q string, owners []persistence.Owner, size, passes int) []cncClaimer {
	start := make(chan struct{})
	out := make(chan cncClaimer, len(owners))
	var wg sync.WaitGroup
	for _, o := range owners {
		wg.Go(func() {
			<-start
			r := cncClaimer{owner: o}
			for range passes {
				js, err := dspRetry(func() ([]*persistence.Job, error) {
					return b.s.Claim(b.ctx, persistence.ClaimParams{Queue: q, Dispatcher: o.Dispatcher, Agent: o.Agent, Size: size})
				})
				if errors.Is(err, persistence.ErrFull) {
					break // the agent is full: nothing more to claim
				}
				if err != nil {
					r.err = err
					break
				}
				r.claimed = append(r.claimed, js...)
			}
			out <- r
		})
	}
	close(start)
	wg.Wait()
	close(out)
	var rs []cncClaimer
	for r := range out {
		rs = append(rs, r)
	}
	return rs
}

// cncOwners activates n dispatchers in q, each with one agent "main" of size.
func cncOwners(b *bundle, q string, n, size int) []persistence.Owner {
	b.t.Helper()
	owners := make([]persistence.Owner, n)
	for i := range owners {
		u := newUUID()
		b.activate(q, u, dspConfig(size))
		owners[i] = persistence.Owner{Dispatcher: u, Agent: "main"}
	}
	return owners
}

// cncPutMany puts n jobs calling handler into q with quota names, returning their ids.
func cncPutMany(b *bundle, q string, n int, quotas []string) []string {
	b.t.Helper()
	specs := make([]persistence.JobSpec, n)
	for i := range specs {
		specs[i] = persistence.JobSpec{Call: call("job", i), QuotaNames: quotas}
	}
	jobs, err := b.s.PutMany(b.ctx, q, specs)
	if err != nil {
		b.t.Fatalf("PutMany(%s, %d jobs): %v", q, n, err)
	}
	return ids(jobs)
}

// cncCheckHolders checks, for every claimer, that its agent holds exactly what it claimed
// (plus what prior says it held before) and that each of those jobs is ASSIGNED to it; and
// that no job went to two agents. It returns every claimed id.
func cncCheckHolders(b *bundle, q string, rs []cncClaimer, size int, prior map[persistence.Owner][]string) []string {
	b.t.Helper()
	owner := map[string]persistence.Owner{}
	var all []string
	for _, r := range rs {
		if r.err != nil {
			b.t.Fatalf("claimer %s: %v, want only ErrConflict (retried)", r.owner, r.err)
		}
		if len(r.claimed) > size {
			b.t.Fatalf("claimer %s got %d jobs %v, want at most its size %d", r.owner, len(r.claimed), ids(r.claimed), size)
		}
		for _, j := range r.claimed {
			if prev, ok := owner[j.ID]; ok {
				b.t.Fatalf("job %s handed to both %s and %s, want one agent", j.ID, prev, r.owner)
			}
			owner[j.ID] = r.owner
			all = append(all, j.ID)
		}
		held := dspAgentJobs(b, q, r.owner)
		if len(held) > size {
			b.t.Fatalf("agent %s holds %d jobs %v, want at most its size %d", r.owner, len(held), held, size)
		}
		if want := append(slices.Clone(prior[r.owner]), ids(r.claimed)...); !dspSameSet(held, want) {
			b.t.Fatalf("agent %s holds %v, want exactly what it claimed %v (and held before: %v)", r.owner, held, ids(r.claimed), prior[r.owner])
		}
	}
	jobs, err := b.s.GetMany(b.ctx, q, all)
	if err != nil {
		b.t.Fatalf("GetMany: %v", err)
	}
	for i, j := range jobs {
		if j == nil {
			b.t.Fatalf("claimed job %s not found", all[i])
		}
		o := owner[j.ID]
		if j.Status != persistence.StatusAssigned || j.Owner != o || j.Holder != o {
			b.t.Fatalf("claimed job %s: %s owner %s holder %s, want assigned to %s, the agent that got it",
				j.ID, j.Status, j.Owner, j.Holder, o)
		}
	}
	return all
}

// (a) 8 agents of size 3 claim at once over 30 jobs, 20 times.
func cncClaimRace(t *testing.T, h Harness) {
	b := setup(t, h)
	const agents, size, njobs = 8, 3, 30
	for round := range 20 {
		q := fmt.Sprintf("claimrace%d", round)
		owners := cncOwners(b, q, agents, size)
		put := cncPutMany(b, q, njobs, nil)
		// Two passes each: the second must find the agent full.
		rs := cncRace(b, q, owners, size, 2)
		all := cncCheckHolders(b, q, rs, size, nil)
		for _, r := range rs {
			if len(r.claimed) != size {
				t.Fatalf("round %d: agent %s got %d jobs, want %d (the queue had enough for every agent)", round, r.owner, len(r.claimed), size)
			}
		}
		p, err := b.s.Pending(b.ctx, q, 0, 1000)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		if len(p) != njobs-agents*size {
			t.Fatalf("round %d: %d jobs left in the queue, want %d", round, len(p), njobs-agents*size)
		}
		if !dspSameSet(append(all, p...), put) {
			t.Fatalf("round %d: claimed %v plus pending %v, want exactly the jobs put %v", round, all, p, put)
		}
	}
}

// (b) A quota of size 2 named by 20 jobs, 8 claimers at once: never more than 2 holders.
func cncQuotaStrict(t *testing.T, h Harness) {
	b := setup(t, h)
	const agents, size, quota = 8, 3, 2
	for round := range 10 {
		q := fmt.Sprintf("quota%d", round)
		if err := b.s.CreateQuota(b.ctx, q, "qt", quota); err != nil {
			t.Fatalf("CreateQuota: %v", err)
		}
		owners := cncOwners(b, q, agents, size)
		cncPutMany(b, q, 20, []string{"qt"})
		check := func(wave string, want int, prior map[persistence.Owner][]string) []cncClaimer {
			t.Helper()
			rs := cncRace(b, q, owners, size, 2)
			var claimed []*persistence.Job
			for _, r := range rs {
				claimed = append(claimed, r.claimed...)
			}
			cncCheckHolders(b, q, rs, size, prior)
			if len(claimed) != want {
				t.Fatalf("round %d, %s: %d jobs claimed %v, want %d (quota size %d)", round, wave, len(claimed), ids(claimed), want, quota)
			}
			info, err := b.s.Quota(b.ctx, q, "qt")
			if err != nil {
				t.Fatalf("Quota: %v", err)
			}
			if len(info.Holders) > quota {
				t.Fatalf("round %d, %s: quota held by %d jobs %v, want at most %d", round, wave, len(info.Holders), info.Holders, quota)
			}
			return rs
		}
		rs := check("first wave", quota, nil)
		var first []*persistence.Job
		for _, r := range rs {
			first = append(first, r.claimed...)
		}
		info, err := b.s.Quota(b.ctx, q, "qt")
		if err != nil {
			t.Fatalf("Quota: %v", err)
		}
		if !dspSameSet(info.Holders, ids(first)) {
			t.Fatalf("round %d: quota holders %v, want the claimed jobs %v", round, info.Holders, ids(first))
		}
		// One holder finishes: exactly one more job may be claimed.
		dspFinish(b, first[0])
		second := check("second wave", 1, map[persistence.Owner][]string{first[1].Owner: {first[1].ID}})
		var next []string
		for _, r := range second {
			next = append(next, ids(r.claimed)...)
		}
		info, err = b.s.Quota(b.ctx, q, "qt")
		if err != nil {
			t.Fatalf("Quota: %v", err)
		}
		if want := append([]string{first[1].ID}, next...); !dspSameSet(info.Holders, want) {
			t.Fatalf("round %d: quota holders after one finished and one more claim %v, want %v", round, info.Holders, want)
		}
	}
}

// (c) 1,000 Puts from 8 goroutines: every job is claimable exactly once.
func cncConcurrentPuts(t *testing.T, h Harness) {
	b := setup(t, h)
	const writers, each = 8, 125
	start := make(chan struct{})
	putIDs := make(chan string, writers*each)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for k := range each {
				j, err := dspRetry(func() (*persistence.Job, error) {
					return b.s.Put(b.ctx, Queue, persistence.JobSpec{Call: call("put", w, k)})
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d, put %d: %w", w, k, err)
					return
				}
				putIDs <- j.ID
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	close(putIDs)
	for err := range errs {
		t.Fatalf("concurrent Put: %v", err)
	}
	put := map[string]bool{}
	for id := range putIDs {
		if put[id] {
			t.Fatalf("two Puts returned the same id %s, want distinct ids", id)
		}
		put[id] = true
	}
	if len(put) != writers*each {
		t.Fatalf("%d ids put, want %d", len(put), writers*each)
	}

	u := newUUID()
	b.activate(Queue, u, dspConfig(writers*each*2))
	o := persistence.Owner{Dispatcher: u, Agent: "main"}
	claimed := map[string]bool{}
	for i := 0; ; i++ {
		if i > writers*each {
			t.Fatalf("still claiming after %d claims, want the queue empty", i)
		}
		js, err := dspRetry(func() ([]*persistence.Job, error) {
			return b.s.Claim(b.ctx, persistence.ClaimParams{Queue: Queue, Dispatcher: u, Agent: "main", Size: writers * each * 2})
		})
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if len(js) == 0 {
			break
		}
		for _, j := range js {
			if claimed[j.ID] {
				t.Fatalf("job %s claimed twice, want once", j.ID)
			}
			if !put[j.ID] {
				t.Fatalf("claimed job %s that was never put", j.ID)
			}
			claimed[j.ID] = true
		}
	}
	if len(claimed) != len(put) {
		var missing []string
		for id := range put {
			if !claimed[id] {
				missing = append(missing, id)
			}
		}
		slices.Sort(missing)
		t.Fatalf("claimed %d jobs, want all %d put; missing %v", len(claimed), len(put), missing)
	}
	if p := b.pending(Queue); len(p) != 0 {
		t.Fatalf("queue after claiming everything: %d jobs left, want none", len(p))
	}
	if held := dspAgentJobs(b, Queue, o); len(held) != len(put) {
		t.Fatalf("agent holds %d jobs, want %d", len(held), len(put))
	}
}
