package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/runtime"
)

// queryWorld is a Redis holding jobs in several states, put and run with the library under a
// prefix of its own, for the query commands to read:
//
//	queue idle (served by nobody): mail1 (mail.send, begin_after 2h ago), mail2 (mail.send,
//	  1h ago), sum (now), pending in that order;
//	queue work (served by this test's dispatcher): add succeeded with 3, then nope failed
//	  (no handler registered), then block active until the test ends.
type queryWorld struct {
	url, prefix, uuid string
	rt                *runtime.Runtime
	mail1, mail2, sum *runtime.Job
	add, nope, block  *runtime.Job
	common            []string // --redis URL --prefix P
	environment       []string
}

func newQueryWorld(t *testing.T, addr string) *queryWorld {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	w := &queryWorld{prefix: "zasynctest-cmd-" + hex.EncodeToString(b), uuid: "d-cmd-" + hex.EncodeToString(b)}
	if addr == "" {
		m := miniredis.RunT(t)
		addr = m.Addr()
	}
	w.url = "redis://" + addr + "/0"
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	testredis.DeleteAtCleanup(t, addr, w.prefix)
	rt, err := runtime.New(runtime.Config{
		Redis: c, Prefix: w.prefix, UUID: w.uuid, PollInterval: 20 * time.Millisecond,
		Queues: []runtime.QueueConfig{{Name: "work", Agents: []runtime.AgentConfig{{Name: "main", Size: 2}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.rt = rt
	release := make(chan struct{})
	t.Cleanup(func() {
		close(release)
		rt.Stop(context.Background())
		rt.Close()
	})
	rt.Handle("add", runtime.Func2(func(_ context.Context, a, b int) (int, error) { return a + b, nil }))
	rt.Handle("block", runtime.Func0(func(ctx context.Context) (int, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return 0, nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	put := func(queue string, call runtime.Call, opts ...runtime.PutOption) *runtime.Job {
		t.Helper()
		j, err := rt.Queue(queue).Put(ctx, call, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	now := time.Now()
	w.mail1 = put("idle", runtime.NewCall("mail.send", "a@example.com"), runtime.BeginAfter(now.Add(-2*time.Hour)))
	w.mail2 = put("idle", runtime.NewCall("mail.send", "b@example.com"), runtime.BeginAfter(now.Add(-time.Hour)))
	w.sum = put("idle", runtime.NewCall("sum", 1, 2))
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.add = put("work", runtime.NewCall("add", 1, 2))
	if out, err := w.add.Wait(ctx); err != nil || out.Failure != nil {
		t.Fatalf("add: %+v %v", out, err)
	}
	w.nope = put("work", runtime.NewCall("nope"))
	if out, err := w.nope.Wait(ctx); err != nil || out.Failure == nil {
		t.Fatalf("nope: %+v %v", out, err)
	}
	w.block = put("work", runtime.NewCall("block"))
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st, err := w.block.Status(ctx); err == nil && st == runtime.StatusActive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("block did not start within 30s")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	w.common = []string{"--redis", w.url, "--prefix", w.prefix}
	return w
}

// run runs zasync with args and the world's Redis and prefix after them.
func (w *queryWorld) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return zasync(t, w.environment, append(slices.Clone(args), w.common...)...)
}

// queryBackends runs fn on miniredis, and on the real Redis of ZASYNC_TEST_REDIS when set.
func queryBackends(t *testing.T, fn func(t *testing.T, w *queryWorld)) {
	t.Run("miniredis", func(t *testing.T) { t.Parallel(); fn(t, newQueryWorld(t, "")) })
	if addr := os.Getenv("ZASYNC_TEST_REDIS"); addr != "" {
		t.Run("redis", func(t *testing.T) { t.Parallel(); fn(t, newQueryWorld(t, addr)) })
	}
}

func TestQueryCommands(t *testing.T) {
	t.Parallel()
	queryBackends(t, func(t *testing.T, w *queryWorld) {
		lines := func(jobs ...*runtime.Job) string {
			var b strings.Builder
			for _, j := range jobs {
				b.WriteString(j.String() + "\n")
			}
			return b.String()
		}
		// Each case: the command, and what its stdout must equal (exact) or contain.
		for _, c := range []struct {
			args     []string
			exact    string
			contains []string
		}{
			{args: []string{"count", "pending"}, exact: "3\n"},
			{args: []string{"count", "pending", "active"}, exact: "4\n"},
			{args: []string{"count", "succeeded"}, exact: "1\n"},
			{args: []string{"count", "failed"}, exact: "1\n"},
			{args: []string{"count", "completed", "--json"}, exact: "2\n"},
			{args: []string{"count", "--queue", "idle", "pending", "--callable", "mail.*"}, exact: "2\n"},
			{args: []string{"count", "pending", "--requested-start", "before30m"}, exact: "2\n"},
			{args: []string{"count", "pending", "--requested-start", "since90m,before30m"}, exact: "1\n"},
			{args: []string{"count", "pending", "--requested-start", "before" + time.Now().Add(-90*time.Minute).UTC().Format(time.RFC3339)}, exact: "1\n"},
			{args: []string{"count", "active", "completed", "--start", "since1d"}, exact: "3\n"},
			{args: []string{"count", "completed", "--end", "before1h"}, exact: "0\n"},
			{args: []string{"count", "pending", "--limit", "1"}, exact: "1\n"},
			{args: []string{"count", "active", "--agent", "ma*", "--uuid", w.uuid}, exact: "1\n"},
			{args: []string{"jobs", "pending"}, exact: lines(w.mail1, w.mail2, w.sum)},
			{args: []string{"jobs", "pending", "active", "--limit", "2"}, exact: lines(w.mail1, w.mail2)},
			{args: []string{"jobs", "completed"}, exact: lines(w.nope, w.add)},
			{args: []string{"jobs", "pending", "--display", "repr"}, contains: []string{
				w.mail1.String() + "  pending    mail.send(\"a@example.com\")\n", w.sum.String() + "  pending    sum(1, 2)\n"}},
			{args: []string{"jobs", "succeeded", "--display", "details"}, contains: []string{
				"job:                   " + w.add.String() + "\n", "result:                3\n", "agent:                 main\n"}},
			{args: []string{"jobstats", "pending", "active"}, contains: []string{
				"pending          3\n", "active           1\n", "failed           0\n", "longest wait     2h", w.mail1.String(), "shortest active  "}},
			{args: []string{"job", w.add.String()}, contains: []string{
				"call:                  add(1, 2)\n", "status:                completed\n", "failed:                false\n", "dispatcher:            " + w.uuid}},
			{args: []string{"job", w.mail1.String()}, contains: []string{"status:                pending\n", "active start:          -\n", "agent:                 -\n"}},
			{args: []string{"traceback", w.nope.String()}, exact: "NoHandlerError: zasync: no handler registered for \"nope\"\n"},
			{args: []string{"traceback", w.nope.String(), "--detail", "brief"}, exact: "Traceback: NoHandlerError: zasync: no handler registered for \"nope\"\n"},
			{args: []string{"traceback", "--detail", "verbose", w.nope.String()}, contains: []string{
				"Failure of job " + w.nope.String() + ": nope()\n", "retry policy RetryCommonFourTimes", "NoHandlerError: zasync: no handler registered"}},
			{args: []string{"job", w.nope.String()}, contains: []string{"failed:                true\n", "result:                Traceback: NoHandlerError"}},
			{args: []string{"nextpending"}, contains: []string{"job:                   " + w.mail1.String() + "\n"}},
			{args: []string{"nextpending", "--callable", "sum"}, contains: []string{"job:                   " + w.sum.String() + "\n"}},
			{args: []string{"nextpending", "--queue", "nothing"}, exact: "no pending job\n"},
			{args: []string{"nextpending", "--queue", "nothing", "--json"}, exact: "null\n"},
			{args: []string{"lastcompleted"}, contains: []string{"job:                   " + w.nope.String() + "\n"}},
			{args: []string{"lastcompleted", "succeeded"}, contains: []string{"job:                   " + w.add.String() + "\n"}},
			{args: []string{"lastcompleted", "--end", "before1h"}, exact: "no completed job\n"},
			{args: []string{"uuids"}, exact: w.uuid + "\n"},
			{args: []string{"uuids", "--queue", "idle"}, exact: ""},
			{args: []string{"uuids", "--json"}, exact: "[\n  \"" + w.uuid + "\"\n]\n"},
			{args: []string{"status"}, contains: []string{
				"queue idle: 3 pending (3 due, 0 scheduled, 0 put back), 0 held by agents\n  no activated dispatcher\n",
				"queue work: 0 pending", "  dispatcher " + w.uuid + " on " + orUnknown(hostname()) + " pid " + strconv.Itoa(os.Getpid()) + ": alive, activated ", "    agent main: 1 of 2 slots\n"}},
			{args: []string{"status", "--queue", "work", "--uuid", "someone-else"}, exact: "queue work: 0 pending (0 due, 0 scheduled, 0 put back), 1 held by agents\n  no activated dispatcher\n"},
		} {
			out, errOut, code := w.run(t, c.args...)
			if code != 0 || errOut != "" {
				t.Errorf("zasync %v: exit %d, stderr %q", c.args, code, errOut)
				continue
			}
			if c.contains == nil && out != c.exact {
				t.Errorf("zasync %v: %q, want %q", c.args, out, c.exact)
			}
			for _, want := range c.contains {
				if !strings.Contains(out, want) {
					t.Errorf("zasync %v: %q, want it to contain %q", c.args, out, want)
				}
			}
		}

		// THIS is the dispatcher of ZASYNC_UUID.
		out, errOut, code := zasync(t, []string{"ZASYNC_UUID=" + w.uuid, "ZASYNC_REDIS=" + w.url}, "count", "active", "--uuid", "THIS", "--prefix", w.prefix)
		if code != 0 || out != "1\n" {
			t.Errorf("count active --uuid THIS from ZASYNC_REDIS: exit %d, %q, %q", code, out, errOut)
		}
	})
}

func TestQueryCommandsJSON(t *testing.T) {
	t.Parallel()
	queryBackends(t, func(t *testing.T, w *queryWorld) {
		decode := func(v any, args ...string) {
			t.Helper()
			out, errOut, code := w.run(t, append(args, "--json")...)
			if code != 0 {
				t.Fatalf("zasync %v: exit %d, %q", args, code, errOut)
			}
			if err := json.Unmarshal([]byte(out), v); err != nil {
				t.Fatalf("zasync %v: %v in %q", args, err, out)
			}
		}
		var ids []string
		decode(&ids, "jobs", "pending", "active")
		if want := []string{w.mail1.String(), w.mail2.String(), w.sum.String(), w.block.String()}; !slices.Equal(ids, want) {
			t.Errorf("jobs pending active: %v, want %v", ids, want)
		}
		var reprs []map[string]string
		decode(&reprs, "jobs", "active", "--display", "repr")
		if len(reprs) != 1 || reprs[0]["job"] != w.block.String() || reprs[0]["status"] != "active" || reprs[0]["call"] != "block()" {
			t.Errorf("jobs active --display repr: %v", reprs)
		}
		var details []map[string]any
		decode(&details, "jobs", "failed", "--display", "details")
		if len(details) != 1 || details[0]["job"] != w.nope.String() || details[0]["failed"] != true ||
			!strings.HasPrefix(details[0]["traceback"].(string), "Traceback: NoHandlerError") {
			t.Errorf("jobs failed --display details: %v", details)
		}
		var job map[string]any
		decode(&job, "job", w.add.String())
		if job["job"] != w.add.String() || job["result"] != 3.0 || job["status"] != "completed" || job["agent"] != "main" ||
			job["queue"] != "work" || job["active_start"] == nil || job["wait"] == nil {
			t.Errorf("job: %v", job)
		}
		var stats map[string]any
		decode(&stats, "jobstats", "pending", "failed")
		if stats["pending"] != 3.0 || stats["failed"] != 1.0 || stats["active"] != 0.0 ||
			stats["longest_wait"].(map[string]any)["job"] != w.mail1.String() {
			t.Errorf("jobstats: %v", stats)
		}
		var tb map[string]string
		decode(&tb, "traceback", w.nope.String(), "--detail", "brief")
		if tb["job"] != w.nope.String() || tb["detail"] != "brief" || !strings.HasPrefix(tb["traceback"], "Traceback: NoHandlerError") {
			t.Errorf("traceback: %v", tb)
		}
		var next map[string]any
		decode(&next, "nextpending")
		if next["job"] != w.mail1.String() || next["status"] != "pending" {
			t.Errorf("nextpending: %v", next)
		}
		var last map[string]any
		decode(&last, "lastcompleted", "failed")
		if last["job"] != w.nope.String() {
			t.Errorf("lastcompleted failed: %v", last)
		}
		var status []map[string]any
		decode(&status, "status")
		if len(status) != 2 || status[0]["queue"] != "idle" || status[0]["pending"] != 3.0 || status[1]["queue"] != "work" {
			t.Fatalf("status: %v", status)
		}
		d := status[1]["dispatchers"].([]any)[0].(map[string]any)
		if d["uuid"] != w.uuid || d["dead"] != false || d["agents"].([]any)[0].(map[string]any)["len"] != 1.0 {
			t.Errorf("status of work: %v", status[1])
		}
	})
}

// Bad input gets one line on stderr and exit status 2 (1 for what is not the user's input),
// nothing on stdout.
func TestQueryCommandsBadInput(t *testing.T) {
	t.Parallel()
	w := newQueryWorld(t, "")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"count"}, 2, "at least one state is required"},
		{[]string{"count", "sleeping"}, 2, `unknown state "sleeping"`},
		{[]string{"count", "succeeded", "failed"}, 2, `zero or one of the states "completed", "succeeded" or "failed"`},
		{[]string{"jobs", "completed", "pending", "failed"}, 2, "zero or one"},
		{[]string{"count", "pending", "--start", "yesterday"}, 2, `invalid value "yesterday" for flag -start`},
		{[]string{"count", "pending", "--start", "since1h,since2h"}, 2, "want sinceWHEN"},
		{[]string{"count", "pending", "--start", "since5m,before1h"}, 2, "since must be earlier than before"},
		// The zero time and earlier are out of range: "before year 1" does not mean "no limit".
		{[]string{"count", "completed", "--end", "before0001-01-01T00:00:00Z"}, 2, "0001-01-01T00:00:00Z is out of range: WHEN must be after 0001-01-01T00:00:00Z"},
		{[]string{"count", "completed", "--end", "before0000-12-31T22:00:00-02:00"}, 2, "is out of range"},
		{[]string{"jobs", "failed", "--start", "since0000-06-01T00:00:00Z"}, 2, "0000-06-01T00:00:00Z is out of range"},
		{[]string{"count", "pending", "--callable", "[a"}, 2, "callable glob"},
		{[]string{"count", "pending", "--limit", "-1"}, 2, "--limit must not be negative"},
		{[]string{"jobs", "pending", "--display", "fancy"}, 2, `--display "fancy"`},
		{[]string{"job"}, 2, "exactly one JOB"},
		{[]string{"job", "no-slash"}, 2, `job id "no-slash": want queue/id`},
		{[]string{"job", "idle/does-not-exist"}, 1, "no job idle/does-not-exist"},
		{[]string{"traceback", "idle/does-not-exist"}, 1, "no job idle/does-not-exist"},
		{[]string{"traceback", w.add.String()}, 1, "has no failure (it is completed and succeeded)"},
		{[]string{"traceback", w.nope.String(), "--detail", "loud"}, 2, `unknown traceback detail "loud"`},
		{[]string{"nextpending", "pending"}, 2, "nextpending takes no state"},
		{[]string{"lastcompleted", "pending"}, 2, "state pending is not allowed here"},
		{[]string{"status", "--uuid", "a b"}, 2, "dispatcher UUID"},
		{[]string{"uuids", "extra"}, 2, `unexpected argument "extra"`},
	} {
		out, errOut, code := w.run(t, tc.args...)
		checkOneLine(t, tc.args, out, errOut, code, tc.code, tc.want)
	}
	// Connection problems: no Redis at all, a malformed URL, a Redis that does not answer.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"count", "pending"}, 2, "no Redis given: pass --redis URL or set ZASYNC_REDIS"},
		{[]string{"status"}, 2, "no Redis given"},
		{[]string{"count", "pending", "--redis", "http://nope"}, 2, "malformed Redis URL"},
		{[]string{"job", "q/x", "--redis", "redis://127.0.0.1:1/0"}, 1, "cannot reach Redis at 127.0.0.1:1"},
		{[]string{"count", "pending", "--redis", w.url, "--prefix", "a b"}, 2, "Prefix"},
	} {
		out, errOut, code := zasync(t, nil, tc.args...)
		checkOneLine(t, tc.args, out, errOut, code, tc.code, tc.want)
	}
}

func checkOneLine(t *testing.T, args []string, out, errOut string, code, wantCode int, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
	if code != wantCode || len(lines) != 1 || !strings.Contains(errOut, want) || out != "" {
		t.Errorf("zasync %v: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", args, code, out, errOut, wantCode, want)
	}
	if strings.Contains(errOut, "goroutine ") {
		t.Errorf("zasync %v printed a stack trace", args)
	}
}

func TestQueryHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"count", "jobs", "jobstats", "job", "traceback", "nextpending", "lastcompleted", "uuids", "status"} {
		_, errOut, code := zasync(t, nil, cmd, "--help")
		if code != 0 || !strings.Contains(errOut, "Usage: zasync "+cmd) || !strings.Contains(errOut, "-prefix") {
			t.Errorf("%s --help: exit %d, %q", cmd, code, errOut)
		}
	}
	_, errOut, _ := zasync(t, nil, "count", "--help")
	for _, want := range []string{"sinceWHEN,beforeWHEN", "RFC 3339", "succeeded  completed with a result", "-requested-start"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("count --help lacks %q", want)
		}
	}
}

// hostname is this machine's name, as a dispatcher records it.
func hostname() string {
	h, _ := os.Hostname()
	return h
}
