package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/redisproc"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/redisstore"
)

// buildZasync builds the zasync command into the test's temporary directory.
func buildZasync(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zasync")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/zasync/zasync/cmd/zasync").CombinedOutput(); err != nil {
		t.Fatalf("build zasync: %v\n%s", err, out)
	}
	return bin
}

// periodicFor is how long the three processes tick: a minute, as the issue asks.
const periodicFor = time.Minute

// putLine is what serve logs for each tick it put.
var putLine = regexp.MustCompile(`msg="periodic job put".* job=(tick\.beat\.\d{8}T\d{6}Z)`)

// Three `zasync serve` processes declare the same every-second schedule for a minute, and one
// is killed (SIGKILL) midway: every tick from the first put to the last is put exactly once
// (one "periodic job put" among the three logs, one job of that id in the queue), and none
// is missing, since at least two processes run at any time.
func TestChaosPeriodicServeKilled(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	bin := buildZasync(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := redisproc.Start(ctx, filepath.Join(dir, "redis"), "--appendonly", "yes", "--appendfsync", "always")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	const prefix = "chaos-periodic"
	url := "redis://" + srv.Addr() + "/0"
	type proc struct {
		cmd    *exec.Cmd
		log    string
		exited chan struct{}
	}
	var procs []*proc
	for i := range 3 {
		p := &proc{log: filepath.Join(dir, fmt.Sprintf("serve-%d.log", i)), exited: make(chan struct{})}
		f, err := os.Create(p.log)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, "serve", "--redis", url, "--prefix", prefix, "--uuid", fmt.Sprintf("periodic-%d", i),
			"--queue", "work", "--builtin", "--every", `beat=* * * * * *=ticks:echo("beat")`)
		p.cmd.Dir = dir
		p.cmd.Env = append(os.Environ(), "ZASYNC_REDIS=", "ZASYNC_UUID=")
		p.cmd.Stdout, p.cmd.Stderr = f, f
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.cmd.Wait(); f.Close(); close(p.exited) }()
		t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited })
		procs = append(procs, p)
	}

	// The drill's own duration: the processes tick meanwhile. Half-way, one is killed.
	select {
	case <-time.After(periodicFor / 2):
	case <-procs[1].exited:
		t.Fatalf("serve 1 exited early:\n%s", tail(procs[1].log))
	}
	procs[1].cmd.Process.Kill()
	<-procs[1].exited
	killedAt := time.Now()
	select {
	case <-time.After(periodicFor / 2):
	case <-procs[0].exited:
		t.Fatalf("serve 0 exited early:\n%s", tail(procs[0].log))
	}
	for _, i := range []int{0, 2} {
		procs[i].cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, i := range []int{0, 2} {
		select {
		case <-procs[i].exited:
		case <-time.After(time.Minute):
			t.Fatalf("serve %d did not stop within a minute of SIGTERM", i)
		}
	}

	// What each process says it put.
	puts := map[string][]int{}
	for i, p := range procs {
		b, err := os.ReadFile(p.log)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range putLine.FindAllStringSubmatch(string(b), -1) {
			puts[m[1]] = append(puts[m[1]], i)
		}
	}
	// What the queue holds.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	store, err := redisstore.New(c, redisstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ids, err := store.Pending(ctx, "ticks", 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) < int(periodicFor/time.Second)/2 {
		t.Fatalf("only %d ticks put in %s", len(ids), periodicFor)
	}
	var ticks []time.Time
	for _, id := range ids {
		_, tick, ok := persistence.ParseTickJobID(id)
		if !ok {
			t.Fatalf("job %q in the queue is no tick's", id)
		}
		ticks = append(ticks, tick)
	}
	slices.SortFunc(ticks, time.Time.Compare)
	var missing, doubled []string
	for tick := ticks[0]; !tick.After(ticks[len(ticks)-1]); tick = tick.Add(time.Second) {
		id := persistence.TickJobID("beat", tick)
		if !slices.Contains(ids, id) {
			missing = append(missing, id)
		}
		if n := len(puts[id]); n != 1 {
			doubled = append(doubled, fmt.Sprintf("%s put %d times (by %v)", id, n, puts[id]))
		}
	}
	for id := range puts {
		if !slices.Contains(ids, id) {
			t.Errorf("%s logged as put, not in the queue", id)
		}
	}
	byKilled := 0
	for _, ps := range puts {
		if slices.Contains(ps, 1) {
			byKilled++
		}
	}
	t.Logf("%d ticks from %s to %s; serve 1 killed at %s having put %d of them", len(ticks),
		ticks[0].Format(time.TimeOnly), ticks[len(ticks)-1].Format(time.TimeOnly), killedAt.UTC().Format(time.TimeOnly), byKilled)
	if len(missing) > 0 {
		t.Errorf("ticks missing: %v", missing)
	}
	if len(doubled) > 0 {
		t.Errorf("ticks not put exactly once:\n%s", strings.Join(doubled, "\n"))
	}
}

// tail returns the last lines of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}
