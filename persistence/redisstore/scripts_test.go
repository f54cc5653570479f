package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/clock"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/storetest"
)

// twin is one side of a differential test: a store with scripts or with transactions only,
// and what a scenario saw through it.
type twin struct {
	t     *testing.T
	ctx   context.Context
	rdb   redis.UniversalClient
	s     *Store
	clock *clock.Fake
	ids   []string // job ids in the order the scenario first saw them
	log   strings.Builder
}

func newTwin(t *testing.T, rdb redis.UniversalClient, scripts bool, opts Options) *twin {
	c := clock.NewFake(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	opts.Clock = c
	s := newStore(t, rdb, opts)
	s.noScripts = !scripts
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &twin{t: t, ctx: ctx, rdb: rdb, s: s, clock: c}
}

// see records what an operation returned.
func (w *twin) see(what string, jobs []*persistence.Job, errs ...error) {
	for _, j := range jobs {
		if j != nil && !slices.Contains(w.ids, j.ID) {
			w.ids = append(w.ids, j.ID)
		}
	}
	fmt.Fprintf(&w.log, "%s:", what)
	for _, j := range jobs {
		if j == nil {
			fmt.Fprintf(&w.log, " <nil>")
			continue
		}
		b, err := json.Marshal(j) // every field, not the job's String
		if err != nil {
			w.t.Fatal(err)
		}
		fmt.Fprintf(&w.log, " %s", b)
	}
	for _, err := range errs {
		fmt.Fprintf(&w.log, " error=%v", err)
	}
	w.log.WriteString("\n")
}

// put puts a job and returns it.
func (w *twin) put(spec persistence.JobSpec) *persistence.Job {
	w.t.Helper()
	if spec.Call.Handler == "" {
		spec.Call.Handler = "h"
	}
	j, err := w.s.Put(w.ctx, "q", spec)
	if err != nil {
		w.t.Fatal(err)
	}
	w.see("put", []*persistence.Job{j})
	return j
}

func (w *twin) activate(uuid string, death time.Duration) {
	w.t.Helper()
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: death,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 3}}}
	if err := w.s.Register(w.ctx, "q", uuid, cfg); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.s.Activate(w.ctx, "q", uuid); err != nil {
		w.t.Fatal(err)
	}
}

// activate2 registers and activates uuid in queue q too.
func (w *twin) activate2(q, uuid string) {
	w.t.Helper()
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 3}}}
	if err := w.s.Register(w.ctx, q, uuid, cfg); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.s.Activate(w.ctx, q, uuid); err != nil {
		w.t.Fatal(err)
	}
}

func (w *twin) claim(p persistence.ClaimParams) []*persistence.Job {
	p.Queue = "q"
	if p.Dispatcher == "" {
		p.Dispatcher, p.Agent = "d1", "main"
	}
	jobs, err := w.s.Claim(w.ctx, p)
	w.see("claim", jobs, err)
	return jobs
}

func (w *twin) commit(commits ...persistence.Commit) []*persistence.Job {
	jobs, errs, err := w.s.CommitMany(w.ctx, commits)
	w.see("commit", jobs, append(errs, err)...)
	return jobs
}

