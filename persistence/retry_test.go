package persistence

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// retryOutcome is what a simulated run of a job ended with.
type retryOutcome struct {
	calls  int             // how many times the handler ran
	result int             // the result, when err is nil
	err    error           // the error kept as the result (the job's Failure), if any
	delays []time.Duration // waits in place before each retry that asked for one
}

// retryRun simulates the runtime loop for one job: run the handler, ask the policy about a job
// error, then about a commit error (commit returns the error of storing the nth result, nil
// when it is stored). It gives up after limit handler calls so that a policy that never stops
// cannot hang the test.
func retryRun(p RetryPolicy, counts RetryCounts, limit int, handler func(call int) (int, error), commit func(call int) error) retryOutcome {
	var out retryOutcome
	for out.calls < limit {
		out.calls++
		res, err := handler(out.calls)
		if err == nil {
			if commit != nil {
				err = commit(out.calls)
				if err == nil {
					out.result = res
					return out
				}
				d := p.CommitError(err, counts)
				if !d.Retries() {
					out.err = err
					return out
				}
				if d.Delay > 0 {
					out.delays = append(out.delays, d.Delay)
				}
				continue
			}
			out.result = res
			return out
		}
		d := p.JobError(err, counts)
		if !d.Retries() {
			out.err = err
			return out
		}
		if d.Delay > 0 {
			out.delays = append(out.delays, d.Delay)
		}
	}
	out.err = fmt.Errorf("policy %s still retrying after %d calls", p.Name(), limit)
	return out
}

func numError() error {
	_, err := strconv.Atoi("forty-two")
	return err
}

// Scenario 20: errors other than conflicts and unavailability are not retried.
func TestRetryFourTimesPlainErrorsStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"errors.New", errors.New("value error")},
		{"NumError", numError()},
		{"wrapped", fmt.Errorf("parsing: %w", numError())},
		{"Errorf without %w", fmt.Errorf("runtime error: %d", 3)},
		{"TimeoutError", &TimeoutError{}},
		{"ErrReassigned", ErrReassigned},
		{"BadStatus", &BadStatusError{Op: "call", Status: StatusActive}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			counts := RetryCounts{}
			out := retryRun(RetryCommonFourTimes, counts, 100, func(int) (int, error) { return 0, tc.err }, nil)
			if out.calls != 1 {
				t.Fatalf("handler failing with %v: want 1 call, got %d", tc.err, out.calls)
			}
			if out.err != tc.err {
				t.Fatalf("want the handler's error %v as the result, got %v", tc.err, out.err)
			}
			if len(counts) != 0 {
				t.Fatalf("a plain error must not touch the counters, got %v", counts)
			}
			if d := RetryCommonFourTimes.CommitError(tc.err, RetryCounts{}); d.Action != ActionStop {
				t.Fatalf("CommitError(%v): want stop, got %s", tc.err, d)
			}
		})
	}
}

// Scenario 21: a conflict every time runs the handler 5 times, then the conflict is the result.
func TestRetryFourTimesConflictEveryTime(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	out := retryRun(RetryCommonFourTimes, counts, 100, func(int) (int, error) { return 0, ErrConflict }, nil)
	if MaxConflicts != 5 || out.calls != MaxConflicts {
		t.Fatalf("want 5 calls (4 retries), got %d", out.calls)
	}
	if !errors.Is(out.err, ErrConflict) {
		t.Fatalf("want ErrConflict as the result, got %v", out.err)
	}
	if f := NewFailure(out.err, ""); f.Type != "ConflictError" {
		t.Fatalf("want a ConflictError failure, got type %q", f.Type)
	}
	if counts[CountConflicts] != 5 {
		t.Fatalf("want counts[%q] = 5, got %v", CountConflicts, counts)
	}
}

// Scenario 21: each of the first four conflicts asks for a retry now, the fifth stops.
func TestRetryFourTimesConflictDecisions(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	for n := 1; n <= 5; n++ {
		d := RetryCommonFourTimes.JobError(fmt.Errorf("commit: %w", ErrConflict), counts)
		want := ActionRetryNow
		if n == 5 {
			want = ActionStop
		}
		if d.Action != want {
			t.Fatalf("conflict %d: want action %d, got %s", n, want, d)
		}
		if d.Delay != 0 {
			t.Fatalf("conflict %d: want no delay, got %s", n, d.Delay)
		}
		if d.Counter != CountConflicts || d.Count != n {
			t.Fatalf("conflict %d: want counter %s=%d, got %s=%d", n, CountConflicts, n, d.Counter, d.Count)
		}
	}
}

