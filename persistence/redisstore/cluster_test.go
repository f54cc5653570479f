package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// clusterSlot computes the Redis Cluster slot of a hash tag (CRC16/XMODEM mod 16384).
func clusterSlot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// usedSlots returns the slots of every string literal of the conformance suite and of this
// package's tests that could be a queue name.
func usedSlots(t *testing.T) map[int]bool {
	t.Helper()
	files, err := filepath.Glob("../storetest/*.go")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	slots := map[int]bool{}
	fset := token.NewFileSet()
	for _, f := range append(files, tests...) {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && persistence.ValidateName("queue", v) == nil {
					slots[clusterSlot(v)] = true
				}
			}
			return true
		})
	}
	if len(slots) < 10 {
		t.Fatalf("found the slots of %d names only in the tests' sources", len(slots))
	}
	return slots
}

// clusterNode is a master of the test's cluster.
type clusterNode struct {
	id, addr string
	c        *redis.Client
}

// slotMasters returns the master that serves slot and the other masters.
func slotMasters(t *testing.T, ctx context.Context, rdb *redis.ClusterClient, slot int) (owner clusterNode, others []clusterNode) {
	t.Helper()
	ranges, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range ranges {
		m := r.Nodes[0]
		n := clusterNode{id: m.ID, addr: m.Addr}
		if r.Start <= slot && slot <= r.End {
			owner = n
		} else if !seen[m.ID] {
			others = append(others, n)
		}
		seen[m.ID] = true
	}
	if owner.id == "" || len(others) == 0 {
		t.Fatalf("slot %d: no owner or no other master in %v", slot, ranges)
	}
	others = slices.DeleteFunc(others, func(n clusterNode) bool { return n.id == owner.id })
	for _, n := range append([]*clusterNode{&owner}, ptrs(others)...) {
		n.c = redis.NewClient(&redis.Options{Addr: n.addr})
		t.Cleanup(func() { n.c.Close() })
	}
	return owner, others
}

func ptrs(ns []clusterNode) []*clusterNode {
	out := make([]*clusterNode, len(ns))
	for i := range ns {
		out[i] = &ns[i]
	}
	return out
}

// migration moves a slot from one master to another as redis-cli --cluster reshard does: the
// slot is marked importing and migrating, its keys are moved a few at a time with MIGRATE,
// then every master is told its new owner.
type migration struct {
	slot     int
	from, to clusterNode
	all      []clusterNode // every master
	open     bool          // marked importing and migrating, not finished
}

// run runs the migration. It returns an error when a step fails: a MIGRATE refused with
// BUSYKEY ("Target key exists") is what a script that wrote a moved key on the source leads
// to. With shared set, the keys that are not job records (a queue's lists, agents' sets and
// histories) move first, then shared runs: the order that splits what one commit or claim
// touches across the two nodes for longest.
func (m *migration) run(ctx context.Context, shared func()) error {
	if err := m.to.c.Do(ctx, "CLUSTER", "SETSLOT", m.slot, "IMPORTING", m.from.id).Err(); err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	m.open = true
	if err := m.from.c.Do(ctx, "CLUSTER", "SETSLOT", m.slot, "MIGRATING", m.to.id).Err(); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if shared != nil {
		keys, err := m.from.c.ClusterGetKeysInSlot(ctx, m.slot, 1_000_000).Result()
		if err != nil {
			return fmt.Errorf("getkeysinslot: %w", err)
		}
		if err := m.move(ctx, slices.DeleteFunc(keys, func(k string) bool { return strings.Contains(k, ":job:") }), false); err != nil {
			return err
		}
		shared()
	}
	return m.finish(ctx, false)
}

