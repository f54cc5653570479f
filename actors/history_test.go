package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zasync/zasync/internal/clock"
	"github.com/zasync/zasync/messages"
	"github.com/zasync/zasync/persistence"
)

// testHistory returns a history on a fake clock, polling every second.
func testHistory() (*history, *clock.Fake) {
	c := clock.NewFake(time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC))
	return newHistory("u1", time.Second, c.Now), c
}

// claimJob records a claim of job id by q/main in job actor "w-"+id.
func claimJob(h *history, q, id string) string {
	w := "w-" + id
	h.claimed(q, "main", &persistence.Job{Ref: persistence.Ref{Queue: q, ID: id}, Call: callTo("work", 1),
		Owner: persistence.Owner{Dispatcher: "u1", Agent: "main"}, Attempt: 1}, w, h.now())
	return w
}

// onePoll is a poll of queue q with agent main of size 3 holding held jobs.
func onePoll(q string, held int) map[string]messages.PolledQueue {
	return map[string]messages.PolledQueue{q: {Agents: map[string]messages.PolledAgent{"main": {Size: 3, Len: held}}}}
}

func TestHistoryKeepsTheNewestPolls(t *testing.T) {
	t.Parallel()
	h, c := testHistory()
	for range PollHistorySize + 50 {
		c.Advance(time.Second)
		h.recordPoll(onePoll("q", 0))
	}
	polls := h.pollsIn(time.Time{}, time.Time{}, 0)
	if len(polls) != PollHistorySize {
		t.Fatalf("%d polls kept, want %d", len(polls), PollHistorySize)
	}
	for i, p := range polls { // newest first, consecutive ids, times going back
		if want := int64(PollHistorySize + 50 - i); p.ID != want {
			t.Fatalf("poll %d has id %d, want %d", i, p.ID, want)
		}
		if i > 0 && !p.Time.Before(polls[i-1].Time) {
			t.Fatalf("poll %d at %s is not older than the one before (%s)", i, p.Time, polls[i-1].Time)
		}
	}
	for id, want := range map[int64]bool{0: false, 50: false, 51: true, 450: true, 451: false} {
		if _, ok := h.poll(id); ok != want {
			t.Errorf("PollInfo(%d) found %v, want %v", id, ok, want)
		}
	}
	if got := h.pollsIn(time.Time{}, time.Time{}, 3); len(got) != 3 || got[0].ID != 450 {
		t.Fatalf("the 3 newest polls: %d of them, first %d", len(got), got[0].ID)
	}
	// A window of time: [poll 100's time, poll 110's time) holds polls 100 to 109.
	p100, _ := h.poll(100)
	p110, _ := h.poll(110)
	got := h.pollsIn(p100.Time, p110.Time, 0)
	if len(got) != 10 || got[0].ID != 109 || got[9].ID != 100 {
		t.Fatalf("polls in a window: %d, want 109 down to 100", len(got))
	}
}

func TestHistoryKeepsTheNewestJobs(t *testing.T) {
	t.Parallel()
	h, c := testHistory()
	long := claimJob(h, "q", "long") // still running when it leaves the ring
	for i := range JobHistorySize + 50 {
		c.Advance(time.Millisecond)
		w := claimJob(h, "q", fmt.Sprint("j", i))
		h.ended(w, Finished.String(), false, "42", c.Now())
	}
	for i := range JobHistorySize + 50 {
		_, ok := h.jobInfo(fmt.Sprint("j", i))
		if want := i >= 50; ok != want {
			t.Fatalf("job j%d remembered: %v, want %v", i, ok, want)
		}
	}
	if info, ok := h.jobInfo("long"); !ok || !info.Completed.IsZero() {
		t.Fatalf("a running job out of the ring: %+v %v, want it described while it runs", info, ok)
	}
	if got := h.activeJobIDs("", ""); !slices.Equal(got, []string{"long"}) {
		t.Fatalf("active jobs %v, want [long]", got)
	}
	h.ended(long, Finished.String(), false, "1", c.Now())
	if _, ok := h.jobInfo("long"); ok {
		t.Fatalf("a run out of the ring is still described after its end")
	}
	if len(h.running) != 0 || len(h.byID) != JobHistorySize {
		t.Fatalf("%d runs and %d ids indexed, want 0 and %d: memory must stay flat", len(h.running), len(h.byID), JobHistorySize)
	}
}

