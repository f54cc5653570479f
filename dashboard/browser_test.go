package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/zasync/zasync/internal/browsertest"
	"github.com/zasync/zasync/internal/testredis"
	"github.com/zasync/zasync/persistence"
	"github.com/zasync/zasync/persistence/redisstore"
	"github.com/zasync/zasync/runtime"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

// installation is a process serving "work" and the dashboard of another process mounted under
// /ops/, on a shared Redis.
type installation struct {
	server, rt   *runtime.Runtime
	url          string
	addr, prefix string
	started      chan string
	next         chan struct{} // moves the "progress" handler on a step
}

func newInstallation(t *testing.T) *installation {
	t.Helper()
	addr, prefix := testredis.Shared(t, "dash")
	client := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		return c
	}
	in := &installation{started: make(chan string, 8), next: make(chan struct{}), addr: addr, prefix: prefix}
	var err error
	in.server, err = runtime.New(runtime.Config{Redis: client(), Prefix: prefix, UUID: "dash-server",
		Queues:       []runtime.QueueConfig{{Name: "work", Agents: []runtime.AgentConfig{{Name: "main", Size: 3}}}},
		PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.server.Close() })
	in.server.Handle("ok", func(context.Context, *runtime.Call) (any, error) { return "fine", nil })
	in.server.Handle("fail", func(ctx context.Context, _ *runtime.Call) (any, error) {
		if a, _ := runtime.Attempt(ctx); a > 1 {
			return "fixed", nil
		}
		return nil, errors.New("smtp down")
	})
	in.server.Handle("progress", func(ctx context.Context, _ *runtime.Call) (any, error) {
		for step := 1; ; step++ {
			if err := runtime.Annotate(ctx, "step", step); err != nil {
				return nil, err
			}
			select {
			case <-in.next:
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
	})
	in.server.Handle("block", func(ctx context.Context, _ *runtime.Call) (any, error) {
		j, _ := runtime.JobFrom(ctx)
		in.started <- j.ID()
		<-ctx.Done()
		return nil, context.Cause(ctx)
	})
	if err := in.server.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.server.Stop(context.Background()) })
	in.rt, err = runtime.New(runtime.Config{Redis: client(), Prefix: prefix, UUID: "dash"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.rt.Close() })
	mux := http.NewServeMux()
	mux.Handle("/ops/", http.StripPrefix("/ops", New(in.rt)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	in.url = srv.URL + "/ops/"
	return in
}

// until waits for cond, failing the test after 30 seconds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// In a real browser: the overview lists the queue, a queue is paused and resumed from it and
// Redis agrees, a failed job is found in the jobs page, opened and retried, a running job is
// cancelled from its page, and the dispatchers page shows the serving process. Each page is
// saved as a screenshot.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	in := newInstallation(t)
	ctx := browsertest.Start(t, 90*time.Second)
	bg := context.Background()
	q := in.rt.Queue("work")
	for range 3 {
		if _, err := q.Put(bg, runtime.NewCall("ok")); err != nil {
			t.Fatal(err)
		}
	}
	failed, err := q.Put(bg, runtime.NewCall("fail", "mail-1"), runtime.Retry(runtime.NeverRetry),
		runtime.Unique("welcome-mail", runtime.UniqueOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := failed.Wait(bg); err != nil || out.Failure == nil {
		t.Fatalf("the failing job: %+v %v", out, err)
	}
	if err := q.CreateQuota(bg, "db", 1); err != nil {
		t.Fatal(err)
	}
	blocked, err := q.Put(bg, runtime.NewCall("block"), runtime.Quotas("db"))
	if err != nil {
		t.Fatal(err)
	}
	<-in.started

	// Overview: pause, then resume, the queue.
	row := `#queues tr[data-queue="work"]`
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url), chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
		t.Fatalf("overview: %v", err)
	}
	// The chart of completions per minute has a bar for the four jobs that completed, the
	// failed one's part in red.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(row+" svg.chart rect")),
		chromedp.WaitVisible(chromedp.CSS(row+" svg.chart rect.failed"))); err != nil {
		t.Fatalf("the overview's throughput chart: %v", err)
	}
	browsertest.Screenshot(t, ctx, "overview")
	if said := browsertest.ClickAndConfirm(t, ctx, row+` button[data-action="pause"]`); said != "Queue work paused" {
		t.Fatalf("the page says %q after the pause", said)
	}
	until(t, "Redis to have the queue paused", func() bool { p, _ := in.rt.QueuePaused(bg, "work"); return p })
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(row+` button[data-action="resume"]`))); err != nil {
		t.Fatalf("the overview does not show the pause: %v", err)
	}
	browsertest.ClickAndConfirm(t, ctx, row+` button[data-action="resume"]`)
	until(t, "Redis to have the queue resumed", func() bool { p, _ := in.rt.QueuePaused(bg, "work"); return !p })

	// Jobs: the failed one, opened and retried.
	jobRow := `#jobs tr[data-job="` + failed.String() + `"]`
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/jobs?state=failed"), chromedp.WaitVisible(chromedp.CSS(jobRow))); err != nil {
		t.Fatalf("jobs page: %v", err)
	}
	browsertest.Screenshot(t, ctx, "jobs")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(jobRow+" a")), chromedp.WaitVisible(chromedp.CSS("#job"))); err != nil {
		t.Fatalf("job page: %v", err)
	}
	traceback, err := browsertest.Text(ctx, "#traceback")
	if err != nil {
		t.Fatalf("job page's traceback: %v", err)
	}
	if !strings.Contains(traceback, "smtp down") {
		t.Fatalf("the job page's traceback: %q, want the failure", traceback)
	}
	details, err := browsertest.Text(ctx, "#job")
	if err != nil || !strings.Contains(details, failed.String()) || !strings.Contains(details, "failed") || strings.Contains(details, "[object") {
		t.Fatalf("the job page's details: %q %v, want the job and its state as text", details, err)
	}
	if !strings.Contains(details, "unique key\nwelcome-mail") {
		t.Fatalf("the job page's details: %q, want its unique key", details)
	}
	browsertest.Screenshot(t, ctx, "job")
	if said := browsertest.ClickAndConfirm(t, ctx, `button[data-action="retry"]`); !strings.Contains(said, "1 earlier attempts kept") {
		t.Fatalf("the page says %q after the retry", said)
	}
	until(t, "the retried job to succeed", func() bool {
		rec, err := failed.Info(bg)
		return err == nil && rec.Status == runtime.StatusCompleted && rec.Failure == nil
	})
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#attempts"))); err != nil {
		t.Fatalf("the job page does not show the earlier attempt: %v", err)
	}

	// The queue's page shows the quota held by the running job.
	quota := `#quotas tr[data-quota="db"]`
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/queue/work"), chromedp.WaitVisible(chromedp.CSS(quota))); err != nil {
		t.Fatalf("queue page: %v", err)
	}
	if held, err := browsertest.Text(ctx, quota); err != nil || !strings.Contains(held, "1 of 1") || !strings.Contains(held, blocked.String()) {
		t.Fatalf("the quota's row: %q %v, want 1 of 1 held by %s", held, err, blocked)
	}
	browsertest.Screenshot(t, ctx, "queue")

	// A job found by its id alone.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#search"), failed.ID()+"\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.hash === "#/job/`+failed.String()+`" && document.querySelector("#job") !== null`)); err != nil {
		t.Fatalf("the search did not open the job: %v", err)
	}

	// Two more failures, selected on the jobs page and retried together.
	var more []*runtime.Job
	for _, arg := range []string{"mail-2", "mail-3"} {
		j, err := q.Put(bg, runtime.NewCall("fail", arg), runtime.Retry(runtime.NeverRetry))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := j.Wait(bg); err != nil || out.Failure == nil {
			t.Fatalf("the failing job: %+v %v", out, err)
		}
		more = append(more, j)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/jobs?state=failed"),
		chromedp.WaitVisible(chromedp.CSS(`#jobs tr[data-job="`+more[0].String()+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#jobs tr[data-job="`+more[1].String()+`"]`)),
		chromedp.Click(chromedp.CSS(`input[data-job="`+more[0].String()+`"]`)),
		chromedp.Click(chromedp.CSS(`input[data-job="`+more[1].String()+`"]`)),
	); err != nil {
		t.Fatalf("selecting failed jobs: %v", err)
	}
	if said := browsertest.ClickAndConfirm(t, ctx, `button[data-bulk="retry"]`); said != "Retry: 2 of 2 done" {
		t.Fatalf("the page says %q after the bulk retry", said)
	}
	for _, j := range more {
		until(t, "the bulk-retried job to succeed", func() bool {
			rec, err := j.Info(bg)
			return err == nil && rec.Status == runtime.StatusCompleted && rec.Failure == nil
		})
	}

	// A filter typed in the jobs page: the handler's glob keeps only its jobs. Typed once the
	// succeeded page is drawn (its tab active, the job listed). The page redraws its view
	// every two seconds unless a field has the focus, so a redraw that comes between finding
	// the field and typing into it replaces the field and the keys are lost: then the filter
	// is typed again.
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/jobs?state=succeeded")); err != nil {
		t.Fatalf("opening the succeeded jobs: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector(".tabs a.active")?.textContent === "succeeded" &&
		document.querySelector('#jobs tr[data-job="`+more[1].String()+`"]') !== null`)); err != nil {
		t.Fatalf("the succeeded jobs page was not drawn: %v", err)
	}
	for attempt := 1; ; attempt++ {
		if err := chromedp.Do(ctx,
			chromedp.Clear(chromedp.CSS(`#filters input[name="callable"]`)),
			chromedp.SendKeys(chromedp.CSS(`#filters input[name="callable"]`), "fa*"),
			chromedp.Click(chromedp.CSS(`#filters button[type="submit"]`))); err != nil {
			t.Fatalf("filtering the jobs page: %v", err)
		}
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.hash.includes("callable=fa")`, chromedp.WithPollingTimeout(10*time.Second)))
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatalf("the filter never reached the page's address after %d attempts: %v", attempt, err)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.hash.includes("callable=fa") && document.querySelectorAll("#jobs tbody tr").length === 3 &&
		[...document.querySelectorAll("#jobs tbody tr td:nth-child(3)")].every((td) => td.textContent.startsWith("fail("))`)); err != nil {
		n, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#jobs") ? document.querySelector("#jobs").textContent : "no table"`))
		t.Fatalf("the filtered jobs page does not list the three fail jobs alone: %v: %s", err, n)
	}

	// A running job's page follows its annotations as the handler writes them.
	prog, err := q.Put(bg, runtime.NewCall("progress"))
	if err != nil {
		t.Fatal(err)
	}
	shows := func(step string) string {
		return `document.querySelector("#annotations") !== null && document.querySelector("#annotations").textContent.includes('"step": ` + step + `')`
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/job/"+prog.String())); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](shows("1"))); err != nil {
		t.Fatalf("the running job's page does not show its first annotation: %v", err)
	}
	in.next <- struct{}{}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](shows("2"))); err != nil {
		t.Fatalf("the running job's page did not follow its annotation without a reload: %v", err)
	}

	// The running job, cancelled from its page.
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/job/"+blocked.String()), chromedp.WaitVisible(chromedp.CSS("#job"))); err != nil {
		t.Fatalf("running job's page: %v", err)
	}
	if said := browsertest.ClickAndConfirm(t, ctx, `button[data-action="cancel"]`); said != "Job cancelled (was active)" {
		t.Fatalf("the page says %q after the cancel", said)
	}
	until(t, "the cancelled job to complete", func() bool {
		rec, err := blocked.Info(bg)
		return err == nil && rec.Status == runtime.StatusCompleted && errors.Is(rec.Failure, runtime.ErrCancelled)
	})

	// A composite: its page lists its parts, and a part's page links back to it.
	comp, err := q.Put(bg, runtime.Serial(runtime.NewCall("ok"), runtime.Parallel(runtime.NewCall("ok"), runtime.NewCall("ok")),
		runtime.Postprocess(runtime.NewCall("ok"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := comp.Wait(bg); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/job/"+comp.String()), chromedp.WaitVisible(chromedp.CSS("#parts"))); err != nil {
		t.Fatalf("composite's page: %v", err)
	}
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#parts > tbody > tr[data-job]").length`))
	if err != nil || n != 3 {
		t.Fatalf("the composite's page lists %d parts (%v), want its two sub-jobs and its postprocess", n, err)
	}
	// The parallel part's own parts, as a branch of the tree, with their states.
	nested, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#parts tr.subparts table > tbody > tr[data-job]").length`))
	if err != nil || nested != 3 {
		t.Fatalf("the nested composite's branch lists %d jobs (%v), want its two parts and its collecting step", nested, err)
	}
	browsertest.Screenshot(t, ctx, "composite")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#parts tbody tr:first-child a"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`document.querySelector("#job") !== null && document.querySelector("#job").textContent.includes("part of`+comp.String()+`")`)); err != nil {
		t.Fatalf("a part's page does not link to its composite: %v", err)
	}

	// A run whose process lost the job without knowing commits late: the fence refuses it and
	// the job's page says so on that run.
	late := lateCommit(t, in)
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/job/"+late.String()), chromedp.WaitVisible(chromedp.CSS("#attempts .late"))); err != nil {
		t.Fatalf("the job page does not show the refused late commit: %v", err)
	}
	if text, err := browsertest.Text(ctx, "#attempts"); err != nil ||
		!strings.Contains(text, "ghost/main") || !strings.Contains(text, "interrupted") || !strings.Contains(text, "late commit refused") {
		t.Fatalf("the earlier attempts: %q %v, want ghost/main's run, interrupted, its late commit refused", text, err)
	}
	browsertest.Screenshot(t, ctx, "job-late-commit")

	// A job put from the queue's page, with options; a bad argument is refused in the page.
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/queue/work"), chromedp.WaitVisible(chromedp.CSS("#put-link")),
		chromedp.Click(chromedp.CSS("#put-link")), chromedp.WaitVisible(chromedp.CSS("#put"))); err != nil {
		t.Fatalf("the put page: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#put input[name="handler"]`), "ok"),
		chromedp.SendKeys(chromedp.CSS(`#put input[name="args"]`), `[1, "two"`),
		chromedp.Click(chromedp.CSS(`#put button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#flash.error"))); err != nil {
		t.Fatalf("a put with bad arguments: %v", err)
	}
	if text, err := browsertest.Text(ctx, "#flash"); err != nil || !strings.HasPrefix(text, "args: want a JSON array") {
		t.Fatalf("a put with bad arguments says %q (%v)", text, err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#put input[name="args"]`), "]"),
		chromedp.SendKeys(chromedp.CSS(`#put input[name="run_timeout_s"]`), "30"),
		chromedp.SendKeys(chromedp.CSS(`#put input[name="retry"]`), "NeverRetry"),
		chromedp.SendKeys(chromedp.CSS(`#put input[name="priority"]`), "7")); err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "put")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#put button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#job"))); err != nil {
		t.Fatalf("the put did not open its job's page: %v", err)
	}
	hash, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
	if err != nil {
		t.Fatal(err)
	}
	put := in.rt.Job(runtime.Ref{Queue: "work", ID: strings.TrimPrefix(hash, "#/job/work/")})
	if out, err := put.Wait(bg); err != nil || string(out.Result) != `"fine"` {
		t.Fatalf("the job put from the page (%s): %s %v", hash, out.Result, err)
	}
	if rec, err := put.Info(bg); err != nil || len(rec.Call.Args) != 2 || rec.Timeout != 30*time.Second || rec.RetryPolicy != runtime.NeverRetry.Name() || rec.Priority != 7 {
		t.Fatalf("the job put from the page was stored as %+v (%v)", rec, err)
	}

	// A put naming a unique key its job holds puts nothing, and says which job holds it.
	held, err := q.Put(bg, runtime.NewCall("block"), runtime.Unique("nightly", runtime.UniqueOpts{}), runtime.BeginIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/put/work"), chromedp.WaitVisible(chromedp.CSS("#put")),
		chromedp.SendKeys(chromedp.CSS(`#put input[name="handler"]`), "ok"),
		chromedp.SendKeys(chromedp.CSS(`#put input[name="unique_key"]`), "nightly"),
		chromedp.Click(chromedp.CSS(`#put button[type="submit"]`))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.querySelector("#flash").hidden && document.querySelector("#flash").textContent === "Nothing put: `+held.String()+` holds the key"`)); err != nil {
		text, _ := browsertest.Text(ctx, "#flash")
		t.Fatalf("a put of a held unique key says %q (%v)", text, err)
	}

	// Dispatchers.
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/dispatchers"),
		chromedp.WaitVisible(chromedp.CSS(`#dispatchers tr[data-dispatcher="dash-server"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events tr[data-kind="activated"][data-dispatcher="dash-server"]`))); err != nil {
		t.Fatalf("dispatchers page, with its history: %v", err)
	}
	browsertest.Screenshot(t, ctx, "dispatchers")
}