// dump renders every key of the store, ids and prefix replaced by stable names.
func (w *twin) dump() string {
	var b strings.Builder
	var keys []string
	var mu sync.Mutex
	collect := func(ctx context.Context, node *redis.Client) error {
		ks, err := node.Keys(ctx, w.s.k.prefix+":*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}
	var err error
	switch c := w.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(w.ctx, collect)
	case *redis.Client:
		err = collect(w.ctx, c)
	}
	if err != nil {
		w.t.Fatal(err)
	}
	slices.Sort(keys)
	for _, k := range keys {
		typ := w.rdb.Type(w.ctx, k).Val()
		ttl := w.rdb.PTTL(w.ctx, k).Val().Round(time.Hour)
		fmt.Fprintf(&b, "%s %s ttl=%s:", k, typ, ttl)
		switch typ {
		case "hash":
			h := w.rdb.HGetAll(w.ctx, k).Val()
			fields := slices.Sorted(maps.Keys(h))
			for _, f := range fields {
				fmt.Fprintf(&b, " %s=%s", f, h[f])
			}
		case "zset":
			for _, z := range w.rdb.ZRangeWithScores(w.ctx, k, 0, -1).Val() {
				fmt.Fprintf(&b, " %s@%.0f", z.Member, z.Score)
			}
		case "set":
			fmt.Fprintf(&b, " %v", slices.Sorted(slices.Values(w.rdb.SMembers(w.ctx, k).Val())))
		case "list":
			fmt.Fprintf(&b, " %v", w.rdb.LRange(w.ctx, k, 0, -1).Val())
		case "string":
			fmt.Fprintf(&b, " %s", w.rdb.Get(w.ctx, k).Val())
		}
		b.WriteString("\n")
	}
	return w.normalize(b.String())
}

func (w *twin) normalize(s string) string {
	s = strings.ReplaceAll(s, w.s.k.prefix, "P")
	for i, id := range w.ids {
		s = strings.ReplaceAll(s, id, fmt.Sprintf("J%d", i))
	}
	// Jobs the store made on its own (system jobs), in order of appearance.
	var made []string
	return uuidPattern.ReplaceAllStringFunc(s, func(id string) string {
		i := slices.Index(made, id)
		if i < 0 {
			i, made = len(made), append(made, id)
		}
		return fmt.Sprintf("S%d", i)
	})
}

var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// The scripts of the hot path and the transactions they fall back to leave the same state and
// answer the same, in every case the scripts take and in the cases they hand over.
func TestScriptsMatchTransactions(t *testing.T) {
	ok := func(r string) persistence.Outcome {
		return persistence.Outcome{Result: json.RawMessage(r), Complete: true}
	}
	scenarios := []struct {
		name string
		opts Options
		run  func(w *twin)
	}{
		{"claim started, commit and complete", Options{}, func(w *twin) {
			w.put(persistence.JobSpec{})
			w.put(persistence.JobSpec{BeginBy: time.Hour})
			jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			w.clock.Advance(time.Second)
			w.commit(persistence.Commit{Fence: jobs[0].Fence(), Outcome: ok(`1`)},
				persistence.Commit{Fence: jobs[1].Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`"two"`), Complete: true, Retry: persistence.RetryCounts{}}})
		}},
		{"claim assigned, start, commit a failure with counters, not completed", Options{Retention: -1}, func(w *twin) {
			w.put(persistence.JobSpec{})
			jobs := w.claim(persistence.ClaimParams{Size: 3})
			j, err := w.s.Start(w.ctx, jobs[0].Fence())
			w.see("start", []*persistence.Job{j}, err)
			f := persistence.NewFailure(errors.New("boom"), "stack")
			w.commit(persistence.Commit{Fence: j.Fence(), Outcome: persistence.Outcome{Failure: f, Retry: persistence.RetryCounts{"job": 2}}})
		}},
		{"complete without retention", Options{Retention: -1}, func(w *twin) {
			w.put(persistence.JobSpec{})
			jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			w.commit(persistence.Commit{Fence: jobs[0].Fence(), Outcome: ok(`null`)})
		}},
		{"quotas hand the claim over; the commit releases the slot", Options{}, func(w *twin) {
			if err := w.s.CreateQuota(w.ctx, "q", "db", 1); err != nil {
				w.t.Fatal(err)
			}
			w.put(persistence.JobSpec{QuotaNames: []string{"db"}})
			w.put(persistence.JobSpec{QuotaNames: []string{"db"}})
			jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			w.commit(persistence.Commit{Fence: jobs[0].Fence(), Outcome: ok(`1`)})
			w.claim(persistence.ClaimParams{Size: 3, Start: true})
		}},
		{"a job with callbacks stops at CALLBACKS", Options{}, func(w *twin) {
			w.put(persistence.JobSpec{})
			jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			cb, st, err := w.s.AddCallback(w.ctx, jobs[0].Ref, persistence.JobSpec{Call: persistence.Call{Handler: "cb"}})
			w.see("add callback "+st.String(), []*persistence.Job{cb}, err)
			w.commit(persistence.Commit{Fence: jobs[0].Fence(), Outcome: ok(`1`)})
		}},
		{"a parked job's commit unparks it", Options{}, func(w *twin) {
			w.put(persistence.JobSpec{})
			inner := w.put(persistence.JobSpec{BeginAfter: w.clock.Now().Add(time.Hour)})
			jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			j, err := w.s.Wait(w.ctx, jobs[0].Fence(), inner.ID, true)
			w.see("wait", []*persistence.Job{j}, err)
			w.commit(persistence.Commit{Fence: j.Fence(), Outcome: ok(`1`)})
		}},
		{"put-back jobs first, stale entries dropped, max respected", Options{}, func(w *twin) {
			var all []*persistence.Job
			for range 6 {
				all = append(all, w.put(persistence.JobSpec{}))
			}
			jobs := w.claim(persistence.ClaimParams{Size: 3, Max: 2, Start: true})
			j, err := w.s.Reschedule(w.ctx, jobs[1].Fence(), w.clock.Now(), nil)
			w.see("reschedule", []*persistence.Job{j}, err)
			// A pending entry whose job is gone, and one whose job is no longer pending.
			w.rdb.ZAdd(w.ctx, w.s.k.pending("q"), redis.Z{Score: 1, Member: "gone"}, redis.Z{Score: 2, Member: jobs[0].ID})
			w.rdb.LPush(w.ctx, w.s.k.putback("q"), all[5].ID)
			w.clock.Advance(time.Millisecond)
			w.claim(persistence.ClaimParams{Size: 3, Start: true})
			w.claim(persistence.ClaimParams{Size: 10, Max: 2})
		}},
		{"an expired job is handed over", Options{}, func(w *twin) {
			w.put(persistence.JobSpec{BeginBy: time.Second})
			w.put(persistence.JobSpec{})
			w.clock.Advance(time.Minute)
			w.claim(persistence.ClaimParams{Size: 3, Start: true})
		}},
		{"full, dead and unknown dispatchers are handed over", Options{}, func(w *twin) {
			for range 4 {
				w.put(persistence.JobSpec{})
			}
			w.claim(persistence.ClaimParams{Size: 3, Start: true})
			w.claim(persistence.ClaimParams{Size: 3, Start: true})
			w.claim(persistence.ClaimParams{Dispatcher: "nobody", Agent: "main", Size: 3})
			w.activate("d2", time.Minute)
			w.clock.Advance(2 * time.Minute)
			w.claim(persistence.ClaimParams{Dispatcher: "d2", Agent: "main", Size: 3})
		}},
		{"a batch commits across queues, then claims", Options{}, func(w *twin) {
			for range 3 {
				w.put(persistence.JobSpec{})
			}
			other, err := w.s.Put(w.ctx, "r", persistence.JobSpec{Call: persistence.Call{Handler: "h"}})
			w.see("put r", []*persistence.Job{other}, err)
			w.activate2("r", "d1")
			jobs := w.claim(persistence.ClaimParams{Size: 2, Start: true})
			rj, err := w.s.Claim(w.ctx, persistence.ClaimParams{Queue: "r", Dispatcher: "d1", Agent: "main", Size: 1, Start: true})
			w.see("claim r", rj, err)
			late := jobs[1].Fence()
			late.Attempt++
			commits := []persistence.Commit{{Fence: jobs[0].Fence(), Outcome: ok(`1`)}, {Fence: rj[0].Fence(), Outcome: ok(`2`)},
				{Fence: late, Outcome: ok(`3`)}, {Fence: jobs[1].Fence(), Outcome: persistence.Outcome{}}}
			claims := []persistence.ClaimParams{{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 2, Start: true},
				{Queue: "q", Dispatcher: "d1", Agent: "other", Size: 5, Filter: func(*persistence.Job) bool { return true }},
				{Queue: "q", Dispatcher: "nobody", Agent: "main", Size: 1},
				{Queue: "r", Dispatcher: "d1", Agent: "main", Size: 1}}
			bj, berrs, claimed, claimErrs := w.s.Batch(w.ctx, commits, claims)
			w.see("batch commits", bj, berrs...)
			for k := range claims {
				w.see("batch claim", claimed[k], claimErrs[k])
			}
		}},
		{"known jobs commit lean, and fall back to the record when they must", Options{}, func(w *twin) {
			if err := w.s.CreateQuota(w.ctx, "q", "db", 2); err != nil {
				w.t.Fatal(err)
			}
			for range 4 {
				w.put(persistence.JobSpec{})
			}
			w.put(persistence.JobSpec{QuotaNames: []string{"db"}})
			w.put(persistence.JobSpec{})
			inner := w.put(persistence.JobSpec{BeginAfter: w.clock.Now().Add(time.Hour)})
			jobs := w.claim(persistence.ClaimParams{Size: 10, Start: true})
			known := func(j *persistence.Job, o persistence.Outcome) persistence.Commit {
				return persistence.Commit{Fence: j.Fence(), Outcome: o, Known: j}
			}
			// Counters saved while running, an annotation, callbacks added while running, a
			// parked job, a quota.
			if err := w.s.SaveRetry(w.ctx, jobs[0].Fence(), persistence.RetryCounts{"job": 1}); err != nil {
				w.t.Fatal(err)
			}
			if err := w.s.SetAnnotation(w.ctx, jobs[1].Ref, "progress", json.RawMessage(`0.5`)); err != nil {
				w.t.Fatal(err)
			}
			cb, st, err := w.s.AddCallback(w.ctx, jobs[2].Ref, persistence.JobSpec{Call: persistence.Call{Handler: "cb"}})
			w.see("add callback "+st.String(), []*persistence.Job{cb}, err)
			parked, err := w.s.Wait(w.ctx, jobs[3].Fence(), inner.ID, true)
			w.see("wait", []*persistence.Job{parked}, err)
			w.clock.Advance(time.Second)
			boom := persistence.NewFailure(errors.New("boom"), "stack")
			saved := *jobs[0] // the run knows its own writes
			saved.Retry = persistence.RetryCounts{"job": 1}
			w.commit(known(&saved, persistence.Outcome{Result: json.RawMessage(`1`), Complete: true, Retry: persistence.RetryCounts{}}),
				known(jobs[1], ok(`2`)), known(jobs[2], ok(`3`)), known(parked, ok(`4`)),
				known(jobs[4], persistence.Outcome{Result: json.RawMessage(`5`), Complete: true, Retry: persistence.RetryCounts{}}),
				known(jobs[5], persistence.Outcome{Failure: boom, Retry: persistence.RetryCounts{"job": 1}}))
			// A late run that knows its job, and a run whose job has a former result.
			w.commit(known(jobs[0], ok(`6`)))
			rerun := w.put(persistence.JobSpec{})
			w.rdb.HSet(w.ctx, w.s.k.job("q", rerun.ID), fResult, `0`)
			again := w.claim(persistence.ClaimParams{Size: 10, Start: true})
			f := persistence.NewFailure(errors.New("boom"), "stack")
			w.commit(known(again[0], persistence.Outcome{Failure: f, Complete: true}))
			// An annotation of a completed job expires with it.
			if err := w.s.SetAnnotation(w.ctx, jobs[4].Ref, "late", json.RawMessage(`1`)); err != nil {
				w.t.Fatal(err)
			}
		}},
		{"calls with arguments, large ones too, are claimed whole", Options{}, func(w *twin) {
			big := json.RawMessage(`"` + strings.Repeat("x", 10240) + `"`)
			w.put(persistence.JobSpec{Call: persistence.Call{Handler: "h", Args: []json.RawMessage{big, json.RawMessage(` [1, "<&>"] `)}}})
			w.put(persistence.JobSpec{Call: persistence.Call{Handler: "h", Kwargs: map[string]json.RawMessage{"b": big, "a": json.RawMessage(`{}`)}}})
			w.put(persistence.JobSpec{})
			jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			w.commit(persistence.Commit{Fence: jobs[0].Fence(), Outcome: ok(`1`)})
			// Most calls claimed were large: the next claims read them after the script, as
			// many as the agent's last claim took.
			for range 3 {
				w.put(persistence.JobSpec{Call: persistence.Call{Handler: "h", Args: []json.RawMessage{big}}})
			}
			more := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			w.commit(persistence.Commit{Fence: jobs[1].Fence(), Outcome: ok(`2`)}, persistence.Commit{Fence: more[0].Fence(), Outcome: ok(`3`)})
			w.claim(persistence.ClaimParams{Size: 3, Start: true})
		}},
		{"late, lost and repeated commits are refused", Options{}, func(w *twin) {
			w.put(persistence.JobSpec{})
			w.put(persistence.JobSpec{})
			jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			late := jobs[0].Fence()
			late.Attempt--
			lost := jobs[1].Fence()
			lost.ID = "nosuchjob"
			w.commit(persistence.Commit{Fence: late, Outcome: ok(`1`)}, persistence.Commit{Fence: lost, Outcome: ok(`1`)},
				persistence.Commit{Fence: jobs[1].Fence(), Outcome: ok(`2`)})
			w.commit(persistence.Commit{Fence: jobs[1].Fence(), Outcome: ok(`3`)})
			r, err := w.s.Deactivate(w.ctx, "q", "d1")
			w.see(fmt.Sprintf("deactivate %d", r.Len()), nil, err)
			w.commit(persistence.Commit{Fence: jobs[0].Fence(), Outcome: ok(`4`)})
		}},
	}
	for _, b := range backends() {
		for _, sc := range scenarios {
			t.Run(b.name+"/"+sc.name, func(t *testing.T) {
				scriptsMatchTransactions(t, b.client(t), sc.opts, sc.run)
			})
		}
	}
}

