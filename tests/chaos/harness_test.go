package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/redisproc"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/redisstore"
	"github.com/zasync/zasync/runtime"
)

// The nodes' intervals: short, so that a drill's death, recovery and drain take seconds.
const (
	pollInterval  = 100 * time.Millisecond
	pingInterval  = 100 * time.Millisecond
	deathInterval = time.Second
	nodeSize      = 4
)

// completeWithin is how long after the fault is over every job must have completed. The
// recovery bound is the death interval plus two polls, and what is left to drain takes a few
// seconds; the rest is room for a busy machine. A job not completed by then is lost: stuck
// for good, as far as an operator can tell.
const completeWithin = 25 * time.Second

// settleFor is how long the nodes keep running after the last job completed before the
// records are read again: long enough for a stale run or a second recovery of a completed
// job to commit again, if anything lets it.
const settleFor = 2*deathInterval + 5*pollInterval

// round is one run of a drill: a Redis (a server or a cluster) of its own, dispatcher
// processes, the jobs put, and what was seen of them.
type round struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	name   string
	prefix string
	queue  string

	server  *redisproc.Server  // the single-node Redis, or nil
	cluster *redisproc.Cluster // the Redis Cluster, or nil
	client  redis.UniversalClient
	store   persistence.Store
	putter  *runtime.Runtime

	nodes []*node

	mu      sync.Mutex
	jobs    []string                    // ids, in put order
	first   map[string]*persistence.Job // each job as first seen COMPLETED
	putErrs []string                    // puts that failed (the job may or may not exist)
	notes   []string                    // what the fault did, for the report
}

