package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/runtime"
)

// TestBenchShapes runs small benches with --payload, --queues and --producers, and checks in
// Redis, before the bench deletes its keys, that every job ran once and that the jobs had the
// payload and the spread over queues asked for; and, with the put hook, that the producers
// really put at the same time.
func TestBenchShapes(t *testing.T) {
	t.Parallel()
	var redisArgs []string
	if addr := os.Getenv("ZASYNC_TEST_REDIS"); addr != "" {
		redisArgs = []string{"--redis", "redis://" + addr + "/0"}
	}
	for _, tc := range []struct {
		name                             string
		jobs, payload, queues, producers int // what the jobs must show
		args                             []string
		line                             string // the shape the printed line must give
	}{
		{"payload", 200, 1000, 1, 1, []string{"--payload", "1000"}, "n=200 c=4 payload=1000"},
		{"tiny payload", 50, 2, 1, 1, []string{"--payload", "1"}, "n=50 c=4 payload=1"},
		{"queues", 301, 0, 3, 1, []string{"--queues", "3"}, "n=301 c=4 queues=3"},
		{"producers", 300, 0, 1, 4, []string{"--producers", "4"}, "n=300 c=4 producers=4"},
		{"all, batched", 2500, 64, 3, 2, []string{"--batch", "--payload", "64", "--queues", "3", "--producers", "2"},
			"n=2500 c=4 payload=64 queues=3 producers=2"},
		{"priorities", 180, 0, 1, 1, []string{"--priorities"}, "n=180 c=4 priorities"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--jobs", strconv.Itoa(tc.jobs), "--concurrency", "4", "--pickup", "3"}, tc.args...)
			args = append(args, redisArgs...)
			together := newBarrier(tc.producers)
			var checked bool
			hooks := benchHooks{
				put: together.wait,
				drained: func(ctx context.Context, rt *runtime.Runtime, names []string) error {
					checked = true
					if slices.Contains(tc.args, "--priorities") {
						if err := checkPriorities(ctx, rt, tc.jobs); err != nil {
							return err
						}
					}
					return checkSpread(ctx, rt, names, tc.jobs, tc.queues, tc.payload)
				},
			}
			var stdout, stderr bytes.Buffer
			if err := bench(args, &stdout, &stderr, hooks); err != nil {
				t.Fatalf("bench %v: %v (stderr %q)", args, err, stderr.String())
			}
			if !checked {
				t.Fatalf("bench %v never called its drained hook", args)
			}
			if !together.met() {
				t.Errorf("bench %v: %d producers never put at the same time", args, tc.producers)
			}
			out := stdout.String()
			if !benchLine.MatchString(out) {
				t.Fatalf("bench %v printed %q", args, out)
			}
			if want := "zasync " + tc.line + " enqueue="; !strings.HasPrefix(out, want) {
				t.Errorf("bench %v printed %q, want it to start with %q", args, out, want)
			}
		})
	}
}

// TestBenchStats checks --stats: the round-trip floor and the cost per job of each phase are
// printed on stderr.
func TestBenchStats(t *testing.T) {
	t.Parallel()
	args := []string{"--jobs", "20", "--concurrency", "2", "--pickup", "1", "--payload", "100", "--stats"}
	if addr := os.Getenv("ZASYNC_TEST_REDIS"); addr != "" {
		args = append(args, "--redis", "redis://"+addr+"/0")
	}
	var stdout, stderr bytes.Buffer
	if err := bench(args, &stdout, &stderr, benchHooks{}); err != nil {
		t.Fatalf("bench %v: %v (stderr %q)", args, err, stderr.String())
	}
	floor := regexp.MustCompile(`zasync round-trip floor: PING p50=[0-9.]+[µm]?s, HSET of 100 bytes p50=[0-9.]+[µm]?s\n`)
	if !floor.MatchString(stderr.String()) {
		t.Errorf("stderr %q has no round-trip floor", stderr.String())
	}
	if !strings.Contains(stderr.String(), "zasync cost per job: enqueue trips=") {
		t.Errorf("stderr %q has no cost per job", stderr.String())
	}
}

// TestRoundTripFloor checks that the floor is measured with the value size asked for and
// leaves no key behind.
func TestRoundTripFloor(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	ping, hset, err := roundTripFloor(context.Background(), c, "bench:floor", 300)
	if err != nil {
		t.Fatal(err)
	}
	if ping <= 0 || hset <= 0 {
		t.Errorf("floor PING %s, HSET %s: want both timed", ping, hset)
	}
	if m.Exists("bench:floor") {
		t.Error("the floor's key is left behind")
	}
	m.SetError("LOADING Redis is loading")
	if _, _, err := roundTripFloor(context.Background(), c, "bench:floor", 300); err == nil || !strings.Contains(err.Error(), "round-trip floor") {
		t.Errorf("floor on a failing Redis: %v, want its error", err)
	}
}

