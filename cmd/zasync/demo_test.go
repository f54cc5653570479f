package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs the demo to its end and checks that its story tells the crash and the
// recovery. It does not run in parallel with the other tests: the demo's crash step needs
// its child dispatcher B to claim some jobs, which a loaded machine makes less likely.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, zasyncBin, "demo")
	cmd.Dir = t.TempDir()
	cmd.Env = append(cmd.Environ(), "ZASYNC_REDIS=", "ZASYNC_UUID=")
	// The demo starts dispatcher B as a child: its own process group lets the test end both
	// if the demo hangs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil && strings.Contains(out, "a hard crash") && !strings.Contains(out, "killed B"):
		t.Fatalf("zasync demo did not finish within 60s: stuck waiting for a crash job to start on B "+
			"(dispatcher A may have claimed them all); stdout:\n%s\nstderr:\n%s", out, stderr.String())
	case ctx.Err() != nil:
		t.Fatalf("zasync demo did not finish within 60s; stdout:\n%s\nstderr:\n%s", out, stderr.String())
	case errors.As(err, &exit):
		t.Fatalf("zasync demo: exit %d; stdout:\n%s\nstderr:\n%s", exit.ExitCode(), out, stderr.String())
	case err != nil:
		t.Fatalf("run zasync demo: %v", err)
	}
	for _, want := range []string{
		"zasync demo: an embedded Redis at redis://127.0.0.1:",
		"two dispatchers serve queue \"demo\"",
		"killed B",
		"deactivated dead dispatcher",
		"was interrupted on B and completed by A",
		"summary:",
		"nothing lost after the crash",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("zasync demo: stdout lacks %q:\n%s", want, out)
		}
	}
}