// lateCommit makes a job whose run was taken from its process, which then committed late: a
// dispatcher "ghost" of queue "late" (which nothing serves) claims and starts it through the
// store, is found gone (deactivated, its run interrupted), and commits with its old fence.
func lateCommit(t *testing.T, in *installation) *runtime.Job {
	t.Helper()
	bg := context.Background()
	st, err := redisstore.New(redis.NewClient(&redis.Options{Addr: in.addr}), redisstore.Options{Prefix: in.prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	j, err := in.rt.Queue("late").Put(bg, runtime.NewCall("ok"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := persistence.DispatcherConfig{PingInterval: time.Minute, PingDeathInterval: 2 * time.Minute,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}}
	if err := st.Register(bg, "late", "ghost", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Activate(bg, "late", "ghost"); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.Claim(bg, persistence.ClaimParams{Queue: "late", Dispatcher: "ghost", Agent: "main", Size: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("the ghost's claim: %v %v", claimed, err)
	}
	run, err := st.Start(bg, claimed[0].Fence())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Deactivate(bg, "late", "ghost"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(bg, run.Fence(), persistence.Outcome{Result: []byte(`"late"`), Complete: true}); !errors.Is(err, persistence.ErrReassigned) {
		t.Fatalf("the late commit: %v, want ErrReassigned", err)
	}
	return j
}

// The pages are served with a strict Content-Security-Policy, have no inline script, and are
// mountable under any prefix: the assets and the API are reached relative to the page.
func TestServedSafely(t *testing.T) {
	t.Parallel()
	in := newInstallation(t)
	res, err := http.Get(in.url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Security-Policy") != csp || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("index: %d, headers %v", res.StatusCode, res.Header)
	}
	for _, path := range []string{"assets/app.js", "assets/app.css", "api/v1/queues"} {
		res, err := http.Get(in.url + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: %d", path, res.StatusCode)
		}
	}
	index, err := assets.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "onclick=", "onload=", "style=", "http://", "https://"} {
		if strings.Contains(string(index), bad) {
			t.Errorf("index.html has %q: the CSP forbids inline code and the pages load nothing from elsewhere", bad)
		}
	}
}

// In a real browser: the schedules page lists a schedule a serving process declared, with
// the job of its last tick.
func TestSchedulesPageInBrowser(t *testing.T) {
	t.Parallel()
	in := newInstallation(t)
	if err := in.server.Every("beat", "* * * * * *", runtime.NewCall("ok"), runtime.EveryQueue("work")); err != nil {
		t.Fatal(err)
	}
	ctx := browsertest.Start(t, 90*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"#/schedules"),
		chromedp.WaitVisible(chromedp.CSS(`#schedules tr[data-schedule="work/beat"] a[href^="#/job/work/tick.beat."]`))); err != nil {
		t.Fatalf("schedules page: %v", err)
	}
	text, err := browsertest.Text(ctx, `#schedules tr[data-schedule="work/beat"]`)
	if err != nil || !strings.Contains(text, "* * * * * *") || !strings.Contains(text, "dash-server") {
		t.Fatalf("the schedule's row: %q %v", text, err)
	}
	browsertest.Screenshot(t, ctx, "schedules")
}