// finish moves the keys left and gives the slot to its new owner; with replace, a key on
// both sides (a failed run's) is overwritten.
func (m *migration) finish(ctx context.Context, replace bool) error {
	for {
		keys, err := m.from.c.ClusterGetKeysInSlot(ctx, m.slot, 16).Result()
		if err != nil {
			return fmt.Errorf("getkeysinslot: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		if err := m.move(ctx, keys, replace); err != nil {
			return err
		}
	}
	for _, n := range append([]clusterNode{m.to, m.from}, m.all...) {
		if err := n.c.Do(ctx, "CLUSTER", "SETSLOT", m.slot, "NODE", m.to.id).Err(); err != nil {
			return fmt.Errorf("setslot node on %s: %w", n.addr, err)
		}
	}
	m.open = false
	return nil
}

func (m *migration) move(ctx context.Context, keys []string, replace bool) error {
	if len(keys) == 0 {
		return nil
	}
	host, port, _ := net.SplitHostPort(m.to.addr)
	args := []any{"MIGRATE", host, port, "", 0, 5000}
	if replace {
		args = append(args, "REPLACE")
	}
	args = append(args, "KEYS")
	for _, k := range keys {
		args = append(args, k)
	}
	if err := m.from.c.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("migrate %v: %w", keys, err)
	}
	return nil
}

