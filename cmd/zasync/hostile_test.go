package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/runtime"
)

// hostileText would drive a terminal shown raw: a newline, a title change, a colour, a C1
// control sequence introducer, DEL and a right-to-left override.
const hostileText = "first line\nsecond line \x1b]0;pwned\x07 \x1b[31mred \u009b32mgreen \x7f \u202egnp.exe"

// hostileWorld is a miniredis holding a job that failed with hostileText as its message and
// one that succeeded with it as its result.
type hostileWorld struct {
	common       []string // --redis URL --prefix P
	failed, text *runtime.Job
}

func newHostileWorld(t *testing.T) *hostileWorld {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	prefix := testName("zasynctest-hostile-")
	rt, err := runtime.New(runtime.Config{Redis: c, Prefix: prefix, UUID: testName("d-hostile-"), PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Stop(context.Background()); rt.Close() })
	rt.Handle("hostile", runtime.Func0(func(context.Context) (string, error) { return "", errors.New(hostileText) }))
	rt.Handle("text", runtime.Func0(func(context.Context) (string, error) { return hostileText, nil }))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w := &hostileWorld{common: []string{"--redis", "redis://" + m.Addr() + "/0", "--prefix", prefix}}
	for _, j := range []struct {
		dst     **runtime.Job
		handler string
	}{{&w.failed, "hostile"}, {&w.text, "text"}} {
		job, err := rt.Queue(runtime.DefaultQueue).Put(ctx, runtime.NewCall(j.handler))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := job.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		*j.dst = job
	}
	return w
}

// TestErrorsWhole: an error is one line on stderr, but the whole of it: a newline in a
// handler's or a queue's name, or in a failure's message, is escaped, not where the
// message stops.
func TestErrorsWhole(t *testing.T) {
	t.Parallel()
	w := newHostileWorld(t)
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"put", "sum\nx", "1"}, 2, []string{`put "sum\nx" into "default"`, "has control characters"}},
		{[]string{"put", "--queue", "q\nx", "echo", "1"}, 2, []string{`put "echo" into "q\nx"`, "only letters, digits"}},
		{[]string{"wait", w.failed.String()}, 1, []string{`first line\nsecond line \u001b]0;pwned\u0007 \u001b[31mred \u009b32mgreen \u007f \u202egnp.exe`}},
		{[]string{"traceback", w.text.String()}, 1, []string{"has no failure (it is completed and succeeded)"}},
	} {
		args := append(tc.args, w.common...)
		out, errOut, code := zasync(t, nil, args...)
		if code != tc.code || strings.Count(errOut, "\n") != 1 || strings.ContainsAny(errOut, "\x1b\x07\x7f\u009b\u202e") {
			t.Errorf("zasync %q: exit %d, stdout %q, stderr %q; want exit %d and one line, escaped", args, code, out, errOut, tc.code)
		}
		for _, want := range tc.want {
			if !strings.Contains(errOut, want) {
				t.Errorf("zasync %q: stderr %q, want %q in it", args, errOut, want)
			}
		}
	}
}

// TestEscapingWriter: text written in pieces, characters split between them, is escaped as
// if written whole; plain text and non-ASCII letters pass unchanged.
func TestEscapingWriter(t *testing.T) {
	t.Parallel()
	text := "déjà vu ✓\t" + hostileText + "\xff end\n"
	want := "déjà vu ✓\tfirst line\nsecond line \\u001b]0;pwned\\u0007 \\u001b[31mred \\u009b32mgreen \\u007f \\u202egnp.exe\\xff end\n"
	if got := escapeText(text, true); got != want {
		t.Errorf("escapeText = %q, want %q", got, want)
	}
	var b strings.Builder
	w := &escapingWriter{w: &b}
	for i := range len(text) {
		if n, err := w.Write([]byte{text[i]}); n != 1 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	w.flush()
	if b.String() != want {
		t.Errorf("written a byte at a time: %q, want %q", b.String(), want)
	}
	b.Reset()
	w.Write([]byte("cut \xe2\x9c"))
	w.flush()
	if b.String() != `cut \xe2\x9c` {
		t.Errorf("a character cut at the end: %q, want it escaped byte by byte", b.String())
	}
}