// Scenario 21: success on the third call gives 42.
func TestRetryFourTimesSuccessOnThirdCall(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	out := retryRun(RetryCommonFourTimes, counts, 100, func(n int) (int, error) {
		if n < 3 {
			return 0, ErrConflict
		}
		return 42, nil
	}, nil)
	if out.err != nil || out.result != 42 {
		t.Fatalf("want result 42, got %d, %v", out.result, out.err)
	}
	if out.calls != 3 {
		t.Fatalf("want 3 calls, got %d", out.calls)
	}
	if counts[CountConflicts] != 2 {
		t.Fatalf("want 2 conflicts counted, got %v", counts)
	}
}

// A Failure of kind ConflictError read back from storage is still a conflict.
func TestRetryFourTimesStoredConflictFailure(t *testing.T) {
	t.Parallel()
	f := &Failure{Type: "ConflictError", Message: "zasync: transaction conflict"}
	if d := RetryCommonFourTimes.JobError(f, RetryCounts{}); d.Action != ActionRetryNow {
		t.Fatalf("want a stored ConflictError failure retried now, got %s", d)
	}
}

// Scenario 22: the store unreachable 49 times, then success: 42, after waits of 5, 10, …, 60,
// 60, … seconds (49 of them).
func TestRetryFourTimesUnavailable(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	out := retryRun(RetryCommonFourTimes, counts, 1000, func(n int) (int, error) {
		if n <= 49 {
			return 0, fmt.Errorf("dial: %w", ErrUnavailable)
		}
		return 42, nil
	}, nil)
	if out.err != nil || out.result != 42 {
		t.Fatalf("want result 42, got %d, %v", out.result, out.err)
	}
	if out.calls != 50 {
		t.Fatalf("want 50 calls, got %d", out.calls)
	}
	if len(out.delays) != 49 {
		t.Fatalf("want 49 waits, got %d", len(out.delays))
	}
	for i, d := range out.delays {
		want := time.Duration(min(60, 5*(i+1))) * time.Second
		if d != want {
			t.Fatalf("wait %d: want %s, got %s (all: %v)", i+1, want, d, out.delays)
		}
	}
	if counts[CountUnavailable] != 49 {
		t.Fatalf("want counts[%q] = 49, got %v", CountUnavailable, counts)
	}
	if counts[CountConflicts] != 0 {
		t.Fatalf("unavailability must not count as conflicts, got %v", counts)
	}
}

// Unavailability never stops RetryCommonFourTimes, and does not eat into the conflict budget.
func TestRetryFourTimesUnavailableForever(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	for n := 1; n <= 1000; n++ {
		d := RetryCommonFourTimes.JobError(ErrUnavailable, counts)
		if d.Action != ActionRetryNow || d.Delay <= 0 {
			t.Fatalf("unavailable %d: want a retry in place after a wait, got %s", n, d)
		}
		if d.Counter != CountUnavailable || d.Count != n {
			t.Fatalf("unavailable %d: want counter %s=%d, got %s=%d", n, CountUnavailable, n, d.Counter, d.Count)
		}
	}
	if d := RetryCommonFourTimes.JobError(ErrConflict, counts); d.Action != ActionRetryNow {
		t.Fatalf("first conflict after many unavailabilities: want retry now, got %s", d)
	}
}

// Scenario 23: a commit error other than a conflict keeps the commit error as the result; the
// handler ran once.
func TestRetryFourTimesCommitValueError(t *testing.T) {
	t.Parallel()
	commitErr := fmt.Errorf("encoding result: %w", numError())
	counts := RetryCounts{}
	out := retryRun(RetryCommonFourTimes, counts, 100,
		func(int) (int, error) { return 42, nil },
		func(int) error { return commitErr })
	if out.calls != 1 {
		t.Fatalf("want the handler run once, got %d", out.calls)
	}
	if out.err != commitErr {
		t.Fatalf("want the commit error as the result, got %v", out.err)
	}
	if f := NewFailure(out.err, ""); f.Type != "strconv.NumError" {
		t.Fatalf("want a strconv.NumError failure, got %q", f.Type)
	}
}

