// Command signup is a small service built on zasync, as an example: an HTTP endpoint puts
// typed jobs that mail new users, a callback records what became of each mail, and a
// reminder is scheduled a day later. Its tests (service_test.go) use zasynctest.
//
//	go run ./examples/signup --redis redis://127.0.0.1:6379 --listen 127.0.0.1:8090
//	curl -d '{"email":"ann@example.com","name":"Ann"}' 127.0.0.1:8090/signup
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/runtime"
)

// logMailer "sends" mail by logging it.
type logMailer struct{ log *slog.Logger }

func (m logMailer) Send(_ context.Context, to, subject string) (string, error) {
	id := fmt.Sprintf("mail-%d", time.Now().UnixNano())
	m.log.Info("mail sent", "to", to, "subject", subject, "id", id)
	return id, nil
}

func main() {
	redisURL := flag.String("redis", "redis://127.0.0.1:6379", "the Redis holding the queues")
	listen := flag.String("listen", "127.0.0.1:8090", "the address to serve on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := serve(*redisURL, *listen, log); err != nil {
		log.Error("signup", "error", err)
		os.Exit(1)
	}
}

func serve(redisURL, listen string, log *slog.Logger) error {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	client := redis.NewClient(opts)
	defer client.Close()
	rt, err := runtime.New(runtime.Config{Redis: client, Logger: log})
	if err != nil {
		return err
	}
	defer rt.Close()
	svc, err := NewService(rt, logMailer{log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := rt.Start(ctx); err != nil {
		return err
	}
	srv := &http.Server{Addr: listen, Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	failed := make(chan error, 1)
	go func() { failed <- srv.ListenAndServe() }()
	log.Info("signup: serving", "listen", listen)
	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// No new signups, those under way finish; then running jobs get their grace, and what
	// does not finish goes back to the queue for the next process.
	return errors.Join(srv.Shutdown(shutdown), rt.Stop(shutdown))
}
