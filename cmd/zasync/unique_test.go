package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// put --unique makes one job per key: a second put prints the job that holds the key, says so
// on stderr (and in its JSON), and puts nothing; bad unique flags are one-line usage errors.
func TestPutUnique(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	url := "redis://" + m.Addr()
	first, errOut, code := zasync(t, nil, "put", "--redis", url, "work", "1", "--unique", "k")
	if code != 0 || errOut != "" {
		t.Fatalf("first put: exit %d, stderr %q", code, errOut)
	}
	second, errOut, code := zasync(t, nil, "put", "--redis", url, "work", "2", "--unique", "k", "--debounce")
	if code != 0 || second != first || !strings.Contains(errOut, "debounced") {
		t.Fatalf("second put: exit %d, stdout %q stderr %q; want %q, debounced", code, second, errOut, first)
	}
	out, _, code := zasync(t, nil, "put", "--redis", url, "work", "--unique", "k", "--json")
	var got struct {
		Job       string `json:"job"`
		Duplicate bool   `json:"duplicate"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || !got.Duplicate || got.Job+"\n" != first {
		t.Fatalf("put --json: exit %d, %q; want the first job as a duplicate", code, out)
	}
	for _, args := range [][]string{
		{"--unique", ""},
		{"--debounce"},
		{"--unique", "k", "--unique-states", "running"},
		{"--unique", "k", "--unique-completed", "-1s"},
		{"--unique", strings.Repeat("k", 513)},
	} {
		out, errOut, code := zasync(t, nil, append([]string{"put", "--redis", url, "work"}, args...)...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("put %v: exit %d, stdout %q, stderr %q; want one usage line", args, code, out, errOut)
		}
	}
	jobs := slices.DeleteFunc(m.Keys(), func(k string) bool { return !strings.Contains(k, ":job:") })
	if len(jobs) != 1 {
		t.Fatalf("jobs %v, want the first alone", jobs)
	}
}