// A job claimed twice by one agent (taken away, then claimed back) is described by its newest
// run, and the end of the older run does not change it.
func TestHistoryJobClaimedTwice(t *testing.T) {
	t.Parallel()
	h, c := testHistory()
	first := claimJob(h, "q", "j")
	c.Advance(time.Second)
	second := "w-j-again"
	h.claimed("q", "main", &persistence.Job{Ref: persistence.Ref{Queue: "q", ID: "j"}, Call: callTo("work", 1), Attempt: 3}, second, h.now())
	h.ended(first, Reassigned.String(), false, "reassigned", c.Now())
	info, _ := h.jobInfo("j")
	if info.Worker != second || !info.Completed.IsZero() || info.Reassigned {
		t.Fatalf("after the first run's end: %+v, want the second run, going on", info)
	}
	if got := h.activeJobIDs("q", "main"); !slices.Equal(got, []string{"j"}) {
		t.Fatalf("active %v, want [j] once", got)
	}
}

func TestHistoryStatistics(t *testing.T) {
	t.Parallel()
	h, c := testHistory()
	t0 := c.Now()
	type run struct {
		id, queue string
		took      time.Duration // 0: still running
		ending    Ending
		failed    bool
	}
	runs := []run{
		{"s3", "q", 3 * time.Second, Finished, false},
		{"s1", "q", 1 * time.Second, Finished, false},
		{"s1b", "q", 1 * time.Second, Finished, false}, // as short as s1, claimed later
		{"s5", "q", 5 * time.Second, Finished, false},
		{"w2", "q", 2 * time.Second, Waiting, false}, // handed over to an inner job: a success
		{"f2", "q", 2 * time.Second, Finished, true},
		{"r4", "q", 4 * time.Second, Reassigned, false}, // cut short: not a success
		{"a", "q", 0, 0, false},
		{"other", "q2", 9 * time.Second, Finished, false},
	}
	var claims []string
	for _, r := range runs {
		c.Advance(time.Second)
		w := "w-" + r.id
		h.claimed(r.queue, "main", &persistence.Job{Ref: persistence.Ref{Queue: r.queue, ID: r.id}}, w, h.now())
		claims = append(claims, w)
	}
	for i, r := range runs {
		if r.took > 0 {
			info, _ := h.jobInfo(r.id)
			h.ended(claims[i], r.ending.String(), r.failed, "", info.Started.Add(r.took))
		}
	}
	c.Advance(10 * time.Second) // "a", claimed 1s before the last claim, has run 11s

	s := h.statistics(time.Time{}, time.Time{}, "q", "")
	want := Statistics{
		Started: 8, Successful: 5, Failed: 2,
		ShortestSuccessful: JobDuration{"s1", time.Second}, LongestSuccessful: JobDuration{"s5", 5 * time.Second},
		ShortestFailed: JobDuration{"f2", 2 * time.Second}, LongestFailed: JobDuration{"r4", 4 * time.Second},
		ShortestActive: JobDuration{"a", 11 * time.Second}, LongestActive: JobDuration{"a", 11 * time.Second},
		Start: t0.Add(time.Second), End: c.Now(),
	}
	if s != want {
		t.Fatalf("statistics of q:\n got %+v\nwant %+v", s, want)
	}
	if all := h.statistics(time.Time{}, time.Time{}, "", "main"); all.Started != 9 || all.LongestSuccessful.ID != "other" {
		t.Fatalf("statistics of every queue: %+v", all)
	}
	if none := h.statistics(time.Time{}, time.Time{}, "q", "other-agent"); none.Started != 0 || none.ShortestSuccessful.ID != "" {
		t.Fatalf("statistics of an agent with no runs: %+v", none)
	}
	// A window of claim times: the 2nd to the 4th claims, [t0+2s, t0+5s).
	w := h.statistics(t0.Add(2*time.Second), t0.Add(5*time.Second), "", "")
	if w.Started != 3 || w.Successful != 3 || w.ShortestSuccessful.ID != "s1" || w.LongestSuccessful.ID != "s5" ||
		!w.Start.Equal(t0.Add(2*time.Second)) || !w.End.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("statistics of a window: %+v", w)
	}
}

