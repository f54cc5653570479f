package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"time"

	"github.com/zasync/zasync/runtime"
)

// Welcome is the argument of the job that mails a new user.
type Welcome struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Mailer sends mail; the service's tests give it a fake.
type Mailer interface {
	Send(ctx context.Context, to, subject string) (id string, err error)
}

// ErrBounced is a mail the server refused for good: the welcome job is not retried.
var ErrBounced = errors.New("signup: mail bounced")

// ReminderDelay is how long after signing up a user gets a reminder, unless they confirmed.
const ReminderDelay = 24 * time.Hour

// Service is a small signup service: POST /signup puts a job that mails a welcome, and a
// reminder a day later; a callback records each welcome's outcome.
type Service struct {
	rt       *runtime.Runtime
	mailer   Mailer
	welcome  *runtime.JobType[Welcome, string]
	reminder *runtime.JobType[Welcome, string]
	audit    *runtime.CallbackType[string, string]
}

// NewService registers the service's handlers on rt.
func NewService(rt *runtime.Runtime, m Mailer) (*Service, error) {
	if err := runtime.RegisterError(ErrBounced); err != nil {
		return nil, err
	}
	s := &Service{rt: rt, mailer: m}
	var err error
	if s.welcome, err = runtime.Register(rt, "signup.welcome", s.sendWelcome, runtime.Retry(runtime.NeverRetry)); err != nil {
		return nil, err
	}
	if s.reminder, err = runtime.Register(rt, "signup.reminder", s.sendReminder); err != nil {
		return nil, err
	}
	if s.audit, err = runtime.RegisterCallback(rt, "signup.audit", s.recordWelcome); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) sendWelcome(ctx context.Context, w Welcome) (string, error) {
	return s.mailer.Send(ctx, w.Email, "Welcome, "+w.Name)
}

func (s *Service) sendReminder(ctx context.Context, w Welcome) (string, error) {
	return s.mailer.Send(ctx, w.Email, "Did you mean to sign up, "+w.Name+"?")
}

// recordWelcome is the welcome job's callback: it says what became of the mail.
func (s *Service) recordWelcome(ctx context.Context, r runtime.Result[string]) (string, error) {
	if errors.Is(r.Err(), ErrBounced) {
		return "bounced", nil
	}
	if r.Err() != nil {
		return "failed: " + r.Failure.Message, nil
	}
	return "sent " + r.Value, nil
}

// Signup puts the welcome job, its audit and the reminder.
func (s *Service) Signup(ctx context.Context, w Welcome) error {
	job, err := s.welcome.Put(ctx, runtime.DefaultQueue, w)
	if err != nil {
		return err
	}
	if _, err := s.audit.Add(ctx, job); err != nil {
		return err
	}
	_, err = s.reminder.Put(ctx, runtime.DefaultQueue, w, runtime.BeginIn(ReminderDelay))
	return err
}

// Handler serves POST /signup with {"email", "name"}: 202 once the jobs are put.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) {
		var in Welcome
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
			http.Error(w, "want a JSON object with email and name", http.StatusBadRequest)
			return
		}
		if _, err := mail.ParseAddress(in.Email); err != nil || in.Name == "" {
			http.Error(w, fmt.Sprintf("bad email %q or empty name", in.Email), http.StatusBadRequest)
			return
		}
		if err := s.Signup(r.Context(), in); err != nil {
			http.Error(w, "cannot sign up now: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
}