// A queue's slot migrates to another master and back while jobs are put, claimed and
// committed through the scripts: every job completes exactly once, each completion is in its
// agent's history, and the migration never finds a key that a script wrote on the node that
// had handed it over. (Before every key was declared, scripts wrote job and history keys on
// the source after they had moved, or stopped half-way, "non local key".)
func TestSlotMigrationUnderLoad(t *testing.T) {
	addrs := os.Getenv("ZASYNC_TEST_REDIS_CLUSTER")
	if addrs == "" {
		t.Skip("ZASYNC_TEST_REDIS_CLUSTER is not set: no Redis Cluster to migrate a slot of")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ","), MaxRedirects: 8})
	t.Cleanup(func() { rdb.Close() })
	s := newStore(t, rdb, Options{})

	// A queue of its own, in a slot that no name the other tests of the suite may use as a
	// queue hashes to: they may run on this cluster at the same time.
	b := make([]byte, 4)
	var q string
	busy := usedSlots(t)
	for q == "" || busy[clusterSlot(q)] {
		rand.Read(b)
		q = "migrate-" + hex.EncodeToString(b)
	}
	slot := clusterSlot(q)
	home, others := slotMasters(t, ctx, rdb, slot)
	away := others[0]
	everyone := append([]clusterNode{home}, others...)

	agents := []string{"a1", "a2"}
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: 10 * time.Minute}
	for _, a := range agents {
		cfg.Agents = append(cfg.Agents, persistence.AgentSpec{Name: a, Size: 8})
	}
	if err := s.Register(ctx, q, "d1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(ctx, q, "d1"); err != nil {
		t.Fatal(err)
	}

	const total = 1200
	var mu sync.Mutex
	committed := map[string]int{} // job id → successful commits
	var putIDs []string
	var problems []string
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	// retryable reports an error a migration may give: the store is unavailable for a moment.
	var refused int // calls refused while the slot moved
	retryable := func(err error) bool {
		if !errors.Is(err, persistence.ErrUnavailable) {
			return false
		}
		mu.Lock()
		refused++
		mu.Unlock()
		return true
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Each agent's round trip takes gate: the test holds it to have the agents wait, holding
	// the jobs they claimed, at a point of the migration it chooses.
	var gate sync.Mutex
	var batches int // guarded by mu
	// Puts, in batches of 10, all along.
	wg.Add(1)
	go func() {
		defer wg.Done()
		specs := make([]persistence.JobSpec, 10)
		for i := range specs {
			specs[i] = persistence.JobSpec{Call: persistence.Call{Handler: "h"}}
		}
		for n := 0; n < total; {
			select {
			case <-stop:
				return
			default:
			}
			jobs, err := s.PutMany(ctx, q, specs)
			if err != nil {
				if retryable(err) && ctx.Err() == nil {
					continue
				}
				problem("put: %v", err)
				return
			}
			mu.Lock()
			for _, j := range jobs {
				putIDs = append(putIDs, j.ID)
			}
			mu.Unlock()
			n += len(jobs)
		}
	}()
	// Two agents, each committing what it holds and claiming again in one batch.
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claim := persistence.ClaimParams{Queue: q, Dispatcher: "d1", Agent: a, Size: 8, Start: true}
			var held []*persistence.Job
			for {
				select {
				case <-stop:
					return
				default:
				}
				commits := make([]persistence.Commit, len(held))
				for i, j := range held {
					commits[i] = persistence.Commit{Fence: j.Fence(), Known: j,
						Outcome: persistence.Outcome{Result: json.RawMessage(strconv.Quote(j.ID)), Complete: true}}
				}
				gate.Lock()
				_, errs, claimed, claimErrs := s.Batch(ctx, commits, []persistence.ClaimParams{claim})
				gate.Unlock()
				mu.Lock()
				batches++
				mu.Unlock()
				var keep []*persistence.Job
				for i, err := range errs {
					switch {
					case err == nil:
						mu.Lock()
						committed[held[i].ID]++
						mu.Unlock()
					case retryable(err):
						keep = append(keep, held[i])
					default:
						problem("commit %s: %v", held[i].ID, err)
					}
				}
				held = append(keep, claimed[0]...)
				if err := claimErrs[0]; err != nil && !retryable(err) && !errors.Is(err, persistence.ErrFull) {
					problem("claim: %v", err)
				}
				if ctx.Err() != nil {
					return
				}
			}
		}()
	}

	// Wait for a share of the jobs to be done, so that the slot moves in the middle of it all.
	doneCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(committed)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			mu.Lock()
			failed := len(problems) > 0
			mu.Unlock()
			if failed || ctx.Err() != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("waiting for %s: %v; problems: %v", what, ctx.Err(), problems)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, with the test's deadline
		}
	}
	waitFor("a first share of the jobs", func() bool { return doneCount() >= total/5 })
	// The slot moves with the agents' held jobs still to commit: once the queue's shared keys
	// have moved, each agent commits (or tries to) while its jobs' records are still on the
	// node the slot leaves.
	gate.Lock()
	shared := func() {
		mu.Lock()
		before := batches
		mu.Unlock()
		gate.Unlock()
		waitFor("each agent to try a round trip", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return batches >= before+2*len(agents)
		})
	}
	there := &migration{slot: slot, from: home, to: away, all: everyone}
	back := &migration{slot: slot, from: away, to: home, all: everyone}
	t.Cleanup(func() {
		// A failed run leaves no slot open in the cluster other tests use.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, m := range []*migration{there, back} {
			if m.open {
				if err := m.finish(ctx, true); err != nil {
					t.Errorf("closing the migration of slot %d: %v", slot, err)
				}
			}
		}
	})
	if err := there.run(ctx, shared); err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("migrating slot %d from %s to %s: %v (problems: %v)", slot, home.addr, away.addr, err, problems)
	}
	waitFor("a second share of the jobs", func() bool { return doneCount() >= total/2 })
	if err := back.run(ctx, nil); err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("migrating slot %d back from %s to %s: %v (problems: %v)", slot, away.addr, home.addr, err, problems)
	}
	waitFor("every job to be committed", func() bool { return doneCount() >= total })
	close(stop)
	wg.Wait()

	t.Logf("slot %d moved from %s to %s and back; %d calls were refused meanwhile and retried", slot, home.addr, away.addr, refused)
	for _, p := range problems {
		t.Error(p)
	}
	if len(putIDs) != total {
		t.Fatalf("%d jobs put, want %d", len(putIDs), total)
	}
	for id, n := range committed {
		if n != 1 {
			t.Errorf("job %s committed %d times", id, n)
		}
	}
	inHistory := map[string]int{}
	for _, a := range agents {
		ids, err := s.Completed(ctx, q, persistence.Owner{Dispatcher: "d1", Agent: a}, time.Time{}, time.Time{}, 2*total)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			inHistory[id]++
		}
	}
	for _, id := range putIDs {
		j, err := s.Get(ctx, persistence.Ref{Queue: q, ID: id})
		switch {
		case err != nil:
			t.Errorf("job %s: %v", id, err)
		case j.Status != persistence.StatusCompleted || string(j.Result) != strconv.Quote(id):
			t.Errorf("job %s: %s with result %s", id, j.Status, j.Result)
		}
		if inHistory[id] != 1 {
			t.Errorf("job %s is %d times in the agents' completed histories", id, inHistory[id])
		}
	}
	// No key of the slot was left behind (written after it moved) on the node it left.
	if n, err := away.c.ClusterCountKeysInSlot(ctx, slot).Result(); err != nil || n != 0 {
		t.Errorf("%d keys of slot %d left on %s after it moved away (%v)", n, slot, away.addr, err)
	}
}