// scriptsMatchTransactions runs scenario on two stores, one with scripts, one with
// transactions only, and compares what they answered and what they stored.
func scriptsMatchTransactions(t *testing.T, rdb redis.UniversalClient, opts Options, scenario func(w *twin)) {
	t.Helper()
	sides := [2]*twin{newTwin(t, rdb, true, opts), newTwin(t, rdb, false, opts)}
	for _, w := range sides {
		w.activate("d1", time.Minute)
		scenario(w)
	}
	for i, what := range []func(w *twin) string{
		func(w *twin) string { return w.normalize(w.log.String()) },
		(*twin).dump,
	} {
		scripted, watched := what(sides[0]), what(sides[1])
		if scripted != watched {
			t.Errorf("%s differ.\nscripts:\n%s\ntransactions:\n%s", [...]string{"answers", "stored states"}[i], scripted, watched)
		}
	}
}

// The conformance suite passes on the transactions alone too: they are what every script
// falls back to.
func TestConformanceTransactionsOnly(t *testing.T) {
	storetest.Run(t, storetest.Harness{New: func(t *testing.T, c persistence.Clock) persistence.Store {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { rdb.Close() })
		s := newStore(t, rdb, Options{Clock: c})
		s.noScripts = true
		return s
	}})
}

// A server that lost the scripts (a restart, SCRIPT FLUSH) is sent them again, alone or in a
// batch's pipeline. On miniredis only: a real server's scripts are shared with every other
// user of it.
func TestScriptsSurviveAFlush(t *testing.T) {
	for _, b := range backends() {
		if !strings.HasPrefix(b.name, "miniredis") {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			rdb := b.client(t)
			w := newTwin(t, rdb, true, Options{})
			w.activate("d1", time.Minute)
			for range 4 {
				w.put(persistence.JobSpec{})
			}
			flush := func() {
				t.Helper()
				var err error
				if c, ok := rdb.(*redis.ClusterClient); ok {
					err = c.ForEachMaster(w.ctx, func(ctx context.Context, n *redis.Client) error { return n.ScriptFlush(ctx).Err() })
				} else {
					err = rdb.ScriptFlush(w.ctx).Err()
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			jobs := w.claim(persistence.ClaimParams{Size: 2, Start: true})
			flush()
			more := w.claim(persistence.ClaimParams{Size: 3, Max: 1, Start: true})
			flush()
			commits := []persistence.Commit{
				{Fence: jobs[0].Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}},
				{Fence: more[0].Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`2`), Complete: true}}}
			claims := []persistence.ClaimParams{{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 3, Start: true}}
			done, errs, claimed, claimErrs := w.s.Batch(w.ctx, commits, claims)
			if err := errors.Join(append(errs, claimErrs...)...); err != nil {
				t.Fatal(err)
			}
			if done[0].Status != persistence.StatusCompleted || done[1].Status != persistence.StatusCompleted || len(claimed[0]) != 1 {
				t.Fatalf("after the flushes: %s, %s, %d claimed; want COMPLETED, COMPLETED, 1", done[0].Status, done[1].Status, len(claimed[0]))
			}
		})
	}
}