// Jobs that a poll lists as claimed but whose runs rolled off the history count as unknown.
func TestHistoryStatisticsUnknown(t *testing.T) {
	t.Parallel()
	h, c := testHistory()
	for i := range 3 {
		w := claimJob(h, "q", fmt.Sprint("old", i))
		h.ended(w, Finished.String(), false, "1", c.Now())
	}
	c.Advance(time.Second)
	h.recordPoll(onePoll("q", 0)) // lists old0..old2 as new
	for i := range JobHistorySize {
		c.Advance(time.Millisecond)
		w := claimJob(h, "q", fmt.Sprint("j", i))
		h.ended(w, Finished.String(), false, "1", c.Now())
	}
	s := h.statistics(time.Time{}, time.Time{}, "", "")
	if s.Unknown != 3 || s.Started != JobHistorySize+3 || s.Successful != JobHistorySize {
		t.Fatalf("statistics: %+v, want 3 unknown of %d started", s, JobHistorySize+3)
	}
}

func TestHistoryStatus(t *testing.T) {
	t.Parallel()
	h, c := testHistory()
	step := func(what string, want DispatcherStatus) StatusInfo {
		t.Helper()
		st := h.status()
		if st.Status != want || st.UUID != "u1" || st.PollInterval != time.Second {
			t.Fatalf("%s: %+v, want %s", what, st, want)
		}
		return st
	}
	step("at start", DispatcherStarting)
	c.Advance(time.Second)
	step("first poll due since a poll interval", DispatcherStarting)
	c.Advance(time.Millisecond)
	step("first poll overdue by more than an interval", DispatcherStuck)
	h.recordPoll(onePoll("q", 0))
	if st := step("polled", DispatcherRunning); st.SinceLastPoll != 0 || st.Uptime != 1001*time.Millisecond {
		t.Fatalf("just polled: %+v", st)
	}
	c.Advance(1500 * time.Millisecond)
	step("next poll late by half an interval", DispatcherRunning)
	c.Advance(600 * time.Millisecond)
	if st := step("next poll late by more than an interval", DispatcherStuck); st.SinceLastPoll != 2100*time.Millisecond {
		t.Fatalf("since last poll %s, want 2.1s", st.SinceLastPoll)
	}
	h.recordPoll(onePoll("q", 0))
	step("polled again", DispatcherRunning)
	h.stop()
	if st := step("stopped", DispatcherStopped); st.Uptime != 0 {
		t.Fatalf("a stopped dispatcher has uptime %s", st.Uptime)
	}
}

// A poll reports each agent's new jobs since the previous poll, its running jobs and its
// last claim error; a job is claimed "after" the poll before it.
func TestHistoryPollContents(t *testing.T) {
	t.Parallel()
	h, c := testHistory()
	a := claimJob(h, "q", "a")
	claimJob(h, "q", "b")
	h.claimError("q", "main", "claim: store unavailable")
	c.Advance(time.Second)
	id := h.recordPoll(onePoll("q", 2))
	h.ended(a, Finished.String(), false, "1", c.Now())
	h.claimError("q", "main", "")
	claimJob(h, "q", "c")
	p, _ := h.poll(id)
	got := p.Queues["q"].Agents["main"]
	if !slices.Equal(got.NewJobs, []string{"a", "b"}) || !slices.Equal(got.ActiveJobs, []string{"a", "b"}) ||
		got.Error != "claim: store unavailable" || got.Size != 3 || got.Len != 2 {
		t.Fatalf("first poll: %+v", got)
	}
	if info, _ := h.jobInfo("c"); info.PollID != id {
		t.Fatalf("c claimed after poll %d has poll id %d", id, info.PollID)
	}
	c.Advance(time.Second)
	p2, _ := h.poll(h.recordPoll(onePoll("q", 2)))
	got = p2.Queues["q"].Agents["main"]
	if !slices.Equal(got.NewJobs, []string{"c"}) || !slices.Equal(got.ActiveJobs, []string{"b", "c"}) || got.Error != "" {
		t.Fatalf("second poll: %+v", got)
	}
	// What a reader gets is a copy.
	got.NewJobs[0] = "changed"
	p2.Queues["q2"] = QueuePoll{}
	if again, _ := h.poll(p2.ID); again.Queues["q"].Agents["main"].NewJobs[0] != "c" || len(again.Queues) != 1 {
		t.Fatalf("a reader changed the history: %+v", again)
	}
}

