// Package redisproc runs throw-away redis-server processes on free loopback ports, for tests
// that must do to Redis what an operator's bad day does: kill it, freeze it, restart it from
// its append-only file, build a Redis Cluster and fail over or migrate its slots.
package redisproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoServer is returned when redis-server (or, for a cluster, redis-cli) is not installed.
var ErrNoServer = errors.New("redisproc: redis-server and redis-cli must be in PATH")

// ErrNotReady is returned when a server does not answer PING within its start deadline.
var ErrNotReady = errors.New("redisproc: redis-server did not answer")

// startTimeout bounds how long a server may take to answer after it is started: loading an
// append-only file of a few thousand jobs takes milliseconds, but the machine may be busy.
const startTimeout = 20 * time.Second

// Available reports whether redis-server and redis-cli can be run.
func Available() error {
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%w: %v", ErrNoServer, err)
		}
	}
	return nil
}

// Server is one redis-server process on 127.0.0.1. Its data directory survives Kill, so
// Restart brings it back with what its append-only file kept.
type Server struct {
	Port int
	dir  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	frozen bool
}

// Start runs a redis-server on a free loopback port (whose cluster bus port, +10000, is free
// too) with its data and log in dir, and the given extra arguments ("--appendonly", "yes"…),
// and waits until it answers PING.
func Start(ctx context.Context, dir string, args ...string) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var last error
	// A free port can be taken by another process between the probe and the bind: try a few.
	for range 5 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Port: port, dir: dir, args: args}
		if last = s.start(ctx); last == nil {
			return s, nil
		}
	}
	return nil, last
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Dir is the server's data directory.
func (s *Server) Dir() string { return s.dir }

// LogPath is the file the server logs to; it is appended to across restarts.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "redis.log") }

func (s *Server) start(ctx context.Context) error {
	args := append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--dir", s.dir,
		"--save", "", "--logfile", s.LogPath(), "--daemonize", "no",
	}, s.args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited, s.frozen = cmd, exited, false
	s.mu.Unlock()
	if err := s.WaitReady(ctx, startTimeout); err != nil {
		s.Kill()
		return fmt.Errorf("redis-server on port %d: %w\n%s", s.Port, err, s.LogTail(20))
	}
	return nil
}

// WaitReady waits until the server answers PING with PONG (not LOADING), for at most d.
func (s *Server) WaitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		exited := s.exited
		s.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("%w: it exited", ErrNotReady)
		default:
		}
		if Ping(s.Addr(), time.Second) == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w within %s", ErrNotReady, d)
		}
		time.Sleep(20 * time.Millisecond) // polling the server with a deadline
	}
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it to exit. Its data
// directory is kept. Killing a stopped server is a no-op.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts the killed server again on the same port and directory, with the same
// arguments, and waits until it answers (with an append-only file, after it has loaded it).
func (s *Server) Restart(ctx context.Context) error {
	s.Kill()
	return s.start(ctx)
}

// Freeze stops the server with SIGSTOP: its sockets stay open and nothing is answered, as
// when a machine stalls.
func (s *Server) Freeze() error { return s.signal(syscall.SIGSTOP, true) }

// Thaw continues a frozen server (SIGCONT).
func (s *Server) Thaw() error { return s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, frozen bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("redis-server on port %d: not running", s.Port)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("redis-server on port %d: %s: %w", s.Port, sig, err)
	}
	s.frozen = frozen
	return nil
}

// Close kills the server, continuing it first if it is frozen. Its directory is left to the
// caller (a test's TempDir).
func (s *Server) Close() {
	s.mu.Lock()
	if s.cmd != nil && s.frozen {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
	s.mu.Unlock()
	s.Kill()
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	f, err := os.Open(s.LogPath())
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// Ping sends PING to addr over a fresh connection and wants +PONG within d.
func Ping(addr string, d time.Duration) error {
	reply, err := Command(addr, d, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("PING %s: %s", addr, reply)
	}
	return nil
}

// Command sends one command to addr over a fresh connection and returns its reply: a simple
// string, an integer or a bulk string as text; an error reply as an error. Arrays are
// refused: Strings reads them. It needs no client library, so that it can talk to a server no
// client pool has seen.
func Command(addr string, d time.Duration, args ...string) (string, error) {
	reply, err := do(addr, d, args)
	if err != nil {
		return "", err
	}
	s, ok := reply.(string)
	if !ok {
		return "", fmt.Errorf("%s %s: an array reply, want one value", args[0], addr)
	}
	return s, nil
}

// Strings is Command for a command whose reply is an array of strings.
func Strings(addr string, d time.Duration, args ...string) ([]string, error) {
	reply, err := do(addr, d, args)
	if err != nil {
		return nil, err
	}
	l, ok := reply.([]string)
	if !ok {
		return nil, fmt.Errorf("%s %s: %v, want an array", args[0], addr, reply)
	}
	return l, nil
}

func do(addr string, d time.Duration, args []string) (any, error) {
	conn, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(d))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	reply, err := readReply(r, true)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", args[0], addr, err)
	}
	return reply, nil
}

// errReply is an error reply of the server.
type errReply string

func (e errReply) Error() string { return string(e) }

// readReply reads one RESP2 reply: a string, or (at the top) an array of strings.
func readReply(r *bufio.Reader, top bool) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return nil, errReply(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || !top {
			return nil, fmt.Errorf("unexpected reply %q", line)
		}
		out := make([]string, 0, max(n, 0))
		for range n {
			v, err := readReply(r, false)
			if err != nil {
				return nil, err
			}
			out = append(out, v.(string))
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

// FreePort returns a loopback port that is free, as is its cluster bus port (+10000).
func FreePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, errors.New("redisproc: no free loopback port with a free cluster bus port")
}
