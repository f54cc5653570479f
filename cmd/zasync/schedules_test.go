package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/runtime"
)

// --every reads NAME=SCHEDULE=[QUEUE:]HANDLER(ARGS), '=' in the schedule and ',' or ')' in
// the arguments included.
func TestParseEvery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, name, schedule, queue, call string
	}{
		{`beat=@every 1s=echo()`, "beat", "@every 1s", runtime.DefaultQueue, `echo()`},
		{`nightly=CRON_TZ=Europe/Paris 0 2 * * *=reports:build("a=b, c)", 7, {"k": [1]})`, "nightly",
			"CRON_TZ=Europe/Paris 0 2 * * *", "reports", `build("a=b, c)", 7, {"k":[1]})`},
	} {
		name, schedule, queue, call, err := parseEvery(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if name != tc.name || schedule != tc.schedule || queue != tc.queue || strings.ReplaceAll(call.String(), " ", "") != strings.ReplaceAll(tc.call, " ", "") {
			t.Errorf("%q: %q %q %q %s", tc.in, name, schedule, queue, call)
		}
	}
	for _, bad := range []string{``, `=@every 1s=echo()`, `beat`, `beat=@every 1s`, `beat=@every 1s=echo`, `beat=echo()`,
		`beat=@every 1s=q:()`, `beat=@every 1s=echo(nope)`} {
		if _, _, _, _, err := parseEvery(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// `zasync serve --every` ticks a schedule, and `zasync schedules` lists it with its last tick
// and the process declaring it; a bad --every is a one-line usage error.
func TestServeEveryAndSchedules(t *testing.T) {
	t.Parallel()
	addr, prefix := testredis.Addr(), testredis.Prefix("cmd-every")
	if addr == "" {
		addr = miniredis.RunT(t).Addr()
	} else {
		testredis.DeleteAtCleanup(t, addr, prefix)
	}
	url := "redis://" + addr + "/0"
	p := startServe(t, "--redis", url, "--prefix", prefix, "--builtin", "--every", `beat=* * * * * *=ticks:echo("x", 1)`)
	p.waitLine(regexp.MustCompile(`periodic job put`))
	out, errOut, code := zasync(t, nil, "schedules", "--redis", url, "--prefix", prefix)
	if code != 0 || !strings.Contains(out, "schedule beat in queue ticks: * * * * * *") ||
		!strings.Contains(out, "declared by "+p.uuid) || !strings.Contains(out, "(job ticks/tick.beat.") {
		t.Errorf("schedules: status %d\n%s%s", code, out, errOut)
	}
	out, _, code = zasync(t, nil, "schedules", "--json", "--redis", url, "--prefix", prefix)
	var views []scheduleView
	if err := json.Unmarshal([]byte(out), &views); err != nil || code != 0 || len(views) != 1 || views[0].Handler != "echo" ||
		views[0].NextTick == nil || len(views[0].Declarers) != 1 {
		t.Errorf("schedules --json: %v, status %d\n%s", err, code, out)
	}
	p.stop()
	out, _, _ = zasync(t, nil, "schedules", "--redis", url, "--prefix", prefix)
	if !strings.Contains(out, "no process declares it") {
		t.Errorf("after the process stopped:\n%s", out)
	}

	for _, bad := range [][]string{
		{"--every", "beat=* * *=echo()"},
		{"--every", "beat=@every 1s=echo(]"},
		{"--every", "beat=@every 1s=echo()", "--every-missed", "sometimes"},
	} {
		_, errOut, code := zasync(t, nil, append([]string{"serve", "--builtin", "--redis", url, "--prefix", prefix}, bad...)...)
		if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("serve %v: status %d, stderr %q; want 2 and one line", bad, code, errOut)
		}
	}
}
