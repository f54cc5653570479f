package runtime

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	given := Config{Queues: []QueueConfig{{Name: "mail"}, {Name: "img", Agents: []AgentConfig{{Name: "big", Size: 1}, {Name: "small"}}}}}
	c := given.withDefaults()

	if c.Prefix != "zasync" || c.PollInterval != time.Second || c.PingInterval != 5*time.Second ||
		c.PingDeathInterval != 15*time.Second || c.ShutdownGrace != 10*time.Second || c.Retention != 7*24*time.Hour {
		t.Errorf("defaults: %+v", c)
	}
	if c.Logger == nil || c.Logger.Enabled(t.Context(), slog.LevelError) {
		t.Error("the default logger should discard everything")
	}
	if c.UUID != "" {
		t.Errorf("UUID %q: it is resolved at start, not by the defaults", c.UUID)
	}
	want := []QueueConfig{
		{Name: "mail", Agents: []AgentConfig{{Name: "main", Size: 3}}},
		{Name: "img", Agents: []AgentConfig{{Name: "big", Size: 1}, {Name: "small", Size: 3}}},
	}
	if len(c.Queues) != len(want) {
		t.Fatalf("queues %+v, want %+v", c.Queues, want)
	}
	for i := range want {
		if c.Queues[i].Name != want[i].Name || len(c.Queues[i].Agents) != len(want[i].Agents) {
			t.Fatalf("queue %d: %+v, want %+v", i, c.Queues[i], want[i])
		}
		for j, a := range want[i].Agents {
			if got := c.Queues[i].Agents[j]; got.Name != a.Name || got.Size != a.Size {
				t.Errorf("queue %s agent %d: %+v, want %+v", want[i].Name, j, got, a)
			}
		}
	}
	if given.Queues[1].Agents[1].Size != 0 || given.Queues[0].Agents != nil {
		t.Error("withDefaults changed the caller's Config")
	}

	zero := Config{}.withDefaults()
	if len(zero.Queues) != 1 || zero.Queues[0].Name != "default" || len(zero.Queues[0].Agents) != 1 ||
		zero.Queues[0].Agents[0].Name != "main" || zero.Queues[0].Agents[0].Size != 3 {
		t.Errorf("zero Config: queues %+v, want default with main of size 3", zero.Queues)
	}
	if err := zero.validate(); err != nil {
		t.Errorf("the zero Config with defaults does not validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" means valid
	}{
		{"defaults", Config{}, ""},
		{"explicit everything", Config{Prefix: "app1", PollInterval: time.Millisecond, PingInterval: time.Second,
			PingDeathInterval: 2 * time.Second, ShutdownGrace: time.Second, UUID: "node-1",
			Queues: []QueueConfig{{Name: "a", Agents: []AgentConfig{{Name: "x", Size: 1}, {Name: "y", Size: 10}}}, {Name: "b"}}}, ""},
		{"negative poll", Config{PollInterval: -time.Second}, "PollInterval"},
		{"negative ping", Config{PingInterval: -time.Second}, "PingInterval"},
		{"negative ping death", Config{PingDeathInterval: -time.Second}, "PingDeathInterval"},
		{"negative grace", Config{ShutdownGrace: -time.Second}, "ShutdownGrace"},
		{"death equal to ping", Config{PingInterval: 5 * time.Second, PingDeathInterval: 5 * time.Second}, "longer than PingInterval"},
		{"death shorter than ping", Config{PingInterval: 20 * time.Second}, "longer than PingInterval"},
		{"prefix with braces", Config{Prefix: "a{b}"}, "Prefix"},
		{"bad UUID", Config{UUID: "a:b"}, "dispatcher UUID"},
		{"empty queue name", Config{Queues: []QueueConfig{{}}}, "empty queue name"},
		{"bad queue name", Config{Queues: []QueueConfig{{Name: "a b"}}}, "queue name"},
		{"duplicate queue", Config{Queues: []QueueConfig{{Name: "a"}, {Name: "a"}}}, "listed twice"},
		{"empty agent name", Config{Queues: []QueueConfig{{Name: "a", Agents: []AgentConfig{{Size: 1}}}}}, "empty agent name"},
		{"bad agent name", Config{Queues: []QueueConfig{{Name: "a", Agents: []AgentConfig{{Name: "x/y"}}}}}, "agent name"},
		{"duplicate agent", Config{Queues: []QueueConfig{{Name: "a", Agents: []AgentConfig{{Name: "x"}, {Name: "x"}}}}}, "listed twice"},
		{"same agent in two queues", Config{Queues: []QueueConfig{{Name: "a", Agents: []AgentConfig{{Name: "x"}}}, {Name: "b", Agents: []AgentConfig{{Name: "x"}}}}}, ""},
		{"negative size", Config{Queues: []QueueConfig{{Name: "a", Agents: []AgentConfig{{Name: "x", Size: -1}}}}}, "below 1"},
		{"nil policy", Config{RetryPolicies: []RetryPolicy{nil}}, "nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.cfg.withDefaults()
			err := c.validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate: %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			// New refuses it too, before starting anything.
			if rt, err := New(tt.cfg); !errors.Is(err, ErrInvalid) {
				if rt != nil {
					rt.Close()
				}
				t.Fatalf("New: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestNewRetryPolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		policies []RetryPolicy
		wantErr  bool
	}{
		{"none", nil, false},
		{"one", []RetryPolicy{customPolicy{NeverRetry, "Custom"}}, false},
		{"two", []RetryPolicy{customPolicy{NeverRetry, "A"}, customPolicy{NeverRetry, "B"}}, false},
		{"twice", []RetryPolicy{customPolicy{NeverRetry, "A"}, customPolicy{NeverRetry, "A"}}, true},
		{"a built-in name", []RetryPolicy{customPolicy{NeverRetry, "NeverRetry"}}, true},
		{"a bad name", []RetryPolicy{customPolicy{NeverRetry, "a b"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
			defer c.Close()
			rt, err := New(Config{RetryPolicies: tt.policies, Redis: c})
			if rt != nil {
				defer rt.Close()
			}
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("New: %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			for _, p := range append(tt.policies, RetryCommonFourTimes, RetryCommonForever, NeverRetry) {
				if got, err := rt.policies.Lookup(p.Name()); err != nil || got.Name() != p.Name() {
					t.Errorf("Lookup(%s) = %v, %v", p.Name(), got, err)
				}
			}
		})
	}
}

func TestEmbeddedRedis(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	rt, err := New(Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if rt.mini == nil || rt.ownClient == nil {
		t.Fatal("no embedded Redis started")
	}
	if !strings.HasPrefix(rt.mini.Addr(), "127.0.0.1:") {
		t.Errorf("embedded Redis at %s, want loopback", rt.mini.Addr())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "nothing is kept after this process exits") {
		t.Errorf("no warning about the embedded Redis:\n%s", logs.String())
	}
	job, err := rt.Queue("default").Put(testCtx(t), NewCall("noop"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := rt.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := rt.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := job.Info(testCtx(t)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Info after Close: %v, want ErrUnavailable (the embedded Redis is gone)", err)
	}
}

func TestCloseLeavesTheProgramsClientOpen(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	rt, err := New(Config{Redis: c})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if rt.mini != nil || rt.ownClient != nil {
		t.Fatal("an embedded Redis was started although a client was given")
	}
	if err := rt.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Ping(testCtx(t)).Err(); err != nil {
		t.Fatalf("the program's client was closed: %v", err)
	}
}

// The UUID tests change the environment, so they do not run in parallel.
func TestResolveUUID(t *testing.T) {
	const fileID = "from-the-file"
	tests := []struct {
		name     string
		explicit string
		env      string
		file     *string // nil: no uuid.txt
		want     string  // "new": a new UUID, written to uuid.txt
		wantErr  bool
	}{
		{"explicit wins over env and file", "explicit-1", "env-1", ptr(fileID + "\n"), "explicit-1", false},
		{"env wins over file", "", "env-1", ptr(fileID + "\n"), "env-1", false},
		{"env is trimmed", "", " env-1\n", nil, "env-1", false},
		{"file read", "", "", ptr("  " + fileID + "  \nignored second line\n"), fileID, false},
		{"file created", "", "", nil, "new", false},
		{"bad env", "", "a:b", nil, "", true},
		{"empty file", "", "", ptr(""), "", true},
		{"bad file", "", "", ptr("{x}\n"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(UUIDEnv, tt.env)
			dir := t.TempDir()
			path := filepath.Join(dir, UUIDFile)
			if tt.file != nil {
				if err := os.WriteFile(path, []byte(*tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := resolveUUID(tt.explicit, dir)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("resolveUUID = %q, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveUUID: %v", err)
			}
			if tt.want != "new" {
				if got != tt.want {
					t.Fatalf("resolveUUID = %q, want %q", got, tt.want)
				}
				return
			}
			if _, err := uuid.Parse(got); err != nil {
				t.Fatalf("created UUID %q: %v", got, err)
			}
			b, err := os.ReadFile(path)
			if err != nil || string(b) != got+"\n" {
				t.Fatalf("uuid.txt holds %q (%v), want %q", b, err, got+"\n")
			}
			again, err := resolveUUID("", dir)
			if err != nil || again != got {
				t.Fatalf("second resolveUUID = %q, %v; want the same UUID %q", again, err, got)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// A program that only puts jobs never creates uuid.txt; the dispatcher UUID is resolved
// when it starts (nodeOptions), and only then becomes the assigner of the jobs it puts.
func TestRuntimeResolvesUUIDOnStart(t *testing.T) {
	t.Setenv(UUIDEnv, "")
	dir := t.TempDir()
	rt := newRuntime(t, Config{uuidDir: dir})
	job := mustPut(t, rt, NewCall("noop"))
	if _, err := os.Stat(filepath.Join(dir, UUIDFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("uuid.txt exists before start (%v)", err)
	}
	if a := mustInfo(t, job).Assigner; a != "" {
		t.Errorf("assigner %q before start, want none", a)
	}

	id := rt.nodeOptions(nil).UUID
	b, err := os.ReadFile(filepath.Join(dir, UUIDFile))
	if err != nil || strings.TrimSpace(string(b)) != id || id == "" {
		t.Fatalf("uuid.txt holds %q (%v), nodeOptions UUID %q", b, err, id)
	}
	if got, err := rt.dispatcherUUID(); err != nil || got != id {
		t.Fatalf("dispatcherUUID = %q, %v; want %q", got, err, id)
	}
	if a := mustInfo(t, mustPut(t, rt, NewCall("noop"))).Assigner; a != id {
		t.Errorf("assigner %q after start, want %q", a, id)
	}
}

// An unreadable uuid.txt is reported, not papered over, and tried again on the next call.
func TestRuntimeUUIDErrorIsNotCached(t *testing.T) {
	t.Setenv(UUIDEnv, "")
	dir := t.TempDir()
	path := filepath.Join(dir, UUIDFile)
	if err := os.WriteFile(path, []byte("not:valid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(t, Config{uuidDir: dir})
	if _, err := rt.dispatcherUUID(); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("dispatcherUUID: %v, want ErrInvalid", err)
	}
	if err := os.WriteFile(path, []byte("fixed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if id, err := rt.dispatcherUUID(); err != nil || id != "fixed" {
		t.Fatalf("dispatcherUUID = %q, %v; want fixed", id, err)
	}
}