// checkSpread checks that the queues hold nothing left to run and that their succeeded jobs
// are the bench's: queue k has the jobs whose index is k mod len(names), each with one
// argument, a JSON string of payload bytes (none when payload is 0).
func checkSpread(ctx context.Context, rt *runtime.Runtime, names []string, jobs, queues, payload int) error {
	if len(names) != queues {
		return fmt.Errorf("the bench served %d queues %v, want %d", len(names), names, queues)
	}
	left, err := rt.Count(ctx, runtime.Query{States: []runtime.State{runtime.StatePending, runtime.StateAssigned, runtime.StateActive, runtime.StateCallbacks}})
	if err != nil || left != 0 {
		return fmt.Errorf("%d jobs not completed after the drain (%v)", left, err)
	}
	total := 0
	for k, name := range names {
		done, err := rt.Jobs(ctx, runtime.Query{States: []runtime.State{runtime.StateCompleted}, Queue: name})
		if err != nil {
			return err
		}
		if want := (jobs - k + queues - 1) / queues; len(done) != want {
			return fmt.Errorf("queue %s completed %d jobs, want %d of the %d", name, len(done), want, jobs)
		}
		for _, j := range done {
			if j.Failed || j.Handler != "noop" || j.Queue != name {
				return fmt.Errorf("queue %s completed %s (failed %v) from queue %s", name, j.Call, j.Failed, j.Queue)
			}
			var s string
			switch {
			case payload == 0 && len(j.Args) != 0:
				return fmt.Errorf("job %s has arguments, with no --payload", j.Call)
			case payload == 0:
			case len(j.Args) != 1 || len(j.Args[0]) != payload || json.Unmarshal(j.Args[0], &s) != nil || len(s) != payload-2:
				return fmt.Errorf("job %s has no JSON string of %d bytes as its argument (%d arguments)", j.Handler, payload, len(j.Args))
			}
		}
		total += len(done)
	}
	if total != jobs {
		return fmt.Errorf("%d jobs completed, want %d", total, jobs)
	}
	return nil
}

// checkPriorities checks that the bench's jobs were put at each priority in turn.
func checkPriorities(ctx context.Context, rt *runtime.Runtime, jobs int) error {
	done, err := rt.Jobs(ctx, runtime.Query{States: []runtime.State{runtime.StateCompleted}})
	if err != nil {
		return err
	}
	at := map[int]int{}
	for _, j := range done {
		at[j.Priority]++
	}
	for p := runtime.MinPriority; p <= runtime.MaxPriority; p++ {
		if at[p] != jobs/runtime.MaxPriority {
			return fmt.Errorf("%d jobs at priority %d, want %d (%v)", at[p], p, jobs/runtime.MaxPriority, at)
		}
	}
	return nil
}

// barrier lets its first n callers through only once all n have arrived, so that it is met
// only if n goroutines call it at the same time; later callers pass at once. A caller that
// waits a minute in vain breaks it: it is then never met, and lets everyone through.
type barrier struct {
	n       int
	mu      sync.Mutex
	arrived int
	broken  bool
	all     chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) wait() {
	b.mu.Lock()
	if b.arrived >= b.n || b.broken {
		b.mu.Unlock()
		return
	}
	if b.arrived++; b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(time.Minute):
		b.mu.Lock()
		b.broken = b.arrived < b.n
		b.mu.Unlock()
	}
}

// met reports whether n callers were ever waiting at once.
func (b *barrier) met() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.arrived >= b.n && !b.broken
}

// The queues share the --concurrency slots, as asynq's server shares its Concurrency among
// its queues: the agents' sizes add up to it and differ by one at most.
func TestBenchQueueConfigs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		conc, queues int
		sizes        []int
	}{{8, 1, []int{8}}, {8, 8, []int{1, 1, 1, 1, 1, 1, 1, 1}}, {8, 3, []int{3, 3, 2}}, {5, 2, []int{3, 2}}} {
		var sizes []int
		for _, q := range (benchShape{jobs: 1, conc: tc.conc, queues: tc.queues, producers: 1}).queueConfigs() {
			if len(q.Agents) != 1 {
				t.Fatalf("c=%d q=%d: queue %s has %d agents", tc.conc, tc.queues, q.Name, len(q.Agents))
			}
			sizes = append(sizes, q.Agents[0].Size)
		}
		if fmt.Sprint(sizes) != fmt.Sprint(tc.sizes) {
			t.Errorf("c=%d q=%d: agent sizes %v, want %v", tc.conc, tc.queues, sizes, tc.sizes)
		}
	}
}

// The pool grows for many producers, unless the URL sets its own size.
func TestBenchPoolFor(t *testing.T) {
	t.Setenv(redisEnv, "")
	many := 10*goruntime.GOMAXPROCS(0) + 1
	for _, tc := range []struct {
		url       string
		producers int
		want      string
	}{
		{"redis://127.0.0.1:6379/11", 1, "redis://127.0.0.1:6379/11"},
		{"redis://127.0.0.1:6379/11", many, "redis://127.0.0.1:6379/11?pool_size=" + strconv.Itoa(many+4)},
		{"redis://127.0.0.1:6379/11?pool_size=3", many, "redis://127.0.0.1:6379/11?pool_size=3"},
		{"", many, ""},
	} {
		if got := poolFor(tc.url, tc.producers); got != tc.want {
			t.Errorf("poolFor(%q, %d) = %q, want %q", tc.url, tc.producers, got, tc.want)
		}
	}
}
