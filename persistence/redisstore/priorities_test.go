package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/zasync/zasync/persistence"
)

// A store whose claims do not know a priority is in use (another process put at it) learns
// it from its claim's script and takes that priority's jobs first; a claim that empties a
// priority's queue drops its mark, and a claim after it declares it no more.
func TestPrioritiesLearnedAndDropped(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := b.client(t)
			claimer := newStore(t, c, Options{})
			putter, err := New(c, Options{Prefix: claimer.k.prefix}) // another process's, on the same keys
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { putter.Close() })
			q := "q"
			cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Hour,
				Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}}
			if err := claimer.Register(ctx, q, "d1", cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := claimer.Activate(ctx, q, "d1"); err != nil {
				t.Fatal(err)
			}
			if _, err := claimer.Put(ctx, q, persistence.JobSpec{Call: persistence.Call{Handler: "plain"}}); err != nil {
				t.Fatal(err)
			}
			top, err := putter.Put(ctx, q, persistence.JobSpec{Call: persistence.Call{Handler: "top"}, Priority: 9})
			if err != nil {
				t.Fatal(err)
			}
			if ls := claimer.heads.get(q, claimer.k).levels(); ls != nil {
				t.Fatalf("the claimer knows priorities %q before any claim", ls.digits)
			}
			p := persistence.ClaimParams{Queue: q, Dispatcher: "d1", Agent: "main", Size: 1, Start: true}
			jobs, err := claimer.Claim(ctx, p)
			if err != nil || len(jobs) != 1 || jobs[0].ID != top.ID {
				t.Fatalf("claimed %v (%v), want the priority-9 job", jobs, err)
			}
			if ls := claimer.heads.get(q, claimer.k).levels(); ls != nil {
				t.Fatalf("after the claim that emptied it, the claimer declares priorities %q", ls.digits)
			}
			for _, f := range []string{priorityField(9), anyPriorityField} {
				if n, err := c.HExists(ctx, claimer.k.dispatchers(q), f).Result(); err != nil || n {
					t.Fatalf("%s still marked (%v) after the only priority's queue was emptied", f, err)
				}
			}
			if _, err := claimer.Commit(ctx, jobs[0].Fence(), persistence.Outcome{Result: []byte(`1`), Complete: true}); err != nil {
				t.Fatal(err)
			}
			jobs, err = claimer.Claim(ctx, p)
			if err != nil || len(jobs) != 1 || jobs[0].Call.Handler != "plain" {
				t.Fatalf("claimed %v (%v), want the plain job", jobs, err)
			}
		})
	}
}
