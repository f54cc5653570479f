package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// put --priority stores the job's priority; one out of range is one line, exit status 2, and
// no job.
func TestPutPriority(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	url := "redis://" + m.Addr()
	for _, bad := range []string{"0", "10", "-3"} {
		out, errOut, code := zasync(t, nil, "put", "--redis", url, "--priority", bad, "echo", "1")
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--priority "+bad+": want 1 to 9") {
			t.Errorf("put --priority %s: exit %d, stdout %q, stderr %q; want exit 2 and one line", bad, code, out, errOut)
		}
	}
	if keys := m.Keys(); slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, ":job:") }) {
		t.Fatalf("refused puts wrote jobs: %v", keys)
	}
	out, errOut, code := zasync(t, nil, "put", "--redis", url, "echo", "1", "--priority", "9")
	if code != 0 {
		t.Fatalf("put --priority 9: exit %d, %s", code, errOut)
	}
	_, id, _ := strings.Cut(strings.TrimSpace(out), "/")
	if got := m.HGet("zasync:{default}:job:"+id, "priority"); got != "9" {
		t.Fatalf("stored priority %q, want 9 (keys %v)", got, m.Keys())
	}
	if !m.Exists("zasync:{default}:pending:p9") {
		t.Fatalf("no queue of priority 9: %v", m.Keys())
	}
}
