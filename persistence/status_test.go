package persistence

import (
	"errors"
	"strings"
	"testing"
)

func TestStatusRoundTrip(t *testing.T) {
	t.Parallel()
	names := map[Status]string{
		StatusNew: "new", StatusPending: "pending", StatusAssigned: "assigned",
		StatusActive: "active", StatusCallbacks: "callbacks", StatusCompleted: "completed",
	}
	if len(names) != 6 {
		t.Fatalf("want 6 distinct statuses, got %d", len(names))
	}
	for s, name := range names {
		if s.String() != name {
			t.Fatalf("Status(%d).String(): want %q, got %q", uint8(s), name, s.String())
		}
		back, err := ParseStatus(s.String())
		if err != nil || back != s {
			t.Fatalf("ParseStatus(%q): want %d, got %d, %v", name, uint8(s), uint8(back), err)
		}
	}
	for _, bad := range []string{"", "NEW", "Pending", "done", "status(9)", " new"} {
		if _, err := ParseStatus(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseStatus(%q): want ErrInvalid, got %v", bad, err)
		}
	}
	if got := Status(9).String(); got != "status(9)" {
		t.Fatalf("unknown status: want %q, got %q", "status(9)", got)
	}
}

func TestStatusOrder(t *testing.T) {
	t.Parallel()
	order := []Status{StatusNew, StatusPending, StatusAssigned, StatusActive, StatusCallbacks, StatusCompleted}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Fatalf("want %s before %s", order[i-1], order[i])
		}
	}
	for _, s := range order {
		j := &Job{Status: s}
		if want := s == StatusCallbacks || s == StatusCompleted; j.HasResult() != want {
			t.Fatalf("HasResult in %s: want %v", s, want)
		}
	}
}

func TestCheckStatus(t *testing.T) {
	t.Parallel()
	if err := CheckStatus("start", StatusAssigned, Runnable...); err != nil {
		t.Fatalf("start while assigned: want nil, got %v", err)
	}
	if err := CheckStatus("fail", StatusPending, Failable...); err != nil {
		t.Fatalf("fail while pending: want nil, got %v", err)
	}
	err := CheckStatus("start", StatusActive, Runnable...)
	if !errors.Is(err, ErrBadStatus) {
		t.Fatalf("start while active: want ErrBadStatus, got %v", err)
	}
	var bse *BadStatusError
	if !errors.As(err, &bse) {
		t.Fatalf("want a *BadStatusError, got %T", err)
	}
	if bse.Op != "start" || bse.Status != StatusActive || len(bse.Allowed) != 2 || bse.Allowed[0] != StatusNew || bse.Allowed[1] != StatusAssigned {
		t.Fatalf("want {start, active, [new assigned]}, got %+v", bse)
	}
	for _, part := range []string{"start", "active", "new, assigned"} {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("want %q in %q", part, err.Error())
		}
	}
	if errors.Is(err, ErrReassigned) || errors.Is(err, ErrInvalid) {
		t.Fatalf("a bad status is neither reassigned nor invalid: %v", err)
	}
	if f := NewFailure(err, ""); f.Type != "BadStatusError" {
		t.Fatalf("want failure kind BadStatusError, got %q", f.Type)
	}
	if err := CheckStatus("x", StatusNew); !errors.Is(err, ErrBadStatus) {
		t.Fatalf("nothing allowed: want ErrBadStatus, got %v", err)
	}
	for _, tc := range []struct {
		allowed []Status
		in      []Status
	}{
		{CallMutable, []Status{StatusNew}},
		{ScheduleMutable, []Status{StatusNew, StatusPending}},
		{Runnable, []Status{StatusNew, StatusAssigned}},
		{Failable, []Status{StatusNew, StatusPending, StatusAssigned}},
	} {
		for s := StatusNew; s <= StatusCompleted; s++ {
			want := false
			for _, a := range tc.in {
				want = want || a == s
			}
			if got := CheckStatus("op", s, tc.allowed...) == nil; got != want {
				t.Fatalf("status %s in %v: want allowed=%v, got %v", s, tc.allowed, want, got)
			}
		}
	}
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "Z", "0", "q", "main", "A.b_c-1", "..", "-", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateName("queue", ok); err != nil {
			t.Fatalf("ValidateName(%q): want valid, got %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", strings.Repeat("x", MaxNameLen+1), "a b", "a/b", "a:b", "{q}", "a*", "a?", "a\n", "\x00",
		"é", "straße", "٣", "a\u00a0b", "a+b", "a@b", "a,b", "a`b", "a[b", "a~b", "a^b", "\x7f", "\xff",
	} {
		err := ValidateName("quota", bad)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("ValidateName(%q): want ErrInvalid, got %v", bad, err)
		}
		if !strings.Contains(err.Error(), "quota") {
			t.Fatalf("ValidateName(%q): want the kind in the error, got %q", bad, err)
		}
	}
	if err := ValidateUUID("d00001-ab.c_d"); err != nil {
		t.Fatalf("ValidateUUID: want valid, got %v", err)
	}
	if err := ValidateUUID("a b"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ValidateUUID(\"a b\"): want ErrInvalid, got %v", err)
	}
}

func TestParseRef(t *testing.T) {
	t.Parallel()
	r, err := ParseRef("q/job-1")
	if err != nil || r != (Ref{Queue: "q", ID: "job-1"}) {
		t.Fatalf("ParseRef(q/job-1): want {q job-1}, got %+v, %v", r, err)
	}
	if r.String() != "q/job-1" {
		t.Fatalf("Ref.String: want q/job-1, got %q", r.String())
	}
	back, err := ParseRef(r.String())
	if err != nil || back != r {
		t.Fatalf("round trip: want %+v, got %+v, %v", r, back, err)
	}
	if in := r.In("other"); in != (Ref{Queue: "q", ID: "other"}) {
		t.Fatalf("Ref.In: want {q other}, got %+v", in)
	}
	for _, bad := range []string{"", "noslash", "/id", "q/", "q/a/b", "q q/id", "q/id!", "é/id"} {
		if _, err := ParseRef(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseRef(%q): want ErrInvalid, got %v", bad, err)
		}
	}
	if err := (Ref{Queue: "q", ID: "x"}).Validate(); err != nil {
		t.Fatalf("Ref.Validate: want valid, got %v", err)
	}
	if err := (Ref{Queue: "q"}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Ref.Validate without id: want ErrInvalid, got %v", err)
	}
}
