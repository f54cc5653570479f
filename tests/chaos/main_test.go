package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/zasync/zasync/internal/redisproc"
)

// The environment variables the suite reads.
const (
	// envRun enables the suite: it takes minutes, so plain `go test ./...` skips it.
	envRun = "ZASYNC_CHAOS"
	// envSoak enables it too, with more rounds and more jobs per round.
	envSoak = "ZASYNC_CHAOS_SOAK"
	// envRounds sets how many rounds each drill runs (default 5, 25 with envSoak).
	envRounds = "ZASYNC_CHAOS_ROUNDS"
	// envKeepGoing runs a drill's remaining rounds after one fails, to measure how often it
	// fails rather than stop at the first failure.
	envKeepGoing = "ZASYNC_CHAOS_KEEP_GOING"
)

// nodeBin is the chaosnode command, built once by TestMain when the suite runs.
var nodeBin string

// skipReason is why the suite does not run here, or "".
var skipReason string

func TestMain(m *testing.M) {
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) int {
	// The test's own clients would print every failed dial of a drill's fault to stderr;
	// what matters of it is in each round's report.
	redis.SetLogger(quiet{})
	switch {
	case os.Getenv(envRun) == "" && os.Getenv(envSoak) == "":
		skipReason = fmt.Sprintf("the chaos suite takes minutes: set %s=1 to run it (%s=1 for the soak variant)", envRun, envSoak)
	case redisproc.Available() != nil:
		skipReason = fmt.Sprintf("the chaos suite starts its own Redis servers: %v (Debian: apt-get install redis-server)", redisproc.Available())
	}
	if skipReason == "" {
		dir, err := os.MkdirTemp("", "zasync-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		nodeBin = filepath.Join(dir, "chaosnode")
		if out, err := exec.Command("go", "build", "-o", nodeBin, "github.com/zasync/zasync/tests/chaos/chaosnode").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build chaosnode: %v\n%s", err, out)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
	}
	return code
}

// quiet is a go-redis logger that drops everything.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// settings are how hard the drills push, from the environment.
type settings struct {
	rounds    int
	soak      bool
	keepGoing bool
}

func settingsFor(t *testing.T) settings {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	s := settings{rounds: 5, soak: os.Getenv(envSoak) != "", keepGoing: os.Getenv(envKeepGoing) != ""}
	if s.soak {
		s.rounds = 25
	}
	if v := os.Getenv(envRounds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", envRounds, v)
		}
		s.rounds = n
	}
	return s
}
