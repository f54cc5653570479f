package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// zasyncBin is the command built once for the tests, run as a user runs it.
var zasyncBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zasync-cmd")
	if err != nil {
		panic(err)
	}
	zasyncBin = filepath.Join(dir, "zasync")
	if out, err := exec.Command("go", "build", "-o", zasyncBin, ".").CombinedOutput(); err != nil {
		panic("build zasync: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// zasync runs the command with args (and env on top of the test's), returning its stdout,
// stderr and exit status.
func zasync(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(zasyncBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "ZASYNC_REDIS=") // the tests say which Redis to use
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("run zasync: %v", err)
	return "", "", 0
}

// benchLine is the summary line of zasync bench. Scripts that compare zasync with other job
// queues parse it: keep its format.
var benchLine = regexp.MustCompile(`^zasync n=(\d+) c=(\d+)( payload=\d+)?( queues=\d+)?( producers=\d+)?( priorities)? enqueue=\d+ jobs/s drain=\d+ jobs/s pickup p50=\S+ p99=\S+\n$`)

func TestBench(t *testing.T) {
	t.Parallel()
	cases := [][]string{{"bench", "--jobs", "300", "--concurrency", "4", "--pickup", "5"}}
	if addr := os.Getenv("ZASYNC_TEST_REDIS"); addr != "" {
		cases = append(cases, []string{"bench", "--jobs", "300", "--concurrency", "4", "--pickup", "5", "--batch", "--redis", "redis://" + addr + "/0"})
	}
	for _, args := range cases {
		out, errOut, code := zasync(t, nil, args...)
		if code != 0 || !benchLine.MatchString(out) || !strings.Contains(out, "n=300 c=4") {
			t.Fatalf("zasync %v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// Bad input gets one clear line on stderr and a non-zero exit, never a stack trace.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"bench", "--jobs", "x"}, 2, `invalid value "x" for flag -jobs`},
		{[]string{"bench", "--jobs", "0"}, 2, "must be at least 1"},
		{[]string{"bench", "--payload", "-1"}, 2, "--payload must be between 0 and"},
		{[]string{"bench", "--queues", "0"}, 2, "--queues must be between 1 and --concurrency (8), not 0"},
		{[]string{"bench", "--queues", "5", "--concurrency", "4"}, 2, "--queues must be between 1 and --concurrency (4), not 5"},
		{[]string{"bench", "--producers", "0"}, 2, "--producers must be at least 1"},
		{[]string{"bench", "--producers", "-3"}, 2, "--producers must be at least 1"},
		{[]string{"bench", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"bench", "--redis", "http://nope"}, 2, "malformed Redis URL"},
		{[]string{"bench", "--redis", "redis://127.0.0.1:1/0"}, 1, "cannot reach Redis at 127.0.0.1:1"},
	} {
		out, errOut, code := zasync(t, nil, tc.args...)
		lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
		if code != tc.code || len(lines) != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("zasync %v: exit %d, stderr %q; want exit %d and one line with %q", tc.args, code, errOut, tc.code, tc.want)
		}
		if strings.Contains(errOut, "goroutine ") {
			t.Errorf("zasync %v printed a stack trace", tc.args)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	out, _, code := zasync(t, nil, "help")
	if code != 0 || !strings.Contains(out, "bench") {
		t.Fatalf("help: exit %d, %q", code, out)
	}
	_, errOut, code := zasync(t, nil, "bench", "--help")
	if code != 0 || !strings.Contains(errOut, "-concurrency") {
		t.Fatalf("bench --help: exit %d, %q", code, errOut)
	}
}

// put refuses the names of zasync's own handlers, as the library does: one line, exit
// status 2, and no job in the queue.
func TestPutReservedName(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	for _, name := range []string{"zasync.fail", "zasync.handleInterrupt", "zasync.resumeCallbacks", "zasync.other"} {
		out, errOut, code := zasync(t, nil, "put", "--redis", "redis://"+m.Addr(), name, "1")
		want := fmt.Sprintf("handler name %q: names starting with \"zasync.\" are reserved for zasync", name)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, want) {
			t.Errorf("put %s 1: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", name, code, out, errOut, want)
		}
	}
	if keys := m.Keys(); slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, ":job:") }) {
		t.Fatalf("refused puts wrote jobs: %v", keys)
	}
}