// newRound starts the round's Redis (a single server with args, or a cluster when cluster is
// set) and the client the test reads it with.
func newRound(t *testing.T, drill string, n int, cluster bool, args ...string) *round {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	tag := make([]byte, 3)
	rand.Read(tag)
	r := &round{t: t, ctx: ctx, dir: t.TempDir(), name: fmt.Sprintf("%s-%d", drill, n),
		prefix: "chaos-" + drill, queue: fmt.Sprintf("q%d-%s", n, hex.EncodeToString(tag)),
		first: map[string]*persistence.Job{}}
	// Short timeouts: the test's own reads must not hang on a Redis the drill froze.
	if cluster {
		c, err := redisproc.StartCluster(ctx, filepath.Join(r.dir, "cluster"), 3, 1, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		r.cluster = c
		r.client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Protocol: 2,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	} else {
		s, err := redisproc.Start(ctx, filepath.Join(r.dir, "redis"), args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		r.server = s
		r.client = redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	}
	t.Cleanup(func() { r.client.Close() })
	store, err := redisstore.New(r.client, redisstore.Options{Prefix: r.prefix})
	if err != nil {
		t.Fatal(err)
	}
	r.store = store
	putter, err := runtime.New(runtime.Config{Redis: r.client, Prefix: r.prefix, UUID: "chaos-client"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { putter.Close() })
	r.putter = putter
	return r
}

// redisArgs are the chaosnode flags that point a node at the round's Redis directly.
func (r *round) redisArgs() []string {
	if r.cluster != nil {
		return []string{"--cluster", strings.Join(r.cluster.Addrs(), ",")}
	}
	return []string{"--redis", r.server.Addr()}
}

// node is one chaosnode process, and its restarts: same UUID, same log.
type node struct {
	r      *round
	uuid   string
	args   []string
	log    string
	starts int

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	ledgers []string // one per start
}

// startNode runs a chaosnode for uuid with redis (from redisArgs, or a proxy's address).
func (r *round) startNode(uuid string, redis []string) *node {
	r.t.Helper()
	n := &node{r: r, uuid: uuid, log: filepath.Join(r.dir, "node-"+uuid+".log"),
		args: append([]string{"--prefix", r.prefix, "--queue", r.queue, "--uuid", uuid,
			"--size", strconv.Itoa(nodeSize), "--poll", pollInterval.String(), "--ping", pingInterval.String(),
			"--death", deathInterval.String(), "--grace", "2s"}, redis...)}
	n.start()
	r.nodes = append(r.nodes, n)
	r.t.Cleanup(n.kill)
	return n
}

func (n *node) start() {
	n.r.t.Helper()
	n.starts++
	ledger := filepath.Join(n.r.dir, fmt.Sprintf("ledger-%s-%d.jsonl", n.uuid, n.starts))
	logf, err := os.OpenFile(n.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		n.r.t.Fatal(err)
	}
	cmd := exec.Command(nodeBin, append(slices.Clone(n.args), "--ledger", ledger)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.r.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.ledgers = append(n.ledgers, ledger)
	n.mu.Unlock()
}

// kill ends the node's process with SIGKILL, as a crash would, and waits for it.
func (n *node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// stop ends the node cleanly (SIGTERM) and reports a stop that fails or hangs.
func (n *node) stop() {
	n.r.t.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if code := cmd.ProcessState.ExitCode(); code != 0 && code != -1 {
			n.r.t.Errorf("node %s exited %d after SIGTERM:\n%s", n.uuid, code, n.logTail(10))
		}
	case <-time.After(60 * time.Second):
		n.r.t.Errorf("node %s did not stop within 60s of SIGTERM:\n%s", n.uuid, n.logTail(10))
		n.kill()
	}
}

// ranSince reports whether the node's current process has started a run.
func (n *node) ranSince() bool {
	n.mu.Lock()
	ledger := n.ledgers[len(n.ledgers)-1]
	n.mu.Unlock()
	st, err := os.Stat(ledger)
	return err == nil && st.Size() > 0
}

// logLines returns the node's log lines that contain part.
func (n *node) logLines(part string) []string {
	b, err := os.ReadFile(n.log)
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, part) {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	return out
}

func (n *node) logTail(k int) string {
	lines := n.logLines("")
	return strings.Join(lines[max(0, len(lines)-k):], "\n")
}

// waitActivated waits until every node's dispatcher record is activated.
func (r *round) waitActivated(nodes ...*node) {
	r.t.Helper()
	r.eventually(30*time.Second, "the dispatchers activated", func() bool {
		for _, n := range nodes {
			d, err := r.store.Dispatcher(r.ctx, r.queue, n.uuid)
			if err != nil || !d.IsActivated() {
				return false
			}
		}
		return true
	})
}

// await polls cond until it holds and reports true; after d it notes that it did not and
// reports false, so that the drill can go on to count and diagnose the jobs.
func (r *round) await(d time.Duration, what string, cond func() bool) bool {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			r.note("not within %s: %s", d, what)
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	return true
}

// eventually polls cond until it holds, failing the round after d.
func (r *round) eventually(d time.Duration, what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not within %s: %s", r.name, d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// putPatience is how long a put may keep failing on a Redis that should be healthy.
const putPatience = 10 * time.Second

// put puts n jobs of 100 to 400 ms each. The drills put while Redis should be healthy, so a
// put that fails is tried again (its job may exist or not: an untracked job changes no
// count) for up to putPatience, after which the round fails: the queue refuses work.
func (r *round) put(n int) {
	r.t.Helper()
	q := r.putter.Queue(r.queue)
	for range n {
		call := runtime.NewCall("chaos", 100+mrand.IntN(300))
		deadline := time.Now().Add(putPatience)
		for {
			ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
			j, err := q.Put(ctx, call)
			cancel()
			if err == nil {
				r.mu.Lock()
				r.jobs = append(r.jobs, j.ID())
				r.mu.Unlock()
				break
			}
			r.mu.Lock()
			r.putErrs = append(r.putErrs, err.Error())
			r.mu.Unlock()
			if time.Now().After(deadline) {
				r.t.Errorf("%s: puts have failed for %s on a Redis that should be healthy: %v", r.name, putPatience, err)
				return
			}
			time.Sleep(100 * time.Millisecond) // before trying the put again
		}
	}
}

// trickle puts a job every 100 ms until the returned function is called, which waits for
// the last put: load that goes on while a fault is applied.
func (r *round) trickle() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				r.put(1)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// note records something the fault did, for the round's report.
func (r *round) note(format string, args ...any) {
	r.t.Helper()
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.t.Logf("%s: "+format, append([]any{r.name}, args...)...)
}

// observe reads the jobs not yet seen completed and keeps each one's record as first seen
// COMPLETED. A read that fails (Redis down, frozen, failing over) is skipped: the next one
// will do. It returns how many are completed and how many were put.
func (r *round) observe() (completed, put int) {
	r.mu.Lock()
	var open []string
	for _, id := range r.jobs {
		if r.first[id] == nil {
			open = append(open, id)
		}
	}
	put = len(r.jobs)
	r.mu.Unlock()
	for chunk := range slices.Chunk(open, 200) {
		ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
		recs, err := r.store.GetMany(ctx, r.queue, chunk)
		cancel()
		if err != nil {
			continue
		}
		r.mu.Lock()
		for _, rec := range recs {
			if rec != nil && rec.Status == persistence.StatusCompleted {
				r.first[rec.ID] = rec
			}
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.first), put
}

// reach waits until at least n jobs are completed: the point of the drain at which a drill
// applies its fault. If the drain stalls short of it for completeWithin, it notes that and
// returns false, and the drill goes straight to finish, which diagnoses the jobs left.
func (r *round) reach(n int) bool {
	r.t.Helper()
	deadline := time.Now().Add(completeWithin)
	for {
		c, _ := r.observe()
		if c >= n {
			return true
		}
		if time.Now().After(deadline) {
			r.note("the drain stalled at %d completed jobs, short of the %d at which the next fault was due", c, n)
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling the records with a deadline
	}
}

// waitHeld waits until the node's agent holds at least one job.
func (r *round) waitHeld(n *node) {
	r.t.Helper()
	r.eventually(30*time.Second, "node "+n.uuid+" holds a job", func() bool { return r.holds(n) })
}

// holds reports whether the node's agent holds a job with the node as its owner: a job it
// claimed, not one left in its agent by a sibling's cleaning.
func (r *round) holds(n *node) bool {
	held, err := r.store.AgentJobs(r.ctx, r.queue, persistence.Owner{Dispatcher: n.uuid, Agent: "main"})
	if err != nil || len(held) == 0 {
		return false
	}
	recs, err := r.store.GetMany(r.ctx, r.queue, held)
	if err != nil {
		return false
	}
	for _, rec := range recs {
		if rec != nil && rec.Owner.Dispatcher == n.uuid && rec.Status == persistence.StatusActive {
			return true
		}
	}
	return false
}

// tally is a round's count.
type tally struct {
	put, completed, failed, lost, doubled int
	unlisted, stray                       int // completed but in no completed history; completed yet still queued or held
	interruptions                         int // interruptions counted on the jobs
	runs                                  int // handler runs started, all jobs together
}

func (c tally) String() string {
	return fmt.Sprintf("put %d, completed %d (failed %d), lost %d, doubled %d; unlisted %d, stray %d; %d runs, %d interruptions",
		c.put, c.completed, c.failed, c.lost, c.doubled, c.unlisted, c.stray, c.runs, c.interruptions)
}

func (c tally) ok() bool { return c.lost == 0 && c.doubled == 0 && c.unlisted == 0 && c.stray == 0 }

// finish waits up to completeWithin for every job to complete, lets the nodes run for
// settleFor more, reads everything again, stops the nodes, and counts. Any job lost or
// doubled (or completed yet missing from the histories, or still queued) fails the round with
// a diagnosis of each.
func (r *round) finish() {
	r.t.Helper()
	deadline := time.Now().Add(completeWithin)
	for {
		c, p := r.observe()
		if c == p || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the records with a deadline
	}
	// An observation window, not a synchronisation: whatever could commit a completed job a
	// second time has this long to do it, with the nodes still running.
	time.Sleep(settleFor)
	final := r.readFinal()
	runs := r.readLedgers()
	histories := r.readHistories()
	listed := r.readListed()
	records := r.dispatchers()
	for _, n := range r.nodes {
		n.stop()
	}

	var c tally
	var lost, doubled, odd []string
	failures := map[string]int{}
	r.mu.Lock()
	jobs := slices.Clone(r.jobs)
	r.mu.Unlock()
	c.put = len(jobs)
	for _, id := range jobs {
		rec := final[id]
		c.runs += countStarts(runs[id])
		if rec == nil {
			c.lost++
			lost = append(lost, fmt.Sprintf("%s: no record", id))
			continue
		}
		c.interruptions += rec.Retry[persistence.CountInterruptions]
		if rec.Status != persistence.StatusCompleted {
			c.lost++
			lost = append(lost, r.diagnose(rec, runs[id], histories[id], listed[id]))
			continue
		}
		c.completed++
		if rec.Failure != nil {
			c.failed++
			failures[rec.Failure.Error()]++
		}
		if why := checkResult(rec, r.first[id], runs[id], histories[id]); why != "" {
			c.doubled++
			doubled = append(doubled, fmt.Sprintf("%s: %s\n    %s", id, why, r.diagnose(rec, runs[id], histories[id], listed[id])))
		}
		if len(histories[id]) == 0 {
			c.unlisted++
			odd = append(odd, fmt.Sprintf("%s: completed but in no agent's completed history\n    %s", id, r.diagnose(rec, runs[id], histories[id], listed[id])))
		}
		if len(listed[id]) > 0 {
			c.stray++
			odd = append(odd, fmt.Sprintf("%s: completed but still listed in %v\n    %s", id, listed[id], r.diagnose(rec, runs[id], histories[id], listed[id])))
		}
	}
	r.t.Logf("%s: %s", r.name, c)
	for msg, k := range failures {
		r.t.Logf("%s: %d failed with: %s", r.name, k, firstLine(msg))
	}
	if len(r.putErrs) > 0 {
		r.t.Logf("%s: %d puts failed and were tried again, the first with: %s", r.name, len(r.putErrs), r.putErrs[0])
	}
	if c.ok() {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s; want 0 lost, 0 doubled, 0 unlisted, 0 stray", r.name, c)
	section := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s (%d):", title, len(items))
		for _, s := range items[:min(len(items), 8)] {
			fmt.Fprintf(&b, "\n  %s", s)
		}
		if len(items) > 8 {
			fmt.Fprintf(&b, "\n  … and %d more", len(items)-8)
		}
	}
	section("lost", lost)
	section("doubled", doubled)
	section("unlisted or stray", odd)
	if len(r.notes) > 0 {
		fmt.Fprintf(&b, "\nthe fault: %s", strings.Join(r.notes, "; "))
	}
	fmt.Fprintf(&b, "\n%s", records)
	for _, n := range r.nodes {
		fmt.Fprintf(&b, "\n%s", n.summary())
	}
	r.t.Error(b.String())
}

// checkResult says why a completed job's stored outcome is not the one result of its latest
// run, or "".
func checkResult(rec, first *persistence.Job, runs []run, hist []persistence.Owner) string {
	if first != nil && (!bytes.Equal(first.Result, rec.Result) || first.Attempt != rec.Attempt ||
		(first.Failure == nil) != (rec.Failure == nil)) {
		return fmt.Sprintf("committed twice: first seen completed at attempt %d with %s, later at attempt %d with %s",
			first.Attempt, first.Result, rec.Attempt, rec.Result)
	}
	if len(hist) > 1 {
		return fmt.Sprintf("completed by %d agents: %v", len(hist), hist)
	}
	if rec.Failure != nil {
		return ""
	}
	var res run
	if err := json.Unmarshal(rec.Result, &res); err != nil {
		return fmt.Sprintf("result %s is not a run: %v", rec.Result, err)
	}
	if res.ID != rec.ID {
		return fmt.Sprintf("result of job %s stored on it", res.ID)
	}
	if res.Attempt != rec.Attempt {
		return fmt.Sprintf("result of attempt %d stored, the job's latest attempt is %d", res.Attempt, rec.Attempt)
	}
	for _, x := range runs {
		if x.Event == "done" && x.Token == res.Token {
			return ""
		}
	}
	return fmt.Sprintf("result of run %s, which the ledger has not seen finish", res.Token)
}

// readFinal reads every job's record, trying for a while if Redis does not answer.
func (r *round) readFinal() map[string]*persistence.Job {
	r.t.Helper()
	r.mu.Lock()
	jobs := slices.Clone(r.jobs)
	r.mu.Unlock()
	out := make(map[string]*persistence.Job, len(jobs))
	for chunk := range slices.Chunk(jobs, 200) {
		var recs []*persistence.Job
		r.eventually(30*time.Second, "reading the records after the drill", func() bool {
			var err error
			recs, err = r.store.GetMany(r.ctx, r.queue, chunk)
			return err == nil
		})
		for i, id := range chunk {
			out[id] = recs[i]
		}
	}
	return out
}

// run is a line of a node's ledger (chaosnode's Run).
type run struct {
	Event   string `json:"event"`
	ID      string `json:"id"`
	Attempt int64  `json:"attempt"`
	Token   string `json:"token"`
	UUID    string `json:"uuid"`
	PID     int    `json:"pid"`
}

func (x run) String() string {
	return fmt.Sprintf("%s attempt %d by %s (pid %d, run %s)", x.Event, x.Attempt, x.UUID, x.PID, x.Token)
}

func countStarts(runs []run) int {
	n := 0
	for _, x := range runs {
		if x.Event == "start" {
			n++
		}
	}
	return n
}

// readLedgers reads every node's ledger: what each job's runs did, by job id.
func (r *round) readLedgers() map[string][]run {
	r.t.Helper()
	out := map[string][]run{}
	for _, n := range r.nodes {
		n.mu.Lock()
		files := slices.Clone(n.ledgers)
		n.mu.Unlock()
		for _, path := range files {
			f, err := os.Open(path)
			if errors.Is(err, os.ErrNotExist) {
				continue // the process was killed before it opened its ledger
			}
			if err != nil {
				r.t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var x run
				if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
					r.t.Fatalf("ledger %s: %q: %v", path, sc.Text(), err)
				}
				out[x.ID] = append(out[x.ID], x)
			}
			f.Close()
		}
	}
	return out
}

// readHistories reads every agent's completed history: which agents completed each job.
func (r *round) readHistories() map[string][]persistence.Owner {
	r.t.Helper()
	out := map[string][]persistence.Owner{}
	var agents []persistence.Owner
	r.eventually(30*time.Second, "listing the agents", func() bool {
		var err error
		agents, err = r.store.(persistence.Monitor).Agents(r.ctx, r.queue)
		return err == nil
	})
	mon := r.store.(persistence.Monitor)
	for _, a := range agents {
		// Page through the history newest first, as CompletedPage documents.
		var before time.Time
		offset := 0
		for {
			var page []persistence.Completion
			r.eventually(30*time.Second, "reading a completed history", func() bool {
				var err error
				page, err = mon.CompletedPage(r.ctx, r.queue, a, time.Time{}, before, offset, persistence.MaxPage)
				return err == nil
			})
			for _, c := range page {
				out[c.ID] = append(out[c.ID], a)
			}
			if len(page) < persistence.MaxPage {
				break
			}
			last := page[len(page)-1].At
			offset = 0
			for _, c := range page {
				if c.At.Equal(last) {
					offset++
				}
			}
			before = last.Add(time.Microsecond)
		}
	}
	return out
}

// readListed reads where jobs wait or are held: the pending set, the put-back list and every
// agent's set, by job id.
func (r *round) readListed() map[string][]string {
	r.t.Helper()
	out := map[string][]string{}
	base := r.prefix + ":{" + r.queue + "}:"
	var agents []persistence.Owner
	r.eventually(30*time.Second, "listing the agents", func() bool {
		var err error
		agents, err = r.store.(persistence.Monitor).Agents(r.ctx, r.queue)
		return err == nil
	})
	read := func(where string, get func() ([]string, error)) {
		var ids []string
		r.eventually(30*time.Second, "reading "+where, func() bool {
			var err error
			ids, err = get()
			return err == nil
		})
		for _, id := range ids {
			out[id] = append(out[id], where)
		}
	}
	read("pending", func() ([]string, error) { return r.client.ZRange(r.ctx, base+"pending", 0, -1).Result() })
	read("putback", func() ([]string, error) { return r.client.LRange(r.ctx, base+"putback", 0, -1).Result() })
	for _, a := range agents {
		read("agent "+a.String(), func() ([]string, error) { return r.store.AgentJobs(r.ctx, r.queue, a) })
	}
	return out
}

// diagnose describes a job: its record, where it is listed, its runs and what the nodes
// logged about it.
func (r *round) diagnose(rec *persistence.Job, runs []run, hist []persistence.Owner, listed []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: status %s, owner %q, holder %q, attempt %d, retry %v, handler %s, started %s, ended %s",
		rec.ID, rec.Status, rec.Owner, rec.Holder, rec.Attempt, rec.Retry, rec.Call.Handler,
		stamp(rec.ActiveStart), stamp(rec.ActiveEnd))
	if rec.Failure != nil {
		fmt.Fprintf(&b, ", failure %q", firstLine(rec.Failure.Error()))
	}
	fmt.Fprintf(&b, "; listed in %v; completed by %v", listed, hist)
	if len(runs) == 0 {
		b.WriteString("\n      ledger: no run of it started, on any node")
	}
	for _, x := range runs {
		fmt.Fprintf(&b, "\n      ledger: %s", x)
	}
	for _, n := range r.nodes {
		lines := n.logLines(rec.ID)
		for _, l := range lines[max(0, len(lines)-3):] {
			fmt.Fprintf(&b, "\n      %s log: %s", n.uuid, l)
		}
	}
	return b.String()
}

// dispatchers describes the queue's dispatcher records.
func (r *round) dispatchers() string {
	ds, err := r.store.Dispatchers(r.ctx, r.queue)
	if err != nil {
		return fmt.Sprintf("dispatchers: %v", err)
	}
	var b strings.Builder
	b.WriteString("dispatchers:")
	for _, d := range ds {
		fmt.Fprintf(&b, " %s (activated %v, dead %v, last ping %s);", d.UUID, d.IsActivated(), d.Dead, stamp(d.LastPing))
	}
	return b.String()
}

// summary counts the node's log lines by level and shows its distinct ERROR and CRITICAL
// messages.
func (n *node) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s (%d starts, log %s):", n.uuid, n.starts, n.log)
	seen := map[string]int{}
	var order []string
	for _, l := range n.logLines("level=") {
		_, rest, _ := strings.Cut(l, "level=")
		lvl, _, _ := strings.Cut(rest, " ")
		if !strings.HasPrefix(lvl, "ERROR") && !strings.HasPrefix(lvl, "WARN") {
			continue
		}
		msg := l
		if i := strings.Index(l, "msg="); i >= 0 {
			msg = l[i:]
		}
		if len(msg) > 160 {
			msg = msg[:160] + "…"
		}
		key := lvl + " " + msg
		if seen[key] == 0 {
			order = append(order, key)
		}
		seen[key]++
	}
	for _, k := range order[:min(len(order), 10)] {
		fmt.Fprintf(&b, "\n    %d× %s", seen[k], k)
	}
	if len(order) > 10 {
		fmt.Fprintf(&b, "\n    … and %d more distinct messages", len(order)-10)
	}
	return b.String()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