// Scenario 24: repeated commit conflicts re-run the handler up to 5 times, then the conflict is
// the result.
func TestRetryFourTimesCommitConflicts(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	commits := 0
	out := retryRun(RetryCommonFourTimes, counts, 100,
		func(int) (int, error) { return 42, nil },
		func(int) error { commits++; return ErrConflict })
	if out.calls != 5 || commits != 5 {
		t.Fatalf("want 5 runs and 5 commits, got %d runs and %d commits", out.calls, commits)
	}
	if !errors.Is(out.err, ErrConflict) {
		t.Fatalf("want the conflict as the result, got %v", out.err)
	}
	// A commit that succeeds on a retry stores the result.
	counts = RetryCounts{}
	out = retryRun(RetryCommonFourTimes, counts, 100,
		func(n int) (int, error) { return 40 + n, nil },
		func(n int) error {
			if n < 2 {
				return ErrConflict
			}
			return nil
		})
	if out.err != nil || out.result != 42 || out.calls != 2 {
		t.Fatalf("want 42 after 2 runs, got %d, %v after %d runs", out.result, out.err, out.calls)
	}
}

// Job and commit conflicts share one counter: five in all stop the job.
func TestRetryFourTimesSharedConflictCounter(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	out := retryRun(RetryCommonFourTimes, counts, 100,
		func(n int) (int, error) {
			if n%2 == 1 {
				return 0, ErrConflict
			}
			return 42, nil
		},
		func(int) error { return ErrConflict })
	if out.calls != 5 {
		t.Fatalf("want 5 runs (conflicts at job and commit share the budget), got %d", out.calls)
	}
	if !errors.Is(out.err, ErrConflict) || counts[CountConflicts] != 5 {
		t.Fatalf("want a conflict result after 5 conflicts, got %v with %v", out.err, counts)
	}
	// Counters carried over from an earlier process count too.
	counts = RetryCounts{CountConflicts: 4}
	if d := RetryCommonFourTimes.CommitError(ErrConflict, counts); d.Action != ActionStop {
		t.Fatalf("with 4 stored conflicts the next one must stop, got %s", d)
	}
}

// The unavailable backoff applies to commit errors too.
func TestRetryFourTimesCommitUnavailable(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	for n := 1; n <= 15; n++ {
		d := RetryCommonFourTimes.CommitError(ErrUnavailable, counts)
		want := time.Duration(min(60, 5*n)) * time.Second
		if d.Action != ActionRetryNow || d.Delay != want {
			t.Fatalf("commit unavailable %d: want retry in place after %s, got %s", n, want, d)
		}
	}
}

// Scenario 16 at model level: nine interruptions retry now, the tenth stops.
func TestRetryFourTimesInterrupted(t *testing.T) {
	t.Parallel()
	counts := RetryCounts{}
	for n := 1; n <= 10; n++ {
		d := RetryCommonFourTimes.Interrupted(counts)
		if d.Counter != CountInterruptions || d.Count != n {
			t.Fatalf("interruption %d: want counter %s=%d, got %s=%d", n, CountInterruptions, n, d.Counter, d.Count)
		}
		if n <= MaxInterruptions {
			if d.Action != ActionRetryNow || d.Delay != 0 {
				t.Fatalf("interruption %d: want retry now, got %s", n, d)
			}
			if at, putBack := d.When(time.Unix(0, 0)); !putBack || !at.Equal(time.Unix(0, 0)) {
				t.Fatalf("interruption %d: want a put back now, got %s, %v", n, at, putBack)
			}
		} else if d.Action != ActionStop {
			t.Fatalf("interruption %d: want stop (abort), got %s", n, d)
		}
	}
	if counts[CountInterruptions] != 10 {
		t.Fatalf("want 10 interruptions counted, got %v", counts)
	}
}