// A commit of several jobs publishes their ids in one message; a completions subscriber
// gets each of them.
func TestCompletionsOfABatch(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			w := newTwin(t, b.client(t), true, Options{})
			w.activate("d1", time.Minute)
			sub, err := w.s.Completions(w.ctx, "q")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			for range 3 {
				w.put(persistence.JobSpec{})
			}
			jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
			var commits []persistence.Commit
			want := map[string]bool{}
			for _, j := range jobs {
				commits = append(commits, persistence.Commit{Fence: j.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}})
				want[j.ID] = true
			}
			if _, errs, err := w.s.CommitMany(w.ctx, commits); err != nil || errors.Join(errs...) != nil {
				t.Fatalf("CommitMany: %v %v", errs, err)
			}
			for len(want) > 0 {
				select {
				case id := <-sub.C():
					if !want[id] {
						t.Fatalf("completion of %q, want one of %v", id, want)
					}
					delete(want, id)
				case <-w.ctx.Done():
					t.Fatalf("completions not delivered: %v", want)
				}
			}
		})
	}
}

// Completed jobs and their annotations expire after the retention period, whether the
// annotations were written before the job completed (through the script, lean or not, or the
// transaction) or after, and whether the store knows the server's clock (the script is told
// when records expire) or has a clock of its own (the script reads the server's).
func TestAnnotationsExpireWithTheirJob(t *testing.T) {
	for _, b := range backends() {
		for _, mode := range []string{"lean", "record", "transaction", "lean/server clock", "lean/annotated elsewhere"} {
			t.Run(b.name+"/"+mode, func(t *testing.T) {
				w := newTwin(t, b.client(t), mode != "transaction", Options{Retention: time.Hour})
				if mode == "lean/server clock" {
					w.s.clock = nil
				}
				w.activate("d1", time.Minute)
				w.put(persistence.JobSpec{})
				w.put(persistence.JobSpec{})
				jobs := w.claim(persistence.ClaimParams{Size: 3, Start: true})
				annotator := w.s
				if mode == "lean/annotated elsewhere" {
					// Another store annotates: the committing one does not know the job has
					// annotations until its script reads the record.
					other, err := New(w.rdb, Options{Prefix: w.s.k.prefix, Retention: time.Hour, Clock: w.s.clock})
					if err != nil {
						t.Fatal(err)
					}
					annotator = other
				}
				if err := annotator.SetAnnotation(w.ctx, jobs[0].Ref, "before", json.RawMessage(`1`)); err != nil {
					t.Fatal(err)
				}
				var commits []persistence.Commit
				for _, j := range jobs {
					c := persistence.Commit{Fence: j.Fence(), Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}}
					if strings.HasPrefix(mode, "lean") {
						c.Known = j
					}
					commits = append(commits, c)
				}
				if _, errs, err := w.s.CommitMany(w.ctx, commits); err != nil || errors.Join(errs...) != nil {
					t.Fatalf("CommitMany: %v %v", errs, err)
				}
				if err := w.s.SetAnnotation(w.ctx, jobs[1].Ref, "after", json.RawMessage(`2`)); err != nil {
					t.Fatal(err)
				}
				for _, j := range jobs {
					for what, key := range map[string]string{"record": w.s.k.job("q", j.ID), "annotations": w.s.k.annotations("q", j.ID)} {
						// Within a minute of the hour: the test's own time passes too, and the
						// store's estimate of the server's clock may be a few ms ahead of it.
						if ttl := w.rdb.PTTL(w.ctx, key).Val(); ttl <= time.Hour-time.Minute || ttl > time.Hour+time.Second {
							t.Errorf("%s of %s: TTL %v, want the hour of retention", what, j.ID, ttl)
						}
					}
				}
			})
		}
	}
}

