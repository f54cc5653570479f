package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/common/expfmt"

	"github.com/zasync/zasync/internal/testredis"
)

// serveDeadline bounds every wait on a `zasync serve` process: generous, as the tests share
// a busy machine.
const serveDeadline = 60 * time.Second

// serveLine is the line serve prints once its dispatcher runs: its UUID and the Redis URL.
var serveLine = regexp.MustCompile(`zasync serve: dispatcher (\S+) serving .* on (\S+) \(poll `)

// monitorLine is the line serve prints once its monitor listens.
var monitorLine = regexp.MustCompile(`zasync serve: monitor at (http://\S+)/ \(metrics at `)

// serveProc is a `zasync serve` running in the background, its stderr collected.
type serveProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	dir      string // its working directory, where uuid.txt goes
	uuid     string
	redisURL string
	monitor  string // base URL of the monitor, with --monitor

	mu      sync.Mutex
	log     strings.Builder
	changed chan struct{} // a line arrived (buffered: one pending wake-up is enough)
	exited  chan struct{} // closed once the process has exited and code is set
	code    int
}

// startServe starts `zasync serve args…` in a directory of its own, with ZASYNC_REDIS and
// ZASYNC_UUID empty, and returns once it serves (and its monitor listens, with --monitor).
// The process is killed at the end of the test if it still runs.
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	return startServeEnv(t, nil, args...)
}

// startServeEnv is startServe with env added to the process's environment.
func startServeEnv(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	p := launchServeEnv(t, env, args...)
	m := p.waitLine(serveLine)
	p.uuid, p.redisURL = m[1], m[2]
	for _, a := range args {
		if a == "--monitor" || strings.HasPrefix(a, "--monitor=") {
			p.monitor = p.waitLine(monitorLine)[1]
		}
	}
	return p
}

// launchServe starts `zasync serve args…` without waiting for it to serve.
func launchServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	return launchServeEnv(t, nil, args...)
}

// launchServeEnv is launchServe with env added to the process's environment.
func launchServeEnv(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	return launchCommand(t, env, "serve", args...)
}

// launchCommand starts `zasync command args…` in the background, as launchServe does serve.
func launchCommand(t *testing.T, env []string, command string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{t: t, dir: t.TempDir(), changed: make(chan struct{}, 1), exited: make(chan struct{})}
	p.cmd = exec.Command(zasyncBin, append([]string{command}, args...)...)
	p.cmd.Dir = p.dir
	p.cmd.Env = append(append(os.Environ(), "ZASYNC_REDIS=", "ZASYNC_UUID="), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start zasync serve: %v", err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("zasync serve %s: stderr:\n%s", strings.Join(args, " "), p.stderr())
		}
	})
	return p
}

// read collects the process's stderr until it closes, then reaps the process.
func (p *serveProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.log.WriteString(sc.Text() + "\n")
		p.mu.Unlock()
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
	io.Copy(io.Discard, r) // a line too long for the scanner: drain, so the process never blocks
	p.cmd.Wait()
	p.code = p.cmd.ProcessState.ExitCode()
	close(p.exited)
}

func (p *serveProc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitLine waits until stderr matches re and returns the submatches; the test fails if the
// process exits first or the deadline passes.
func (p *serveProc) waitLine(re *regexp.Regexp) []string {
	p.t.Helper()
	deadline := time.NewTimer(serveDeadline)
	defer deadline.Stop()
	for {
		if m := re.FindStringSubmatch(p.stderr()); m != nil {
			return m
		}
		select {
		case <-p.changed:
		case <-p.exited:
			if m := re.FindStringSubmatch(p.stderr()); m != nil {
				return m
			}
			p.t.Fatalf("zasync serve exited (status %d) before printing /%s/", p.code, re)
		case <-deadline.C:
			p.t.Fatalf("zasync serve did not print /%s/ within %s", re, serveDeadline)
		}
	}
}

// signal sends sig to the process.
func (p *serveProc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal zasync serve: %v", err)
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *serveProc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(serveDeadline):
		p.t.Fatalf("zasync serve did not exit within %s", serveDeadline)
		return 0
	}
}