// zc.async's rule: a run not ended, claimed before the latest poll, that this poll does not
// list for its agent (its queue was unavailable) has lost its job.
func TestHistoryReassignedByPoll(t *testing.T) {
	t.Parallel()
	h, _ := testHistory()
	h.recordPoll(onePoll("q", 0))
	claimJob(h, "q", "j")
	if info, _ := h.jobInfo("j"); info.Reassigned {
		t.Fatal("reassigned before any poll after its claim")
	}
	h.recordPoll(onePoll("q", 1))
	if info, _ := h.jobInfo("j"); info.Reassigned || info.PollID != 1 {
		t.Fatalf("listed as active: %+v, want not reassigned, poll id 1", info)
	}
	h.recordPoll(map[string]messages.PolledQueue{"q": {Unavailable: true}})
	if info, _ := h.jobInfo("j"); !info.Reassigned {
		t.Fatal("its queue unavailable at the latest poll, the job does not read as reassigned")
	}
	// The run's end as reassigned sets the flag for good.
	h.ended("w-j", Reassigned.String(), false, "", time.Now())
	h.recordPoll(onePoll("q", 0))
	if info, _ := h.jobInfo("j"); !info.Reassigned || info.Ending != "reassigned" {
		t.Fatalf("after a reassigned ending: %+v", info)
	}
}

