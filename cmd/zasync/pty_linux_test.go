package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal and returns its two ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock, n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		master.Close()
		t.Fatalf("unlock the pseudo-terminal: %v", e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		master.Close()
		t.Fatalf("name the pseudo-terminal: %v", e)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open the pseudo-terminal: %v", err)
	}
	return master, slave
}

// zasyncOnTerminal runs the command with its stdout on a pseudo-terminal and returns what
// the terminal received and the exit status.
func zasyncOnTerminal(t *testing.T, args ...string) (string, int) {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(zasyncBin, args...)
	cmd.Env = append(os.Environ(), "ZASYNC_REDIS=")
	cmd.Stdout = slave
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the child has it: reading the master ends when the child closes it
	var out bytes.Buffer
	read := make(chan struct{})
	go func() { io.Copy(&out, master); close(read) }()
	err := cmd.Wait()
	select {
	case <-read:
	case <-time.After(serveDeadline):
		t.Fatalf("zasync %q: the terminal was not closed within %s", args, serveDeadline)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run zasync %q: %v", args, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// TestTerminalEscaped: on a terminal, results, tracebacks and job descriptions show what a
// job stored with its control sequences escaped; through a pipe they stay as stored.
func TestTerminalEscaped(t *testing.T) {
	t.Parallel()
	w := newHostileWorld(t)
	raw := func(s string) bool { return strings.ContainsAny(s, "\x1b\x07\x7f\u009b\u202e") }
	for _, args := range [][]string{
		{"traceback", w.failed.String()},
		{"traceback", w.failed.String(), "--json"},
		{"job", w.failed.String()},
		{"job", w.text.String()},
		{"jobs", "completed", "--display", "details"},
		{"wait", w.text.String()},
		{"wait", w.text.String(), "--json"},
		{"lastcompleted"},
	} {
		args = append(args, w.common...)
		out, code := zasyncOnTerminal(t, args...)
		if code != 0 || raw(out) || !strings.Contains(out, `\u009b32mgreen`) {
			t.Errorf("zasync %q on a terminal: exit %d, output %q; want it escaped", args, code, out)
		}
	}
	// Piped, the text is as the job stored it (JSON escapes what JSON must).
	out, _, code := zasync(t, nil, append([]string{"traceback", w.failed.String()}, w.common...)...)
	if code != 0 || !strings.Contains(out, hostileText) {
		t.Errorf("zasync traceback piped: exit %d, output %q; want the message as stored", code, out)
	}
	out, _, code = zasync(t, nil, append([]string{"wait", w.text.String()}, w.common...)...)
	if code != 0 || !strings.Contains(out, "\u009b32mgreen \x7f \u202egnp.exe") {
		t.Errorf("zasync wait piped: exit %d, output %q; want the result as stored", code, out)
	}
}
