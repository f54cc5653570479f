package redisproc

import (
	"context"
	"testing"
	"time"
)

// A server killed with SIGKILL and restarted keeps what its append-only file (fsync at every
// write) acknowledged, on the same port.
func TestKillRestartKeepsAOF(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	s, err := Start(ctx, t.TempDir(), "--appendonly", "yes", "--appendfsync", "always")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Command(s.Addr(), time.Second, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if Ping(s.Addr(), time.Second) == nil {
		t.Fatal("the killed server answers")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := Command(s.Addr(), time.Second, "GET", "k"); err != nil || v != "v" {
		t.Fatalf("GET k after the restart: %q, %v; want v", v, err)
	}
	if _, err := Strings(s.Addr(), time.Second, "KEYS", "*"); err != nil {
		t.Fatal(err)
	}
}

// A frozen server does not answer; thawed, it does.
func TestFreezeThaw(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	s, err := Start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Freeze(); err != nil {
		t.Fatal(err)
	}
	if Ping(s.Addr(), 300*time.Millisecond) == nil {
		t.Fatal("the frozen server answers")
	}
	if err := s.Thaw(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