// stop stops the process with SIGINT and checks that it stops cleanly.
func (p *serveProc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != 0 || !strings.HasSuffix(p.stderr(), "zasync serve: stopped\n") {
		p.t.Fatalf("zasync serve after SIGINT: exit %d, stderr:\n%s", code, p.stderr())
	}
}

// testName is a name unique to one test run.
func testName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// realRedis returns the address of the real Redis to test against, and deletes the keys
// under prefix when the test ends; it skips the test when ZASYNC_TEST_REDIS is unset.
func realRedis(t *testing.T, prefix string) string {
	t.Helper()
	addr := testredis.Addr()
	if addr == "" {
		t.Skip(testredis.Env + " is not set")
	}
	testredis.DeleteAtCleanup(t, addr, prefix)
	return addr
}

// putOutput matches a job as put prints it.
var putOutput = regexp.MustCompile(`^([a-z]+)/([0-9a-f-]{36})\n$`)

// TestServePutWait drives `serve --builtin` on its embedded Redis with put and wait, as a
// user would from another terminal.
func TestServePutWait(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--builtin", "--poll-interval", "200ms")
	if !strings.HasPrefix(srv.redisURL, "redis://127.0.0.1:") {
		t.Fatalf("serve printed Redis URL %q, want redis://127.0.0.1:PORT", srv.redisURL)
	}
	if !strings.Contains(srv.stderr(), "using an embedded one at "+srv.redisURL) {
		t.Errorf("serve did not announce its embedded Redis:\n%s", srv.stderr())
	}
	// Without --uuid, the dispatcher's UUID is created in uuid.txt in the working directory.
	if b, err := os.ReadFile(filepath.Join(srv.dir, "uuid.txt")); err != nil || strings.TrimSpace(string(b)) != srv.uuid {
		t.Errorf("uuid.txt: %q, %v; want the UUID serve printed, %s", b, err, srv.uuid)
	}
	url := srv.redisURL
	// Every subtest runs in parallel against the one server; the group returns once they
	// all have.
	t.Run("group", func(t *testing.T) {
		t.Run("sum", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "sum", "1", "2", "--wait")
			if code != 0 || out != "3\n" || !strings.HasPrefix(errOut, "default/") {
				t.Fatalf("put sum 1 2 --wait: exit %d, stdout %q, stderr %q; want 3 and the job on stderr", code, out, errOut)
			}
		})
		t.Run("echo json", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "echo", `"hi"`, "--wait", "--json")
			var res struct{ Job, Status, Result string }
			if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Result != "hi" || res.Status != "succeeded" ||
				!strings.HasPrefix(res.Job, "default/") {
				t.Fatalf("put echo '\"hi\"' --wait --json: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
		t.Run("fail", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "fail", `"boom"`, "--retry", "never", "--wait")
			if code != 1 || out != "" || !strings.Contains(errOut, "failed: ") || !strings.Contains(errOut, "boom") {
				t.Fatalf("put fail '\"boom\"' --wait: exit %d, stdout %q, stderr %q; want exit 1 and boom", code, out, errOut)
			}
		})
		t.Run("fail json", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "--retry", "never", "--json", "--wait", "fail")
			var res struct {
				Status  string
				Failure json.RawMessage
			}
			if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Status != "failed" ||
				!strings.Contains(string(res.Failure), "failed, as asked") {
				t.Fatalf("put fail --wait --json: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
		t.Run("no handler", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "nosuch", "--wait")
			if code != 1 || out != "" || !strings.Contains(errOut, "no handler registered") {
				t.Fatalf("put nosuch --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
		t.Run("put then wait", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "sum", "[1.5, 2]")
			if code != 0 || !putOutput.MatchString(out) || !strings.HasPrefix(out, "default/") {
				t.Fatalf("put sum: exit %d, stdout %q, stderr %q; want default/ID", code, out, errOut)
			}
			ref := strings.TrimSpace(out)
			out, errOut, code = zasync(t, nil, "wait", ref, "--redis", url)
			if code != 0 || out != "3.5\n" {
				t.Fatalf("wait %s: exit %d, stdout %q, stderr %q; want 3.5", ref, code, out, errOut)
			}
			out, errOut, code = zasync(t, nil, "wait", "--json", "--redis", url, ref)
			if code != 0 || !strings.Contains(out, `"result": 3.5`) || !strings.Contains(out, ref) {
				t.Fatalf("wait --json %s: exit %d, stdout %q, stderr %q", ref, code, out, errOut)
			}
		})
		t.Run("wait unknown", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "wait", "--redis", url, "default/unknown-id")
			if code == 0 || out != "" || !strings.Contains(errOut, "unknown job default/unknown-id") {
				t.Fatalf("wait default/unknown-id: exit %d, stdout %q, stderr %q; want unknown job", code, out, errOut)
			}
		})
		t.Run("wait malformed", func(t *testing.T) {
			t.Parallel()
			_, errOut, code := zasync(t, nil, "wait", "--redis", url, "no-slash")
			if code != 2 || !strings.Contains(errOut, "want queue/id") {
				t.Fatalf("wait no-slash: exit %d, stderr %q; want exit 2", code, errOut)
			}
		})
		t.Run("not JSON", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "sum", "1", "x")
			if code != 2 || out != "" || !strings.Contains(errOut, "argument 2 (x) is not JSON") {
				t.Fatalf("put sum 1 x: exit %d, stdout %q, stderr %q; want exit 2, not JSON", code, out, errOut)
			}
		})
		t.Run("begin after", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "--begin-after", "+1s", "echo", "1", "--wait")
			if code != 0 || out != "1\n" {
				t.Fatalf("put --begin-after +1s echo 1 --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
		t.Run("negative argument", func(t *testing.T) {
			t.Parallel()
			// A negative number is an argument, not a flag.
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "sum", "-4", "1", "--wait")
			if code != 0 || out != "-3\n" {
				t.Fatalf("put sum -4 1 --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
		t.Run("bad retry", func(t *testing.T) {
			t.Parallel()
			for _, bad := range []string{"bogus", "backoff:3,1s", "backoff:0,1s,1m", "backoff:3,1m,1s", "backoff:x,1s,1m"} {
				out, errOut, code := zasync(t, nil, "put", "--redis", url, "--retry", bad, "echo", "1")
				if code != 2 || out != "" || !strings.Contains(errOut, `--retry "`+bad+`"`) || strings.Count(errOut, "\n") != 1 {
					t.Fatalf("put --retry %s: exit %d, stdout %q, stderr %q; want exit 2 and one line", bad, code, out, errOut)
				}
			}
		})
		t.Run("retry with backoff", func(t *testing.T) {
			t.Parallel()
			// A failure retried once, a tenth of a second later, then kept.
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "--retry", "backoff:1,100ms,100ms", "--json", "--wait", "fail", `"boom"`)
			var res struct {
				Job     string
				Failure struct{ Message string }
			}
			if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Failure.Message != "boom" {
				t.Fatalf("put --retry backoff:1,100ms,100ms fail --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			out, errOut, code = zasync(t, nil, "job", res.Job, "--redis", url, "--json")
			if code != 0 || !strings.Contains(out, `"attempt": 2`) {
				t.Fatalf("the job after its retry: exit %d, stdout %q, stderr %q; want its second attempt", code, out, errOut)
			}
		})
		t.Run("unserved queue", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := zasync(t, nil, "put", "--redis", url, "--queue", "unserved", "echo", "1")
			if code != 0 || !putOutput.MatchString(out) || !strings.HasPrefix(out, "unserved/") {
				t.Fatalf("put --queue unserved: exit %d, stdout %q, stderr %q; want unserved/ID", code, out, errOut)
			}
			out, errOut, code = zasync(t, nil, "put", "--redis", url, "--queue", "unserved", "--json", "echo", "1")
			var res struct{ Job string }
			if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !strings.HasPrefix(res.Job, "unserved/") {
				t.Fatalf("put --queue unserved --json: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			// Nobody serves it: waiting gives up after --timeout.
			ref := res.Job
			out, errOut, code = zasync(t, nil, "wait", "--redis", url, "--timeout", "300ms", ref)
			if code != 1 || out != "" || !strings.Contains(errOut, "did not complete within 300ms") {
				t.Fatalf("wait --timeout 300ms %s: exit %d, stdout %q, stderr %q", ref, code, out, errOut)
			}
		})
	})
	srv.stop()
}

// TestServePutRealRedis runs serve and put on the real Redis, under a prefix and a UUID of
// the test's own.
func TestServePutRealRedis(t *testing.T) {
	t.Parallel()
	prefix, uuid := testName("zasynctest-serve-"), testName("d-serve-")
	url := "redis://" + realRedis(t, prefix) + "/0"
	srv := startServe(t, "--builtin", "--redis", url, "--prefix", prefix, "--uuid", uuid, "--poll-interval", "200ms")
	if srv.uuid != uuid || srv.redisURL != url || strings.Contains(srv.stderr(), "embedded") {
		t.Fatalf("serve printed dispatcher %s on %s; want %s on %s:\n%s", srv.uuid, srv.redisURL, uuid, url, srv.stderr())
	}
	if _, err := os.Stat(filepath.Join(srv.dir, "uuid.txt")); err == nil {
		t.Errorf("serve --uuid created uuid.txt")
	}
	common := []string{"--redis", url, "--prefix", prefix}
	out, errOut, code := zasync(t, nil, append([]string{"put", "sum", "1", "2", "--wait"}, common...)...)
	if code != 0 || out != "3\n" {
		t.Fatalf("put sum 1 2 --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = zasync(t, nil, append([]string{"put", "fail", `"boom"`, "--retry", "never", "--wait"}, common...)...)
	if code != 1 || !strings.Contains(errOut, "boom") {
		t.Fatalf("put fail --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = zasync(t, nil, append([]string{"put", "echo", `{"a": [1]}`}, common...)...)
	if code != 0 || !putOutput.MatchString(out) {
		t.Fatalf("put echo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	ref := strings.TrimSpace(out)
	out, errOut, code = zasync(t, nil, append([]string{"wait", ref}, common...)...)
	if code != 0 || out != `{"a":[1]}`+"\n" {
		t.Fatalf("wait %s: exit %d, stdout %q, stderr %q", ref, code, out, errOut)
	}
	// The job is under the test's prefix only: under the default prefix it is unknown.
	_, errOut, code = zasync(t, nil, "wait", ref, "--redis", url, "--prefix", testName("zasynctest-none-"))
	if code != 1 || !strings.Contains(errOut, "unknown job") {
		t.Fatalf("wait %s under another prefix: exit %d, stderr %q; want unknown job", ref, code, errOut)
	}
	srv.stop()
}

// monitorClient reads the monitor; its timeout keeps a hung server from hanging the test.
var monitorClient = &http.Client{Timeout: 30 * time.Second}

// httpGet fetches url and returns its status code and body.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := monitorClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, body
}

// httpGetJSON fetches url, checks that it answers 200 with JSON, and decodes it into v.
func httpGetJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, body := httpGet(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// pollUntil polls cond until it holds, failing the test after serveDeadline; cond returns
// what it saw, for the failure message.
func pollUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(serveDeadline)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within %s; last saw %s", what, serveDeadline, saw)
		}
	}
}

// TestServeMonitor reads the HTTP monitor of `serve --monitor` while jobs run.
func TestServeMonitor(t *testing.T) {
	t.Parallel()
	uuid := testName("d-monitor-")
	srv := startServe(t, "--builtin", "--uuid", uuid, "--monitor", "127.0.0.1:0", "--poll-interval", "200ms")
	if !strings.HasPrefix(srv.monitor, "http://127.0.0.1:") {
		t.Fatalf("monitor URL %q, want http://127.0.0.1:PORT", srv.monitor)
	}
	var index struct{ Endpoints map[string]string }
	httpGetJSON(t, srv.monitor+"/", &index)
	if _, ok := index.Endpoints["/metrics"]; !ok {
		t.Errorf("GET /: no /metrics in %v", index.Endpoints)
	}
	pollUntil(t, "/status RUNNING", func() (bool, string) {
		var st struct {
			Status, UUID string
			Uptime       map[string]float64
		}
		httpGetJSON(t, srv.monitor+"/status", &st)
		return st.Status == "RUNNING" && st.UUID == uuid && st.Uptime != nil, fmt.Sprintf("%+v", st)
	})

	out, errOut, code := zasync(t, nil, "put", "--redis", srv.redisURL, "sum", "1", "2", "--wait")
	m := regexp.MustCompile(`default/([0-9a-f-]{36})`).FindStringSubmatch(errOut)
	if code != 0 || out != "3\n" || m == nil {
		t.Fatalf("put sum 1 2 --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	id := m[1]

	// The job's completion reaches put a moment before its run reports its end to the
	// agent: wait for that, with a deadline.
	pollUntil(t, "GET /jobs: none running once the job has completed", func() (bool, string) {
		var jobs []string
		httpGetJSON(t, srv.monitor+"/jobs", &jobs)
		return len(jobs) == 0, fmt.Sprint(jobs)
	})
	var job struct {
		ID, Queue, Agent string
		Failed           bool
		Result           *string
	}
	httpGetJSON(t, srv.monitor+"/job/"+id, &job)
	if job.ID != id || job.Queue != "default" || job.Agent != "main" || job.Failed || job.Result == nil || *job.Result != "3" {
		t.Errorf("GET /job/%s: %+v", id, job)
	}
	if code, body := httpGet(t, srv.monitor+"/job/nosuch"); code != http.StatusNotFound || !strings.Contains(string(body), `"error"`) {
		t.Errorf("GET /job/nosuch: %d %s; want 404 with an error", code, body)
	}
	// The poll that claimed the job names it among its new jobs.
	pollUntil(t, "/polls naming the job", func() (bool, string) {
		var polls []struct {
			Key     int64
			Results map[string]map[string]struct {
				Size    int
				NewJobs []string `json:"new jobs"`
			}
		}
		_, body := httpGet(t, srv.monitor+"/polls?count=100")
		if err := json.Unmarshal(body, &polls); err != nil {
			t.Fatalf("GET /polls: %v in %s", err, body)
		}
		for _, p := range polls {
			if a := p.Results["default"]["main"]; a.Size == 3 && strings.Contains(strings.Join(a.NewJobs, " "), id) {
				return true, ""
			}
		}
		return false, string(body)
	})

	code, body := httpGet(t, srv.monitor+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("GET /metrics: %v in\n%s", err, body)
	}
	// value returns the metric's value for queue default (and agent main, where it has one).
	value := func(name string) (float64, bool) {
		f, ok := families[name]
		if !ok {
			return 0, false
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["queue"] != "default" || (labels["agent"] != "" && labels["agent"] != "main") {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	// jobs_put_total counts the puts of the process serving /metrics: the put came from
	// another process, so it is only required to be there.
	for name, atLeast := range map[string]float64{
		"zasync_jobs_put_total": 0, "zasync_jobs_claimed_total": 1, "zasync_jobs_succeeded_total": 1,
		"zasync_jobs_failed_total": 0, "zasync_queue_pending_jobs": 0, "zasync_running_jobs": 0,
	} {
		if v, ok := value(name); !ok || v < atLeast {
			t.Errorf("/metrics: %s{queue=\"default\"} = %v (present %t), want at least %v", name, v, ok, atLeast)
		}
	}
	if _, ok := families["zasync_poll_duration_seconds"]; !ok {
		t.Errorf("/metrics: no zasync_poll_duration_seconds")
	}

	// A running job shows in /jobs; a clean stop cancels it and hands it back, interrupted.
	out, errOut, code = zasync(t, nil, "put", "--redis", srv.redisURL, "sleep", "600")
	if code != 0 || !putOutput.MatchString(out) {
		t.Fatalf("put sleep 600: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	sleepID := putOutput.FindStringSubmatch(out)[2]
	pollUntil(t, "/jobs running the sleep job", func() (bool, string) {
		var jobs []string
		httpGetJSON(t, srv.monitor+"/jobs", &jobs)
		return len(jobs) == 1 && jobs[0] == sleepID, fmt.Sprint(jobs)
	})
	srv.stop()
	if !strings.Contains(srv.stderr(), "interrupted=1") {
		t.Errorf("serve stopped without interrupting the running job:\n%s", srv.stderr())
	}
}

// TestServeMonitorRemoteRefused: the monitor has no authentication, so serve refuses a
// non-loopback address unless --monitor-remote says otherwise.
func TestServeMonitorRemoteRefused(t *testing.T) {
	t.Parallel()
	p := launchServe(t, "--builtin", "--uuid", testName("d-remote-"), "--monitor", "0.0.0.0:0")
	code := p.wait()
	errOut := p.stderr()
	if code != 2 || !strings.Contains(errOut, "zasync serve: --monitor: monitor: not a loopback address") ||
		strings.Contains(errOut, "serving") || strings.Contains(errOut, "goroutine ") {
		t.Fatalf("serve --monitor 0.0.0.0:0: exit %d, stderr:\n%s\nwant exit 2, not a loopback address", code, errOut)
	}
}

// TestServeSecondSignal: SIGINT starts a clean stop; a second SIGINT stops at once, with a
// non-zero status. The clean stop is held up by a Redis that stops answering (a proxy the
// test pauses), so that the second signal surely arrives while it runs.
func TestServeSecondSignal(t *testing.T) {
	t.Parallel()
	proxy := newGateProxy(t, miniredis.RunT(t).Addr())
	// Long client timeouts: a command sent while the proxy is paused waits, it does not fail.
	url := "redis://" + proxy.addr() + "/0?read_timeout=10m&write_timeout=10m"
	uuid := testName("d-signal-")
	srv := startServe(t, "--builtin", "--uuid", uuid, "--redis", url, "--poll-interval", "200ms")
	srv.waitLine(regexp.MustCompile(`msg="activated dispatcher ` + uuid + `"`))
	proxy.pause()
	srv.signal(syscall.SIGINT)
	srv.waitLine(regexp.MustCompile(`interrupt: stopping cleanly \(running jobs are cancelled; waiting up to 10s for them to return\); signal again`))
	srv.signal(syscall.SIGINT)
	code := srv.wait()
	errOut := srv.stderr()
	if code != 1 || !strings.Contains(errOut, "zasync serve: interrupt again: stopping at once; siblings will recover") ||
		strings.Contains(errOut, "zasync serve: stopped") {
		t.Fatalf("serve after two SIGINTs: exit %d, stderr:\n%s\nwant exit 1 at once", code, errOut)
	}
}

// gateProxy forwards TCP connections to a Redis, and can stop forwarding: a Redis that no
// longer answers, without closing its connections.
type gateProxy struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	open   chan struct{} // closed while forwarding; a pause replaces it with an open one
	paused bool
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// newGateProxy listens on a loopback port and forwards to upstream until the test ends.
func newGateProxy(t *testing.T, upstream string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln, upstream: upstream, open: make(chan struct{})}
	close(p.open)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *gateProxy) addr() string { return p.ln.Addr().String() }

func (p *gateProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, u) {
			return
		}
		p.wg.Add(2)
		go p.pipe(u, c)
		go p.pipe(c, u)
	}
}

// track remembers conns for close, or closes them if the proxy is closed.
func (p *gateProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, conns...)
	return true
}

// pipe copies src to dst, holding each chunk while the proxy is paused.
func (p *gateProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			open := p.open
			p.mu.Unlock()
			<-open
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// pause stops forwarding: what is sent either way is held.
func (p *gateProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused = true
		p.open = make(chan struct{})
	}
}

// close stops the proxy, its connections and its goroutines.
func (p *gateProxy) close() {
	p.mu.Lock()
	p.closed = true
	if p.paused {
		p.paused = false
		close(p.open)
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// TestServeBadInput: bad flags get one clear line and exit status 2; a Redis that cannot
// be reached, 1.
func TestServeBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--agent", "main:0"}, 2, `--agent "main:0": want NAME:SIZE with SIZE at least 1`},
		{[]string{"serve", "--agent", "nocolon"}, 2, `--agent "nocolon": want NAME:SIZE`},
		{[]string{"serve", "--agent", ":3"}, 2, `--agent ":3": want NAME:SIZE`},
		{[]string{"serve", "--redis", "redis://127.0.0.1:1"}, 1, "cannot reach Redis at 127.0.0.1:1"},
		{[]string{"serve", "--redis", "::bad"}, 2, "malformed Redis URL"},
		{[]string{"serve", "--nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "--log-level", "loud"}, 2, `--log-level "loud"`},
		{[]string{"serve", "--poll-interval", "soon"}, 2, `invalid value "soon" for flag -poll-interval`},
		{[]string{"put", "--redis", "redis://127.0.0.1:1"}, 2, "put needs a HANDLER"},
		{[]string{"put", "sum", "1"}, 2, "no Redis given: pass --redis URL or set ZASYNC_REDIS"},
		{[]string{"put", "--redis", "redis://127.0.0.1:1", "--begin-after", "tomorrow", "echo"}, 2, `--begin-after "tomorrow"`},
		{[]string{"put", "--redis", "redis://127.0.0.1:1", "--kwarg", "x", "echo"}, 2, `--kwarg "x": want NAME=JSON`},
		{[]string{"put", "--redis", "redis://127.0.0.1:1", "echo", "--nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"put", "--redis", "redis://127.0.0.1:1", "echo"}, 1, "cannot reach Redis at 127.0.0.1:1"},
		{[]string{"wait", "default/x"}, 2, "no Redis given"},
		{[]string{"wait", "--redis", "redis://127.0.0.1:1"}, 2, "wait needs exactly one JOB"},
	} {
		out, errOut, code := zasync(t, nil, tc.args...)
		lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
		if code != tc.code || len(lines) != 1 || !strings.Contains(errOut, tc.want) || out != "" ||
			!strings.HasPrefix(errOut, "zasync "+tc.args[0]+": ") {
			t.Errorf("zasync %q: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	// --help prints the flags and exits 0.
	for _, cmd := range []string{"serve", "put", "wait"} {
		_, errOut, code := zasync(t, nil, cmd, "--help")
		if code != 0 || !strings.Contains(errOut, "Usage: zasync "+cmd) || !strings.Contains(errOut, "-redis") {
			t.Errorf("zasync %s --help: exit %d, stderr %q", cmd, code, errOut)
		}
	}
}

// A second `zasync serve` with the UUID of one that runs (two processes sharing a uuid.txt)
// says so in one line, naming the process that holds it, and exits 1; with
// --wait-for-takeover it waits, says so once, and takes the queue over when the first dies.
func TestServeRefusesALiveUUID(t *testing.T) {
	t.Parallel()
	addr, prefix := testredis.Shared(t, "twin")
	uuid := "twin-" + prefix
	common := []string{"--redis", "redis://" + addr, "--prefix", prefix, "--uuid", uuid, "--builtin",
		"--poll-interval", "50ms", "--ping-interval", "100ms", "--ping-death-interval", "1s"}
	first := startServe(t, common...)

	_, errOut, code := zasync(t, nil, append([]string{"serve"}, common...)...)
	want := fmt.Sprintf("UUID %s is in use in queue default by process %d on ", uuid, first.cmd.Process.Pid)
	if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "--wait-for-takeover") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("a second serve with a live UUID: exit %d, stderr %q; want 1 and one line saying %q", code, errOut, want)
	}

	waiting := startServe(t, append([]string{"--wait-for-takeover"}, common...)...)
	waiting.waitLine(regexp.MustCompile(`level=ERROR msg="UUID ` + regexp.QuoteMeta(uuid) + ` already activated in queue default: another process\?`))
	if strings.Contains(waiting.stderr(), "activated dispatcher "+uuid) {
		t.Fatalf("the waiting process activated the dispatcher:\n%s", waiting.stderr())
	}
	// The first one serves on.
	out, errOut, code := zasync(t, nil, "put", "--redis", "redis://"+addr, "--prefix", prefix, "sum", "2", "3")
	if code != 0 {
		t.Fatalf("put: exit %d, stderr %q", code, errOut)
	}
	ref := strings.TrimSpace(out)
	first.cmd.Process.Kill()
	<-first.exited
	waiting.waitLine(regexp.MustCompile(`took over UUID ` + regexp.QuoteMeta(uuid) + ` in queue default`))
	if n := strings.Count(waiting.stderr(), "already activated"); n != 1 {
		t.Fatalf("the waiting process said %d times that the UUID was taken, want once:\n%s", n, waiting.stderr())
	}
	// A job put meanwhile completes, on one or the other.
	out, errOut, code = zasync(t, nil, "wait", ref, "--redis", "redis://"+addr, "--prefix", prefix, "--timeout", "1m")
	if code != 0 || out != "5\n" {
		t.Fatalf("wait for the job after the takeover: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	waiting.stop()
}

// serve --log-format json writes one JSON object a line; a job's record names it in
// attributes and leaves its arguments and result out, unless --log-arguments.
func TestServeLogsJSON(t *testing.T) {
	t.Parallel()
	addr, prefix := testredis.Shared(t, "jsonlog")
	common := []string{"--redis", "redis://" + addr, "--prefix", prefix}
	for _, withArgs := range []bool{false, true} {
		args := append([]string{"--builtin", "--log-format", "json", "--uuid", fmt.Sprintf("jsonlog-%v-%s", withArgs, prefix)}, common...)
		if withArgs {
			args = append(args, "--log-arguments")
		}
		p := startServe(t, args...)
		out, errOut, code := zasync(t, nil, append([]string{"put", "sum", "20", "22", "--wait", "--timeout", "1m"}, common...)...)
		if code != 0 || out != "42\n" {
			t.Fatalf("put sum --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		line := p.waitLine(regexp.MustCompile(`(?m)^(\{.*"msg":"<zasync.Job [^"]*succeeded.*)$`))[1]
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line that is not JSON: %q: %v", line, err)
		}
		if rec["handler"] != "sum" || rec["queue"] != "default" || rec["attempt"] != float64(1) || rec["job"] == nil || rec["dispatcher"] == nil {
			t.Fatalf("the success record's attributes: %v", rec)
		}
		if shows := strings.Contains(line, "20, 22") && strings.Contains(line, "42"); shows != withArgs {
			t.Fatalf("--log-arguments %v, the success record: %s", withArgs, line)
		}
		p.stop()
	}
	if _, errOut, code := zasync(t, nil, append([]string{"serve", "--log-format", "xml"}, common...)...); code != 2 || !strings.Contains(errOut, `--log-format "xml": want text or json`) {
		t.Fatalf("serve --log-format xml: exit %d, stderr %q", code, errOut)
	}
}
