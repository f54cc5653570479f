package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zasync/zasync/runtime"
	"github.com/zasync/zasync/zasynctest"
)

// fakeMailer records what it sends; addresses at bounce.example are refused for good.
type fakeMailer struct {
	mu   sync.Mutex
	sent []string
}

func (m *fakeMailer) Send(_ context.Context, to, subject string) (string, error) {
	if strings.HasSuffix(to, "@bounce.example") {
		return "", ErrBounced
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, to+": "+subject)
	return "mail-" + to, nil
}

func (m *fakeMailer) all() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.sent...)
}

func newService(t *testing.T) (*zasynctest.Kit, *Service, *fakeMailer) {
	t.Helper()
	k := zasynctest.New(t, runtime.Config{})
	m := &fakeMailer{}
	svc, err := NewService(k.Runtime, m)
	if err != nil {
		t.Fatal(err)
	}
	return k, svc, m
}

func post(t *testing.T, h http.Handler, body string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/signup", strings.NewReader(body)))
	return rec.Code
}

// A signup puts the welcome job; it runs with its audit callback; the reminder waits a day.
func TestSignupMailsAWelcome(t *testing.T) {
	k, svc, mailer := newService(t)
	if code := post(t, svc.Handler(), `{"email":"ann@example.com","name":"Ann"}`); code != http.StatusAccepted {
		t.Fatalf("POST /signup: %d", code)
	}
	welcome := k.RequirePut("signup.welcome", Welcome{Email: "ann@example.com", Name: "Ann"})
	k.RequirePut("signup.reminder", Welcome{Email: "ann@example.com", Name: "Ann"})

	k.RunDue()
	if got := mailer.all(); len(got) != 1 || got[0] != "ann@example.com: Welcome, Ann" {
		t.Fatalf("mail sent: %q", got)
	}
	if id, err := svc.welcome.Job(welcome.Ref()).Wait(t.Context()); err != nil || id != "mail-ann@example.com" {
		t.Fatalf("the welcome job: %q %v", id, err)
	}
	audit := k.RequirePut("signup.audit")
	if out, err := audit.Wait(t.Context()); err != nil || string(out.Result) != `"sent mail-ann@example.com"` {
		t.Fatalf("the audit: %+v %v", out, err)
	}

	k.Advance(ReminderDelay - time.Minute)
	k.RunDue()
	if got := mailer.all(); len(got) != 1 {
		t.Fatalf("the reminder went before its day: %q", got)
	}
	k.Advance(time.Minute)
	k.RunDue()
	if got := mailer.all(); len(got) != 2 || got[1] != "ann@example.com: Did you mean to sign up, Ann?" {
		t.Fatalf("mail sent after a day: %q", got)
	}
}

// A welcome that bounces is not retried, and its audit says why: the error kept its identity.
func TestSignupBounce(t *testing.T) {
	k, svc, mailer := newService(t)
	if err := svc.Signup(t.Context(), Welcome{Email: "bob@bounce.example", Name: "Bob"}); err != nil {
		t.Fatal(err)
	}
	if n := k.RunDue(); n != 2 {
		t.Fatalf("RunDue completed %d jobs, want the welcome and its audit", n)
	}
	audit := k.RequirePut("signup.audit")
	if out, err := audit.Wait(t.Context()); err != nil || string(out.Result) != `"bounced"` {
		t.Fatalf("the audit of a bounce: %+v %v", out, err)
	}
	if got := mailer.all(); len(got) != 0 {
		t.Fatalf("mail sent: %q", got)
	}
}

// Bad input is refused with 400, and puts nothing.
func TestSignupRefusesBadInput(t *testing.T) {
	k, svc, _ := newService(t)
	for _, body := range []string{`{"email":"not an address","name":"X"}`, `{"email":"a@example.com"}`, `nope`} {
		if code := post(t, svc.Handler(), body); code != http.StatusBadRequest {
			t.Fatalf("POST %s: %d, want 400", body, code)
		}
	}
	k.RequireNotPut("signup.welcome")
}
