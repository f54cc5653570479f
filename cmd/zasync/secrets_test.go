package main

import (
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// TestRedactURL: the passwords of a Redis URL, well formed or not, never survive redaction,
// and the rest of the URL does.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, want string
		secrets   []string
	}{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", nil},
		{"redis://:hunter2@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0", []string{"hunter2"}},
		{"rediss://alice:hunter2@redis.example:6380/1", "rediss://alice:xxxxx@redis.example:6380/1", []string{"hunter2"}},
		{"redis://alice:p%40ss%3Aw0rd@h:1/0", "redis://alice:xxxxx@h:1/0", []string{"p%40ss%3Aw0rd", "p@ss:w0rd"}},
		{"redis://alice:pa:ss@h:1", "redis://alice:xxxxx@h:1", []string{"pa:ss"}},
		// Sentinel: the sentinels' password in the user information, the master's as a parameter.
		{"redis://s:sentpw@h:26379/0?master_name=m&password=masterpw&addr=h2:26379",
			"redis://s:xxxxx@h:26379/0?master_name=m&password=xxxxx&addr=h2:26379", []string{"sentpw", "masterpw"}},
		{"redis+cluster://:clusterpw@h:7000?addr=h:7001", "redis+cluster://:xxxxx@h:7000?addr=h:7001", []string{"clusterpw"}},
		// Malformed: a bad escape, a password holding '/' or '#', no scheme, a bad port.
		{"redis://alice:hun%zzter2@h:1/0", "redis://alice:xxxxx@h:1/0", []string{"hun%zzter2"}},
		{"redis://alice:hun/ter#2@h:1/0", "redis://alice:xxxxx@h:1/0", []string{"hun/ter#2"}},
		{"alice:hunter2@h:1", "alice:xxxxx@h:1", []string{"hunter2"}},
		{"redis://:hunter2@h:port/0", "redis://:xxxxx@h:port/0", []string{"hunter2"}},
	} {
		got := redactURL(tc.raw)
		if got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.raw, got, tc.want)
		}
		for _, s := range tc.secrets {
			if strings.Contains(got, s) {
				t.Errorf("redactURL(%q) = %q: shows %q", tc.raw, got, s)
			}
			msg := "dial " + tc.raw + ": auth " + s + " refused"
			if scrubbed := scrub(msg, tc.raw); strings.Contains(scrubbed, s) {
				t.Errorf("scrub(%q) = %q: shows %q", msg, scrubbed, s)
			}
		}
	}
}

// TestSecretsNotPrinted: serve, the queries and put never print the Redis password, whether
// the URL comes from --redis or ZASYNC_REDIS, is malformed, or is refused by the server.
func TestSecretsNotPrinted(t *testing.T) {
	t.Parallel()
	const password = "s3cr3t-Pa55"
	m := miniredis.RunT(t)
	m.RequireAuth(password)
	url := "redis://:" + password + "@" + m.Addr() + "/0"
	prefix := testName("zasynctest-secret-")
	check := func(what, out string) {
		t.Helper()
		if strings.Contains(out, password) || strings.Contains(out, "Pa55") {
			t.Errorf("%s printed the password:\n%s", what, out)
		}
	}

	// serve: its startup line names the Redis with the password redacted.
	p := startServe(t, "--builtin", "--prefix", prefix, "--redis", url, "--monitor", "127.0.0.1:0")
	if want := "redis://:xxxxx@" + m.Addr() + "/0"; p.redisURL != want {
		t.Errorf("serve --redis: printed URL %q, want %q", p.redisURL, want)
	}
	for _, path := range []string{"/status", "/metrics", "/"} {
		_, body := httpGet(t, p.monitor+path)
		check("the monitor's "+path, string(body))
	}
	out, errOut, code := zasync(t, nil, "status", "--redis", url, "--prefix", prefix)
	if code != 0 {
		t.Errorf("status: exit %d, stderr %q", code, errOut)
	}
	check("status", out+errOut)
	p.stop()
	check("serve --redis", p.stderr())

	env := startServeEnv(t, []string{"ZASYNC_REDIS=" + url}, "--prefix", prefix)
	if want := "redis://:xxxxx@" + m.Addr() + "/0"; env.redisURL != want {
		t.Errorf("serve with ZASYNC_REDIS: printed URL %q, want %q", env.redisURL, want)
	}
	env.stop()
	check("serve with ZASYNC_REDIS", env.stderr())

	// Malformed URLs, and a password the server refuses: one line, no password.
	for _, args := range [][]string{
		{"count", "pending", "--redis", "redis://:" + password + "@" + m.Addr() + "/x"},
		{"count", "pending", "--redis", "redis://:" + password + "%zz@" + m.Addr() + "/0"},
		{"count", "pending", "--redis", "redis://:" + password + "@host:port/0"},
		{"count", "pending", "--redis", "redis://:" + password + "@" + m.Addr() + "/0?password_typo=1"},
		{"put", "echo", "1", "--redis", "redis+cluster://:" + password + "@" + m.Addr() + "?addr=nope"},
		{"status", "--redis", "redis://h:1?master_name=m&password=" + password + "&bad=1"},
		{"count", "pending", "--redis", "redis://:wrong-" + password + "@" + m.Addr() + "/0"},
		{"serve", "--redis", "ftp://:" + password + "@" + m.Addr()},
	} {
		out, errOut, code := zasync(t, nil, args...)
		if code == 0 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("zasync %q: exit %d, stderr %q; want a failure in one line", args, code, errOut)
		}
		check("zasync "+strings.Join(args, " "), out+errOut)
		out, errOut, _ = zasync(t, []string{"ZASYNC_REDIS=" + args[len(args)-1]}, args[:len(args)-2]...)
		check("zasync "+strings.Join(args[:len(args)-2], " ")+" with ZASYNC_REDIS", out+errOut)
	}
}