// Only the first annotation of a job touches its record: a handler reporting progress does
// not keep the job's own transactions (which watch the record) retrying.
func TestLaterAnnotationsLeaveTheRecordAlone(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			w := newTwin(t, b.client(t), true, Options{})
			j := w.put(persistence.JobSpec{})
			key := w.s.k.job("q", j.ID)
			watched := func(annotate func() error) error {
				return w.rdb.Watch(w.ctx, func(tx *redis.Tx) error {
					if err := annotate(); err != nil {
						return err
					}
					_, err := tx.TxPipelined(w.ctx, func(p redis.Pipeliner) error {
						p.HGet(w.ctx, key, fStatus)
						return nil
					})
					return err
				}, key)
			}
			annotate := func(v string) func() error {
				return func() error { return w.s.SetAnnotation(w.ctx, j.Ref, "progress", json.RawMessage(v)) }
			}
			if err := watched(annotate(`0.1`)); !errors.Is(err, redis.TxFailedErr) {
				t.Fatalf("first annotation: a transaction watching the record got %v, want it to fail", err)
			}
			if err := watched(annotate(`0.2`)); err != nil {
				t.Fatalf("second annotation: a transaction watching the record got %v, want it to commit", err)
			}
		})
	}
}

// The claim script reads every field of a record but its call when the caller reads the call
// itself: its list is the codec's, less the call.
func TestClaimScriptReadsEveryFieldButTheCall(t *testing.T) {
	listed := 0
	for name, src := range packageScripts(t) {
		list := regexp.MustCompile(`(?s)local fields = \{(.*?)\}`).FindStringSubmatch(src)
		if list == nil {
			continue
		}
		listed++
		checkClaimFields(t, name, list[1])
	}
	if listed == 0 {
		t.Fatal("no script lists the fields a claim reads")
	}
}

