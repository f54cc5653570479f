package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/zasync/zasync/internal/browsertest"
	"github.com/zasync/zasync/internal/testredis"
)

// dashboardLine is the line `zasync dashboard` prints once it listens.
var dashboardLine = regexp.MustCompile(`zasync dashboard: dashboard at (http://\S+/dashboard/), API at `)

// Two `zasync serve` processes share a queue and `zasync dashboard` shows them; the one
// running a job is killed with SIGKILL: in a real browser its row turns from alive to stopped
// with the time it was found dead, its history says so with the job it handed on, and the job
// moves to the other process, whose page the dashboard shows it on.
func TestDashboardSeesADispatcherDie(t *testing.T) {
	t.Parallel()
	addr, prefix := testredis.Shared(t, "dash")
	url := "redis://" + addr
	common := []string{"--redis", url, "--prefix", prefix}
	serve := func(uuid string) *serveProc {
		return startServe(t, append([]string{"--builtin", "--uuid", uuid, "--agent", "main:1", "--poll-interval", "100ms",
			"--ping-interval", "200ms", "--ping-death-interval", "2s"}, common...)...)
	}
	procs := map[string]*serveProc{"b-" + prefix: serve("b-" + prefix), "d-" + prefix: serve("d-" + prefix)}
	dash := launchCommand(t, nil, "dashboard", append([]string{"--listen", "127.0.0.1:0"}, common...)...)
	page := dash.waitLine(dashboardLine)[1]
	ctx := browsertest.Start(t, 2*time.Minute)

	out, errOut, code := zasync(t, nil, append([]string{"put", "sleep", "3600"}, common...)...)
	if code != 0 {
		t.Fatalf("put sleep: exit %d, stderr %q", code, errOut)
	}
	ref := strings.TrimSpace(out)
	holder := func() string {
		out, _, _ := zasync(t, nil, append([]string{"job", ref, "--json"}, common...)...)
		var s struct{ Status, Dispatcher string }
		json.Unmarshal([]byte(out), &s)
		if s.Status != "active" {
			return ""
		}
		return s.Dispatcher
	}
	var victim string
	pollUntil(t, "the sleep to run", func() (bool, string) { victim = holder(); return victim != "", victim })
	var survivor string
	for uuid := range procs {
		if uuid != victim {
			survivor = uuid
		}
	}

	row := `#dispatchers tr[data-dispatcher="` + victim + `"]`
	state := `document.querySelector('` + row + ` td.state').textContent`
	if err := chromedp.Do(ctx, chromedp.Navigate(page+"#/dispatchers"), chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
		t.Fatalf("dispatchers page: %v", err)
	}
	if s, err := chromedp.Run(ctx, chromedp.Evaluate[string](state)); err != nil || s != "alive" {
		t.Fatalf("the running dispatcher shows %q (%v), want alive", s, err)
	}
	procs[victim].cmd.Process.Kill() // SIGKILL: no clean stop, its job stays held
	<-procs[victim].exited
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](state+` === "stopped"`)); err != nil {
		t.Fatalf("the killed dispatcher never showed stopped: %v", err)
	}
	found, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('`+row+` td:nth-child(5)').textContent`))
	if err != nil || !strings.HasPrefix(found, time.Now().UTC().Format("2006-")) {
		t.Fatalf("when the dead dispatcher was found dead: %q %v", found, err)
	}
	// The history says it was found dead, with the job it held handed on.
	death := `#events tr[data-kind="found_dead"][data-dispatcher="` + victim + `"]`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('`+death+`') !== null`)); err != nil {
		t.Fatalf("the history does not show the death: %v", err)
	}
	if jobs, err := browsertest.Text(ctx, death+" td.num"); err != nil || jobs != "1" {
		t.Fatalf("jobs handed on at the death: %q %v, want 1", jobs, err)
	}
	browsertest.Screenshot(t, ctx, "dispatcher-dead")

	pollUntil(t, "the job to move to the survivor", func() (bool, string) { h := holder(); return h == survivor, h })
	agent := `document.querySelector('#job').textContent.includes("` + survivor + `/main")`
	if err := chromedp.Do(ctx, chromedp.Navigate(page+"#/job/"+ref), chromedp.WaitVisible(chromedp.CSS("#job"))); err != nil {
		t.Fatalf("job page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](agent)); err != nil {
		t.Fatalf("the job page does not show the job held by the survivor: %v", err)
	}
	// Its run on the dead process is kept as an earlier run, interrupted.
	interrupted := `document.querySelector('#attempts') !== null && document.querySelector('#attempts').textContent.includes("` + victim + `/main") &&
		document.querySelector('#attempts').textContent.includes("interrupted")`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](interrupted)); err != nil {
		t.Fatalf("the job page does not show the interrupted run: %v", err)
	}
	browsertest.Screenshot(t, ctx, "job-moved")
	procs[survivor].stop()
}