func TestRetryForever(t *testing.T) {
	t.Parallel()
	p := RetryCommonForever
	t.Run("conflicts", func(t *testing.T) {
		t.Parallel()
		counts := RetryCounts{}
		for n := 1; n <= 200; n++ {
			for _, d := range []Decision{p.JobError(ErrConflict, counts), p.CommitError(fmt.Errorf("x: %w", ErrConflict), counts)} {
				if d.Action != ActionRetryNow || d.Delay != 0 {
					t.Fatalf("conflict round %d: want retry now, got %s", n, d)
				}
			}
		}
		if counts[CountConflicts] != 400 {
			t.Fatalf("want 400 conflicts counted, got %v", counts)
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		t.Parallel()
		counts := RetryCounts{}
		for n := 1; n <= 100; n++ {
			d := p.JobError(ErrUnavailable, counts)
			want := time.Duration(min(60, 5*n)) * time.Second
			if d.Action != ActionRetryNow || d.Delay != want {
				t.Fatalf("unavailable %d: want retry in place after %s, got %s", n, want, d)
			}
		}
	})
	t.Run("interruptions", func(t *testing.T) {
		t.Parallel()
		counts := RetryCounts{}
		for n := 1; n <= 100; n++ {
			d := p.Interrupted(counts)
			if d.Action != ActionRetryNow || d.Count != n || d.Counter != CountInterruptions {
				t.Fatalf("interruption %d: want retry now counted as %d, got %s (%s=%d)", n, n, d, d.Counter, d.Count)
			}
		}
	})
	t.Run("other commit errors", func(t *testing.T) {
		t.Parallel()
		counts := RetryCounts{}
		for n := 1; n <= 100; n++ {
			d := p.CommitError(errors.New("result too large"), counts)
			want := time.Duration(min(60, n-1)) * time.Second
			if d.Action != ActionRetryNow || d.Delay != want {
				t.Fatalf("commit error %d: want retry in place after %s, got %s", n, want, d)
			}
			if !d.Alert {
				t.Fatalf("commit error %d: want Alert (critical log)", n)
			}
			if d.Counter != CountCommitErrors || d.Count != n {
				t.Fatalf("commit error %d: want counter %s=%d, got %s=%d", n, CountCommitErrors, n, d.Counter, d.Count)
			}
		}
	})
	t.Run("other job errors", func(t *testing.T) {
		t.Parallel()
		for _, err := range []error{errors.New("boom"), numError(), &TimeoutError{}} {
			counts := RetryCounts{}
			if d := p.JobError(err, counts); d.Action != ActionStop {
				t.Fatalf("JobError(%v): want stop, got %s", err, d)
			}
			if len(counts) != 0 {
				t.Fatalf("JobError(%v): want no counter touched, got %v", err, counts)
			}
		}
	})
}

func TestRetryNever(t *testing.T) {
	t.Parallel()
	for _, err := range []error{ErrConflict, ErrUnavailable, errors.New("boom"), fmt.Errorf("x: %w", ErrConflict)} {
		if d := NeverRetry.JobError(err, RetryCounts{}); d.Action != ActionStop {
			t.Fatalf("NeverRetry.JobError(%v): want stop, got %s", err, d)
		}
		if d := NeverRetry.CommitError(err, RetryCounts{}); d.Action != ActionStop {
			t.Fatalf("NeverRetry.CommitError(%v): want stop, got %s", err, d)
		}
	}
	counts := RetryCounts{}
	d := NeverRetry.Interrupted(counts)
	if d.Action != ActionStop {
		t.Fatalf("NeverRetry.Interrupted: want stop, got %s", d)
	}
	if counts[CountInterruptions] != 1 {
		t.Fatalf("NeverRetry.Interrupted: want the interruption counted, got %v", counts)
	}
}

// A simulated retry loop with NeverRetry runs a conflicting handler once.
func TestRetryNeverRunsOnce(t *testing.T) {
	t.Parallel()
	out := retryRun(NeverRetry, RetryCounts{}, 100, func(int) (int, error) { return 0, ErrConflict }, nil)
	if out.calls != 1 || !errors.Is(out.err, ErrConflict) {
		t.Fatalf("want one call ending in a conflict, got %d calls, %v", out.calls, out.err)
	}
}

func TestRetryPastDeadline(t *testing.T) {
	t.Parallel()
	start := time.Date(2006, 8, 10, 15, 44, 0, 0, time.UTC)
	withDeadline := &Job{BeginAfter: start, BeginBy: time.Hour}
	noDeadline := &Job{BeginAfter: start}
	retry := RetryNow()
	retry.Counter, retry.Count = CountConflicts, 2
	for _, tc := range []struct {
		name  string
		d     Decision
		j     *Job
		now   time.Time
		retry bool
	}{
		{"before the deadline", retry, withDeadline, start.Add(30 * time.Minute), true},
		{"at the deadline", retry, withDeadline, start.Add(time.Hour), true},
		{"after the deadline", retry, withDeadline, start.Add(time.Hour + time.Second), false},
		{"reschedule after the deadline", RetryAfter(time.Minute), withDeadline, start.Add(2 * time.Hour), false},
		{"in place after the deadline", RetryInPlace(5 * time.Second), withDeadline, start.Add(2 * time.Hour), false},
		{"no deadline, long after", retry, noDeadline, start.Add(1000 * time.Hour), true},
		{"stop stays stop", Stop(), withDeadline, start, false},
	} {
		got := PastDeadline(tc.d, tc.j, tc.now)
		if got.Retries() != tc.retry {
			t.Fatalf("%s: want retries=%v, got %s", tc.name, tc.retry, got)
		}
		if tc.retry && got != tc.d {
			t.Fatalf("%s: want the decision unchanged (%s), got %s", tc.name, tc.d, got)
		}
	}
	got := PastDeadline(retry, withDeadline, start.Add(2*time.Hour))
	if got.Counter != CountConflicts || got.Count != 2 {
		t.Fatalf("a stop past the deadline keeps the counter: want %s=2, got %s=%d", CountConflicts, got.Counter, got.Count)
	}
}

func TestRetryDecisionWhen(t *testing.T) {
	t.Parallel()
	now := time.Date(2006, 8, 10, 15, 44, 0, 0, time.UTC)
	est := time.FixedZone("EST", -5*3600)
	for _, tc := range []struct {
		name    string
		d       Decision
		at      time.Time
		putBack bool
	}{
		{"at a past time", RetryAt(now.Add(-time.Hour)), now, true},
		{"at now", RetryAt(now), now, true},
		{"at the zero time", RetryAt(time.Time{}), now, true},
		{"after zero", RetryAfter(0), now, true},
		{"after a negative duration", RetryAfter(-time.Minute), now, true},
		{"at a future time", RetryAt(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"at a future time in another zone", RetryAt(time.Date(2006, 8, 10, 11, 45, 0, 0, est)), time.Date(2006, 8, 10, 16, 45, 0, 0, time.UTC), false},
		{"after an hour", RetryAfter(time.Hour), now.Add(time.Hour), false},
		{"after a nanosecond", RetryAfter(time.Nanosecond), now.Add(time.Nanosecond), false},
	} {
		at, putBack := tc.d.When(now)
		if putBack != tc.putBack || !at.Equal(tc.at) {
			t.Fatalf("%s: want (%s, putBack %v), got (%s, %v)", tc.name, tc.at, tc.putBack, at, putBack)
		}
		if at.Location() != time.UTC {
			t.Fatalf("%s: want a UTC time, got %s", tc.name, at.Location())
		}
		if tc.d.Action != ActionReschedule || !tc.d.Retries() {
			t.Fatalf("%s: want a reschedule decision that retries, got %s", tc.name, tc.d)
		}
	}
}

func TestRetryDecisionBuilders(t *testing.T) {
	t.Parallel()
	if d := Stop(); d.Action != ActionStop || d.Retries() || d.String() != "stop" {
		t.Fatalf("Stop(): want a stop that does not retry, got %+v (%s)", d, d)
	}
	if d := RetryNow(); d.Action != ActionRetryNow || d.Delay != 0 || !d.Retries() || d.String() != "retry now" {
		t.Fatalf("RetryNow(): want retry now without delay, got %+v (%s)", d, d)
	}
	if d := RetryInPlace(5 * time.Second); d.Action != ActionRetryNow || d.Delay != 5*time.Second || !d.Retries() {
		t.Fatalf("RetryInPlace(5s): want retry now after 5s, got %+v", d)
	}
	if d := RetryAfter(time.Hour); d.Action != ActionReschedule || d.After != time.Hour || !d.At.IsZero() {
		t.Fatalf("RetryAfter(1h): want reschedule after 1h, got %+v", d)
	}
	at := time.Date(3000, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
	if d := RetryAt(at); d.Action != ActionReschedule || !d.At.Equal(at) || d.At.Location() != time.UTC {
		t.Fatalf("RetryAt: want reschedule at %s in UTC, got %+v", at, d)
	}
}

func TestRetryDecisionShouldLog(t *testing.T) {
	t.Parallel()
	for count, want := range map[int]bool{1: true, 2: false, 3: false, 4: false, 5: true, 6: false, 9: false, 10: true, 15: true, 16: false} {
		d := RetryNow()
		d.Counter, d.Count = CountConflicts, count
		if d.ShouldLog() != want {
			t.Fatalf("ShouldLog at count %d: want %v", count, want)
		}
	}
	// The counts the policies report drive it.
	counts := RetryCounts{}
	var logged []int
	for n := 1; n <= 12; n++ {
		if d := RetryCommonForever.JobError(ErrConflict, counts); d.ShouldLog() {
			logged = append(logged, d.Count)
		}
	}
	if fmt.Sprint(logged) != "[1 5 10]" {
		t.Fatalf("want logs at counts [1 5 10], got %v", logged)
	}
}

// testPolicy is a user policy for the registry tests.
type testPolicy struct{ name string }

func (p testPolicy) Name() string                          { return p.name }
func (testPolicy) JobError(error, RetryCounts) Decision    { return RetryAfter(time.Hour) }
func (testPolicy) CommitError(error, RetryCounts) Decision { return Stop() }
func (testPolicy) Interrupted(RetryCounts) Decision        { return Stop() }

func TestRetryPolicies(t *testing.T) {
	t.Parallel()
	r := NewRetryPolicies()
	for name, want := range map[string]RetryPolicy{
		RetryCommonFourTimesName: RetryCommonFourTimes,
		RetryCommonForeverName:   RetryCommonForever,
		NeverRetryName:           NeverRetry,
	} {
		p, err := r.Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%s): want the built-in policy, got %v", name, err)
		}
		if p != want || p.Name() != name {
			t.Fatalf("Lookup(%s): want %s, got %s", name, want.Name(), p.Name())
		}
	}
	if _, err := r.Lookup("Custom"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup of an unknown policy: want ErrNotFound, got %v", err)
	}
	if err := r.Register(testPolicy{"Custom"}); err != nil {
		t.Fatalf("Register(Custom): %v", err)
	}
	p, err := r.Lookup("Custom")
	if err != nil || p.Name() != "Custom" {
		t.Fatalf("Lookup(Custom) after Register: want the user policy, got %v, %v", p, err)
	}
	if d := p.JobError(errors.New("x"), RetryCounts{}); d.Action != ActionReschedule {
		t.Fatalf("the registered policy must be the user's: want reschedule, got %s", d)
	}
	for _, name := range []string{"Custom", RetryCommonFourTimesName, NeverRetryName} {
		if err := r.Register(testPolicy{name}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Register of taken name %s: want ErrInvalid, got %v", name, err)
		}
	}
	for _, name := range []string{"", "has space", "a/b", "{tag}"} {
		if err := r.Register(testPolicy{name}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Register of bad name %q: want ErrInvalid, got %v", name, err)
		}
		if _, err := r.Lookup(name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a rejected policy %q must not be registered: want ErrNotFound, got %v", name, err)
		}
	}
	// Registries are independent.
	if _, err := NewRetryPolicies().Lookup("Custom"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a fresh registry must not know Custom: want ErrNotFound, got %v", err)
	}
	// A job finds its policy by name.
	if p, err := (&Job{RetryPolicy: "Custom"}).Policy(r); err != nil || p.Name() != "Custom" {
		t.Fatalf("Job.Policy: want Custom, got %v, %v", p, err)
	}
	if _, err := (&Job{RetryPolicy: "Missing"}).Policy(r); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Job.Policy of an unknown name: want ErrNotFound, got %v", err)
	}
}

func TestRetryPolicyNames(t *testing.T) {
	t.Parallel()
	for p, want := range map[RetryPolicy]string{
		RetryCommonFourTimes: "RetryCommonFourTimes",
		RetryCommonForever:   "RetryCommonForever",
		NeverRetry:           "NeverRetry",
	} {
		if p.Name() != want {
			t.Fatalf("want policy name %s, got %s", want, p.Name())
		}
	}
}