// checkClaimFields checks the field list of a claim script against the codec's.
func checkClaimFields(t *testing.T, name, list string) {
	t.Helper()
	var got []string
	for _, m := range regexp.MustCompile(`'([a-z_]+)'`).FindAllStringSubmatch(list, -1) {
		got = append(got, m[1])
	}
	want := append(slices.DeleteFunc(slices.Clone(jobFields), func(f string) bool { return f == fCall }), fAnnotated)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: the claim reads %v, the codec has %v", name, got, want)
	}
}

// failCallReads fails, once on, every read of a call field in a pipeline that Redis
// answered with a value.
type failCallReads struct{ on *atomic.Bool }

func (failCallReads) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (failCallReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h failCallReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if !h.on.Load() {
				break
			}
			if args := c.Args(); c.Name() == "hget" && len(args) == 3 && args[2] == fCall && c.Err() == nil {
				c.SetErr(errors.New("connection reset by peer"))
			}
		}
		return err
	}
}

// A claim whose jobs' calls are read after its script, and whose reads fail, hands those
// jobs out to no one: they stay held, with no run, as after a claim whose reply was lost,
// for the agent's reconciliation to recover. (The calls of the first claim of a queue go
// through the script.)
func TestClaimWithCallsReadApart(t *testing.T) {
	// The hook is the client's before the store takes a connection of its own, which keeps
	// the hooks its client had then.
	var failing atomic.Bool
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(failCallReads{&failing})
	f := &fixture{t: t, ctx: t.Context(), m: m, rdb: rdb, s: newStore(t, rdb, Options{}), owner: persistence.Owner{Dispatcher: "d1", Agent: "main"}}
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 2}}}
	if err := f.s.Register(f.ctx, "q", "d1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Activate(f.ctx, "q", "d1"); err != nil {
		t.Fatal(err)
	}
	big := persistence.Call{Handler: "h", Args: []json.RawMessage{json.RawMessage(`"` + strings.Repeat("x", largeCall) + `"`)}}
	var put []*persistence.Job
	for range 4 {
		j, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: big})
		if err != nil {
			t.Fatal(err)
		}
		put = append(put, j)
	}
	p := persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 2, Start: true}
	first, err := f.s.Claim(f.ctx, p)
	if err != nil || len(first) != 2 || first[0].Call.String() != big.String() {
		t.Fatalf("first claim: %v %v, want two jobs with their calls", first, err)
	}
	var commits []persistence.Commit
	for _, j := range first {
		commits = append(commits, persistence.Commit{Fence: j.Fence(), Known: j,
			Outcome: persistence.Outcome{Result: json.RawMessage(`1`), Complete: true}})
	}
	if _, errs, err := f.s.CommitMany(f.ctx, commits); err != nil || errors.Join(errs...) != nil {
		t.Fatalf("commits: %v %v", errs, err)
	}
	// A record without a call (written by hand) is read apart as through the script: with
	// no call, and not as unreadable.
	f.rdb.HDel(f.ctx, f.s.k.job("q", put[2].ID), fCall)
	want, err := f.s.Get(f.ctx, put[2].Ref)
	if err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	lost, err := f.s.Claim(f.ctx, p)
	if err != nil || len(lost) != 1 || lost[0].ID != put[2].ID || lost[0].Corrupt != nil || !reflect.DeepEqual(lost[0].Call, want.Call) {
		t.Fatalf("claim whose call reads fail: %v %v, want only the job without a call handed out, as Get reads it", lost, err)
	}
	held, err := f.s.AgentJobs(f.ctx, "q", f.owner)
	if err != nil || !slices.Equal(held, []string{put[2].ID, put[3].ID}) {
		t.Fatalf("held: %v %v, want the two jobs claimed, %s and %s", held, err, put[2].ID, put[3].ID)
	}
}
