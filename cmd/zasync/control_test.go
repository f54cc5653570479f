package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// waitServing waits until the dispatcher of srv is activated: until then its queue may not
// be known to the store, and an action on it refused as unknown.
func waitServing(t *testing.T, srv *serveProc) {
	t.Helper()
	pollUntil(t, "the dispatcher to activate", func() (bool, string) {
		out, _, _ := zasync(t, nil, "uuids", "--redis", srv.redisURL)
		return strings.TrimSpace(out) == srv.uuid, out
	})
}

// jobStatus reads a job's status with `zasync job --json`.
func jobStatus(t *testing.T, ref string, common []string) string {
	t.Helper()
	out, errOut, code := zasync(t, nil, append([]string{"job", ref, "--json"}, common...)...)
	var s struct{ Status string }
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("job %s --json: exit %d, stdout %q, stderr %q", ref, code, out, errOut)
	}
	return s.Status
}

// A job running in `zasync serve` is cancelled from another command: it completes as
// cancelled, and its handler stops (the agent's one slot runs the next job, which it could
// not while the cancelled handler slept); pause and resume act on the queue, and status
// shows the pause.
func TestCancelPauseResumeCommands(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--builtin", "--poll-interval", "100ms", "--agent", "main:1")
	common := []string{"--redis", srv.redisURL}

	out, errOut, code := zasync(t, nil, append([]string{"put", "sleep", "3600"}, common...)...)
	if code != 0 || !putOutput.MatchString(out) {
		t.Fatalf("put sleep: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	ref := strings.TrimSpace(out)
	pollUntil(t, "the sleep to run", func() (bool, string) {
		st := jobStatus(t, ref, common)
		return st == "active", st
	})
	out, errOut, code = zasync(t, nil, append([]string{"cancel", ref}, common...)...)
	if code != 0 || out != ref+": cancelled (was active)\n" {
		t.Fatalf("cancel %s: exit %d, stdout %q, stderr %q", ref, code, out, errOut)
	}
	out, errOut, code = zasync(t, nil, append([]string{"wait", ref}, common...)...)
	if code != 1 || !strings.Contains(errOut, "CancelledError") {
		t.Fatalf("wait %s: exit %d, stdout %q, stderr %q; want the cancel", ref, code, out, errOut)
	}
	out, errOut, code = zasync(t, nil, append([]string{"put", "echo", `"next"`, "--wait", "--timeout", "60s"}, common...)...)
	if code != 0 || out != `"next"`+"\n" {
		t.Fatalf("the next job on the one slot: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A second cancel is refused: the outcome is stored.
	out, errOut, code = zasync(t, nil, append([]string{"cancel", ref, "--json"}, common...)...)
	var res []actionResult
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0].OK || !strings.Contains(res[0].Error, "completed") {
		t.Fatalf("second cancel: exit %d, stdout %q, stderr %q; want refused as completed", code, out, errOut)
	}

	// Retried, it runs again (and is cancelled again); then it is deleted.
	out, errOut, code = zasync(t, nil, append([]string{"retry", ref}, common...)...)
	if code != 0 || out != ref+": put back to run again (1 earlier attempts kept)\n" {
		t.Fatalf("retry %s: exit %d, stdout %q, stderr %q", ref, code, out, errOut)
	}
	pollUntil(t, "the retried sleep to run", func() (bool, string) {
		st := jobStatus(t, ref, common)
		return st == "active", st
	})
	out, errOut, code = zasync(t, nil, append([]string{"job", ref}, common...)...)
	if code != 0 || !strings.Contains(out, "earlier attempt:") || !strings.Contains(out, "CancelledError") {
		t.Fatalf("job %s after the retry: exit %d, stdout %q, stderr %q; want the earlier attempt", ref, code, out, errOut)
	}
	if out, errOut, code = zasync(t, nil, append([]string{"delete", ref}, common...)...); code != 1 || !strings.Contains(out, "not deleted") || !strings.Contains(out, "active") {
		t.Fatalf("delete of a running job: exit %d, stdout %q, stderr %q; want refused", code, out, errOut)
	}
	zasync(t, nil, append([]string{"cancel", ref}, common...)...)
	zasync(t, nil, append([]string{"wait", ref}, common...)...)
	out, errOut, code = zasync(t, nil, append([]string{"delete", ref}, common...)...)
	if code != 0 || out != ref+": deleted (was completed)\n" {
		t.Fatalf("delete %s: exit %d, stdout %q, stderr %q", ref, code, out, errOut)
	}
	if _, errOut, code = zasync(t, nil, append([]string{"job", ref}, common...)...); code != 1 || !strings.Contains(errOut, "no job") {
		t.Fatalf("job %s after delete: exit %d, stderr %q", ref, code, errOut)
	}

	out, errOut, code = zasync(t, nil, append([]string{"pause", "default"}, common...)...)
	if code != 0 || out != "queue default: paused\n" {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, _, _ = zasync(t, nil, append([]string{"put", "echo", `"held"`}, common...)...)
	held := strings.TrimSpace(out)
	out, errOut, code = zasync(t, nil, append([]string{"status"}, common...)...)
	if code != 0 || !strings.Contains(out, "queue default: 1 pending") || !strings.Contains(out, "PAUSED") {
		t.Fatalf("status of a paused queue: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = zasync(t, nil, append([]string{"resume", "default", "--json"}, common...)...)
	var pr []pauseResult
	if code != 0 || json.Unmarshal([]byte(out), &pr) != nil || len(pr) != 1 || !pr[0].Changed || pr[0].Paused {
		t.Fatalf("resume --json: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = zasync(t, nil, append([]string{"wait", held, "--timeout", "60s"}, common...)...)
	if code != 0 || out != `"held"`+"\n" {
		t.Fatalf("wait after resume: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	srv.stop()
}

// Bad input is one line on stderr, exit status 2, and changes nothing.
func TestControlBadInput(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--builtin", "--poll-interval", "100ms")
	waitServing(t, srv)
	common := []string{"--redis", srv.redisURL}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cancel"}, 2, "at least one JOB"},
		{[]string{"retry", "default/x", "bad"}, 2, "want queue/id"},
		{[]string{"delete", "default/nope"}, 1, "no job default/nope"},
		{[]string{"retry", "default/nope"}, 1, "no job default/nope"},
		{[]string{"cancel", "nota-ref"}, 2, "want queue/id"},
		{[]string{"pause"}, 2, "at least one QUEUE"},
		{[]string{"pause", "default", "bad/name"}, 2, "queue bad/name"},
		{[]string{"pause", "default", "nosuchqueue"}, 1, "no process has used queue"},
		{[]string{"resume", "default"}, 0, "queue default: not paused"},
	} {
		out, errOut, code := zasync(t, nil, append(tc.args, common...)...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) || strings.Count(errOut, "\n") > 1 {
			t.Errorf("zasync %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, out, errOut, tc.code, tc.want)
		}
	}
	// The refused pauses paused nothing: default was checked with the bad names.
	out, _, _ := zasync(t, nil, append([]string{"status"}, common...)...)
	if strings.Contains(out, "PAUSED") {
		t.Fatalf("a refused pause paused a queue:\n%s", out)
	}
	srv.stop()
}

// The bulk forms: a dry run lists what an action would act on and changes nothing; then the
// action runs over the query; purge deletes completed jobs by age.
func TestBulkCommands(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--builtin", "--poll-interval", "100ms")
	common := []string{"--redis", srv.redisURL}
	var refs []string
	for range 3 {
		out, errOut, code := zasync(t, nil, append([]string{"put", "fail", `"boom"`, "--retry", "never"}, common...)...)
		if code != 0 {
			t.Fatalf("put fail: exit %d, stderr %q", code, errOut)
		}
		refs = append(refs, strings.TrimSpace(out))
	}
	for _, ref := range refs {
		zasync(t, nil, append([]string{"wait", ref}, common...)...)
	}
	out, errOut, code := zasync(t, nil, append([]string{"retry", "--query", "failed", "--callable", "fai*", "--dry-run"}, common...)...)
	if code != 0 || !strings.Contains(out, "retry would act on 3 jobs (dry run: nothing changed)") {
		t.Fatalf("retry --query --dry-run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, ref := range refs {
		if !strings.Contains(out, ref+"\n") {
			t.Fatalf("the dry run does not list %s:\n%s", ref, out)
		}
		if st := jobStatus(t, ref, common); st != "completed" {
			t.Fatalf("after the dry run %s is %s", ref, st)
		}
	}
	out, errOut, code = zasync(t, nil, append([]string{"retry", "--query", "failed", "--callable", "fai*", "--json"}, common...)...)
	var r bulkResult
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Matched != 3 || r.Done != 3 || r.More {
		t.Fatalf("retry --query --json: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, ref := range refs { // each fails again, as a second attempt
		zasync(t, nil, append([]string{"wait", ref}, common...)...)
		if out, _, _ := zasync(t, nil, append([]string{"job", ref}, common...)...); !strings.Contains(out, "earlier attempt:") {
			t.Fatalf("job %s after the bulk retry:\n%s", ref, out)
		}
	}
	out, errOut, code = zasync(t, nil, append([]string{"purge", "failed", "--older-than", "1h"}, common...)...)
	if code != 0 || out != "purged 0 of 0 jobs matched (0 changed meanwhile and were left as they are)\n" {
		t.Fatalf("purge --older-than 1h: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = zasync(t, nil, append([]string{"purge", "failed", "--older-than", "0s"}, common...)...)
	if code != 0 || !strings.HasPrefix(out, "purged 3 of 3 jobs matched") {
		t.Fatalf("purge --older-than 0s: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, ref := range refs {
		if _, errOut, code := zasync(t, nil, append([]string{"job", ref}, common...)...); code != 1 || !strings.Contains(errOut, "no job") {
			t.Fatalf("job %s after purge: exit %d, stderr %q", ref, code, errOut)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cancel", "--callable", "x", "default/abc"}, "--callable needs --query"},
		{[]string{"retry", "--query", "completed"}, "applies to failed only"},
		{[]string{"cancel", "--query"}, "at least one state"},
		{[]string{"purge"}, "exactly one STATE"},
		{[]string{"purge", "failed"}, "--older-than"},
		{[]string{"purge", "pending", "--older-than", "1h"}, "want completed, succeeded or failed"},
	} {
		out, errOut, code := zasync(t, nil, append(tc.args, common...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("zasync %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
	srv.stop()
}

// apiCall sends a request to the HTTP API at url and returns its status and body.
func apiCall(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := monitorClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// apiLine is the line `zasync monitor` prints once it listens.
var apiLine = regexp.MustCompile(`zasync monitor: dashboard at (http://\S+)/dashboard/, API at `)

// serve --monitor mounts the HTTP API, whose actions need its token; `zasync monitor`, with
// no dispatcher, answers for the same installation from Redis, and acts for loopback
// clients when it has no token.
func TestMonitorCommandAndServeAPI(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--builtin", "--poll-interval", "100ms", "--monitor", "127.0.0.1:0", "--monitor-token", "tok")
	waitServing(t, srv)
	api := srv.monitor + "/api/v1"
	if code, body := apiCall(t, "GET", api+"/queues", ""); code != 200 || !strings.Contains(body, `"name": "default"`) {
		t.Fatalf("GET queues: %d %s", code, body)
	}
	if code, body := apiCall(t, "POST", api+"/queues/default/pause", ""); code != 401 || !strings.Contains(body, `"unauthorized"`) {
		t.Fatalf("pause without the token: %d %s", code, body)
	}
	if code, body := apiCall(t, "POST", api+"/queues/default/pause", "tok"); code != 200 {
		t.Fatalf("pause with the token: %d %s", code, body)
	}

	mon := launchCommand(t, nil, "monitor", "--redis", srv.redisURL, "--listen", "127.0.0.1:0")
	url := mon.waitLine(apiLine)[1] + "/api/v1"
	if code, body := apiCall(t, "GET", url+"/queues/default", ""); code != 200 || !strings.Contains(body, `"paused": true`) || !strings.Contains(body, srv.uuid) {
		t.Fatalf("GET the queue from zasync monitor: %d %s", code, body)
	}
	if code, body := apiCall(t, "POST", url+"/queues/default/resume", ""); code != 200 || !strings.Contains(body, `"changed": true`) {
		t.Fatalf("resume from loopback without a token: %d %s", code, body)
	}
	out, _, _ := zasync(t, nil, "status", "--redis", srv.redisURL)
	if strings.Contains(out, "PAUSED") {
		t.Fatalf("status after the resume:\n%s", out)
	}
	if code, body := apiCall(t, "GET", mon.waitLine(apiLine)[1]+"/dashboard/", ""); code != 200 || !strings.Contains(body, "assets/app.js") {
		t.Fatalf("the dashboard from zasync monitor: %d %.200s", code, body)
	}
	if code, body := apiCall(t, "GET", srv.monitor+"/dashboard/", ""); code != 200 || !strings.Contains(body, "assets/app.js") {
		t.Fatalf("the dashboard from serve --monitor: %d %.200s", code, body)
	}
	mon.signal(syscall.SIGINT)
	if code := mon.wait(); code != 0 {
		t.Fatalf("zasync monitor after SIGINT: exit %d:\n%s", code, mon.stderr())
	}
	if _, errOut, code := zasync(t, nil, "monitor"); code != 2 || !strings.Contains(errOut, "no Redis given") {
		t.Fatalf("monitor without Redis: exit %d, stderr %q", code, errOut)
	}
	srv.stop()
}