// lost tells a job taken from a run from one whose run just ended (completed, rescheduled).
func TestHistoryLost(t *testing.T) {
	t.Parallel()
	me := persistence.Owner{Dispatcher: "u1", Agent: "main"}
	run := persistence.Fence{Ref: persistence.Ref{Queue: "q", ID: "j"}, Owner: me, Attempt: 2}
	for _, tc := range []struct {
		name string
		job  *persistence.Job
		want bool
	}{
		{"gone", nil, true},
		{"completed by this run", &persistence.Job{Status: persistence.StatusCompleted, Owner: me, Attempt: 2}, false},
		{"rescheduled by this run", &persistence.Job{Status: persistence.StatusPending, Attempt: 2}, false},
		{"cleaned while ACTIVE", &persistence.Job{Status: persistence.StatusActive, Attempt: 2}, true},
		{"cleaned in CALLBACKS", &persistence.Job{Status: persistence.StatusCallbacks, Attempt: 2}, true},
		{"claimed by another agent", &persistence.Job{Status: persistence.StatusAssigned, Owner: persistence.Owner{Dispatcher: "u2", Agent: "main"}, Attempt: 3}, true},
		{"claimed back by this agent", &persistence.Job{Status: persistence.StatusActive, Owner: me, Attempt: 3}, true},
		{"adopted, then rescheduled", &persistence.Job{Status: persistence.StatusPending, Attempt: 3}, true},
	} {
		if got := lost(tc.job, run); got != tc.want {
			t.Errorf("%s: lost %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHistoryRunText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", persistence.MaxFailureText+5)
	for _, tc := range []struct {
		name       string
		r          Result
		failed     bool
		prefix     string
		truncated  bool
		wantLength int // in characters, 0: not checked
	}{
		{"success", Result{Ending: Finished, Job: &persistence.Job{Result: []byte("42")}}, false, "42", false, 2},
		{"failure with its stack", Result{Ending: Finished, Job: &persistence.Job{Failure: &persistence.Failure{Type: "PanicError", Message: "panic: boom", Stack: "goroutine 1"}}},
			true, "PanicError: panic: boom\ngoroutine 1", false, 0},
		{"long failure", Result{Ending: Finished, Job: &persistence.Job{Failure: &persistence.Failure{Type: "E", Message: long}}},
			true, "E: é", true, persistence.MaxFailureText + utf8.RuneCountInString(persistence.TruncationMarker)},
		{"reassigned", Result{Ending: Reassigned, Err: persistence.ErrReassigned}, false, persistence.ErrReassigned.Error(), false, 0},
		{"store failure", Result{Ending: Failed, Err: errors.New("down")}, true, "down", false, 0},
		{"interrupted", Result{Ending: Interrupted}, false, "", false, 0},
	} {
		failed, text := runText(tc.r)
		if failed != tc.failed || !strings.HasPrefix(text, tc.prefix) || strings.HasSuffix(text, persistence.TruncationMarker) != tc.truncated ||
			(tc.wantLength > 0 && utf8.RuneCountInString(text) != tc.wantLength) {
			t.Errorf("%s: %v %.60q (%d characters)", tc.name, failed, text, utf8.RuneCountInString(text))
		}
	}
}

// Scenario 51: after a run, JobInfo gives the agent, queue, result, failed false, not
// reassigned, and its times; a failed job gives failed true and the traceback as result.
func TestNodeJobInfo(t *testing.T) {
	f := newExecFixture(t)
	f.h["add"] = func(_ context.Context, c *persistence.Call) (any, error) { return 42, nil }
	f.h["boom"] = func(context.Context, *persistence.Call) (any, error) { panic("boom") }
	n := f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
	defer f.stopNode(n)
	sub := f.completions()
	ok := f.putSpec(persistence.JobSpec{Call: callTo("add", 40, 2)})
	bad := f.put("boom")
	f.waitDone(sub, ok.ID, bad.ID)
	var good, failed JobInfo
	f.eventually("both runs recorded as ended", func() bool {
		good, _ = n.JobInfo(ok.ID)
		failed, _ = n.JobInfo(bad.ID)
		return !good.Completed.IsZero() && !failed.Completed.IsZero()
	})
	if good.ID != ok.ID || good.Agent != "main" || good.Queue != "q" || good.Result != "42" || good.Failed || good.Reassigned ||
		good.Ending != "finished" || good.Call != "add(40, 2)" || len(good.QuotaNames) != 0 || good.Worker == "" ||
		good.PollID < 1 || good.Started.IsZero() || good.Completed.Before(good.Started) {
		t.Fatalf("JobInfo of a success: %+v", good)
	}
	if !failed.Failed || !strings.HasPrefix(failed.Result, "PanicError: panic: boom\n") || !strings.Contains(failed.Result, "goroutine") ||
		failed.Reassigned || failed.Ending != "finished" {
		t.Fatalf("JobInfo of a failure: %+v", failed)
	}
	if _, found := n.JobInfo("no-such-job"); found {
		t.Fatal("JobInfo of a job never run here")
	}
	s := n.Statistics(time.Time{}, time.Time{}, "", "")
	if s.Started != 2 || s.Successful != 1 || s.Failed != 1 || s.LongestSuccessful.ID != ok.ID || s.LongestFailed.ID != bad.ID {
		t.Fatalf("statistics: %+v", s)
	}
}

// ActiveJobIDs lists what runs in job actors now: a job blocked in its handler, and nothing
// once it has finished.
func TestNodeActiveJobIDs(t *testing.T) {
	f := newExecFixture(t)
	started, release := make(chan struct{}), make(chan struct{})
	f.h["block"] = func(context.Context, *persistence.Call) (any, error) {
		close(started)
		<-release
		return 1, nil
	}
	n := f.startNode(f.nodeOptions("n1", 3, 50*time.Millisecond))
	defer f.stopNode(n)
	sub := f.completions()
	j := f.put("block")
	<-started
	// An agent starts a run before it writes the run into its history: the handler may be
	// running a moment before the job is listed.
	f.eventually("the job listed active", func() bool { return len(n.ActiveJobIDs("", "")) == 1 })
	for _, tc := range []struct {
		queue, agent string
		want         []string
	}{{"", "", []string{j.ID}}, {"q", "main", []string{j.ID}}, {"q", "", []string{j.ID}}, {"other", "", nil}, {"q", "other", nil}} {
		if got := n.ActiveJobIDs(tc.queue, tc.agent); !slices.Equal(got, tc.want) || got == nil {
			t.Fatalf("ActiveJobIDs(%q, %q) = %#v, want %v", tc.queue, tc.agent, got, tc.want)
		}
	}
	if info, _ := n.JobInfo(j.ID); !info.Completed.IsZero() || info.Ending != "" || info.Started.IsZero() {
		t.Fatalf("JobInfo of a running job: %+v", info)
	}
	close(release)
	f.waitDone(sub, j.ID)
	f.eventually("no active job", func() bool { return len(n.ActiveJobIDs("", "")) == 0 })
}

// Seed 000 at node level: a job whose record is taken from its agent while its handler
// blocks (a sibling presumed the dispatcher dead and cleaned it) reads reassigned after the
// dispatcher's next poll, while it is still listed as active; another dispatcher completes
// it; when the handler returns, the run ends reassigned with zc.async's ERROR and leaves the
// active jobs.
func TestNodeReassignedJob(t *testing.T) {
	f := newExecFixture(t)
	var calls atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	f.h["wait_for_me"] = func(context.Context, *persistence.Call) (any, error) {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		return 42, nil
	}
	// Size 1: the blocked run fills the agent, so this node does not claim the job back.
	n1 := f.startNode(f.nodeOptions("n1", 1, 20*time.Millisecond))
	defer f.stopNode(n1)
	sub := f.completions()
	j := f.put("wait_for_me")
	<-started
	f.eventually("a poll lists the job as active", func() bool {
		p := n1.Polls(time.Time{}, time.Time{}, 1)
		return len(p) == 1 && slices.Contains(p[0].Queues["q"].Agents["main"].ActiveJobs, j.ID)
	})
	if info, _ := n1.JobInfo(j.ID); info.Reassigned {
		t.Fatalf("reassigned before anything happened: %+v", info)
	}

	// What a sibling does to a dispatcher it presumes dead.
	if _, err := f.store.Deactivate(f.ctx, "q", "n1"); err != nil {
		t.Fatal(err)
	}
	f.eventually("the job reads reassigned after n1's next poll", func() bool {
		info, _ := n1.JobInfo(j.ID)
		return info.Reassigned
	})
	if got := n1.ActiveJobIDs("", ""); !slices.Equal(got, []string{j.ID}) {
		t.Fatalf("n1's active jobs %v, want the reassigned job, whose handler still runs", got)
	}

	n2 := f.startNode(f.nodeOptions("n2", 3, 20*time.Millisecond))
	defer f.stopNode(n2)
	if done := f.waitDone(sub, j.ID)[j.ID]; string(done.Result) != "42" {
		t.Fatalf("the job completed elsewhere with %s, want 42", done.Result)
	}

	close(release)
	f.eventually("n1 has no active job", func() bool { return len(n1.ActiveJobIDs("", "")) == 0 })
	r, ok := f.logs.Find(slog.LevelError, "was reassigned.  Likely cause was that polling was unable to occur as regularly as expected")
	if !ok || !strings.Contains(r.Message, j.ID) {
		t.Fatalf("no reassigned ERROR for %s (found %v: %q)", j.ID, ok, r.Message)
	}
	info, _ := n1.JobInfo(j.ID)
	if !info.Reassigned || info.Ending != "reassigned" || info.Failed || info.Completed.IsZero() {
		t.Fatalf("n1's JobInfo after the run: %+v", info)
	}
	if got := f.get(j.Ref); string(got.Result) != "42" || got.Status != persistence.StatusCompleted {
		t.Fatalf("the late run changed the job: %s %s", got.Status, got.Result)
	}
}

// Runs that end while the dispatcher polls fast are never taken for reassigned ones: a job
// leaves its agent's list in the store when it completes, a moment before its job actor
// reports the end.
func TestNodeNoFalseReassignment(t *testing.T) {
	f := newExecFixture(t)
	f.h["quick"] = func(context.Context, *persistence.Call) (any, error) { return 1, nil }
	n := f.startNode(f.nodeOptions("n1", 8, time.Millisecond))
	defer f.stopNode(n)
	sub := f.completions()
	var ids []string
	for range 150 {
		ids = append(ids, f.put("quick").ID)
	}
	f.waitDone(sub, ids...)
	f.eventually("every run recorded as ended", func() bool { return len(n.ActiveJobIDs("", "")) == 0 })
	for _, id := range ids {
		if info, ok := n.JobInfo(id); !ok || info.Reassigned || info.Ending != "finished" {
			t.Fatalf("JobInfo(%s) = %+v, %v; want finished, not reassigned", id, info, ok)
		}
	}
}

// The polls history stays bounded, newest first, while a node polls fast.
func TestNodePollsBounded(t *testing.T) {
	f := newExecFixture(t)
	n := f.startNode(f.nodeOptions("n1", 3, time.Millisecond))
	defer f.stopNode(n)
	f.eventually("more polls than the history keeps", func() bool {
		p := n.Polls(time.Time{}, time.Time{}, 1)
		return len(p) == 1 && p[0].ID > PollHistorySize+10
	})
	polls := n.Polls(time.Time{}, time.Time{}, 0)
	if len(polls) != PollHistorySize {
		t.Fatalf("%d polls kept, want %d", len(polls), PollHistorySize)
	}
	for i := 1; i < len(polls); i++ {
		if polls[i].ID != polls[i-1].ID-1 || polls[i].Time.After(polls[i-1].Time) {
			t.Fatalf("polls %d and %d out of order: %d at %s, then %d at %s", i-1, i, polls[i-1].ID, polls[i-1].Time, polls[i].ID, polls[i].Time)
		}
	}
	p := polls[0].Queues["q"]
	if a, ok := p.Agents["main"]; p.Unavailable || !ok || a.Size != 3 || a.Len != 0 {
		t.Fatalf("the newest poll: %+v", p)
	}
	if got, ok := n.PollInfo(polls[5].ID); !ok || got.ID != polls[5].ID || !got.Time.Equal(polls[5].Time) {
		t.Fatalf("PollInfo(%d): %+v %v", polls[5].ID, got, ok)
	}
	if _, ok := n.PollInfo(polls[len(polls)-1].ID - 1); ok {
		t.Fatal("a poll older than the history keeps is still there")
	}
}

// StatusInfo reads RUNNING while the node polls and STOPPED after Stop; a queue whose
// activation is refused reads unavailable in the polls.
func TestNodeStatusInfo(t *testing.T) {
	f := newExecFixture(t)
	o := f.nodeOptions("n1", 3, 20*time.Millisecond)
	o.Queues = append(o.Queues, QueueSpec{Name: "refused", Agents: []AgentSpec{{Name: "main", Size: 1}}})
	f.activateIn("refused", "n1") // alive: another process, as far as n1 can tell
	n := f.startNode(o)
	f.eventually("RUNNING", func() bool { return n.StatusInfo().Status == DispatcherRunning })
	st := n.StatusInfo()
	if st.UUID != "n1" || st.PollInterval != 20*time.Millisecond || st.Uptime <= 0 {
		t.Fatalf("status: %+v", st)
	}
	p := n.Polls(time.Time{}, time.Time{}, 1)[0]
	if !p.Queues["refused"].Unavailable || p.Queues["refused"].Agents != nil || p.Queues["q"].Unavailable {
		t.Fatalf("the newest poll: %+v", p.Queues)
	}
	f.stopNode(n)
	if st := n.StatusInfo(); st.Status != DispatcherStopped {
		t.Fatalf("after Stop: %+v", st)
	}
}

// activateIn registers and activates dispatcher uuid in queue, alive for an hour.
func (f *execFixture) activateIn(queue, uuid string) {
	f.t.Helper()
	cfg := persistence.DispatcherConfig{PingInterval: time.Second, PingDeathInterval: time.Hour,
		Agents: []persistence.AgentSpec{{Name: "main", Size: 1}}}
	if err := f.store.Register(f.ctx, queue, uuid, cfg); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.store.Activate(f.ctx, queue, uuid); err != nil {
		f.t.Fatal(err)
	}
}
