package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/zasync/zasync/dashboard"
	"github.com/zasync/zasync/httpapi"
	"github.com/zasync/zasync/monitor"
	"github.com/zasync/zasync/runtime"
)

// tokenEnv is the environment variable --monitor-token defaults to, so that the token need
// not show in the process list.
const tokenEnv = "ZASYNC_MONITOR_TOKEN"

// apiPrefix is where serve --monitor and monitor mount the cluster-wide HTTP API.
const apiPrefix = "/api"

// dashboardPrefix is where serve --monitor mounts the dashboard.
const dashboardPrefix = "/dashboard"

// withAPI returns a handler serving the HTTP API over rt under apiPrefix and the dashboard
// under dashboardPrefix, and rest (if not nil) elsewhere; without rest, / goes to the
// dashboard.
func withAPI(rt *runtime.Runtime, token string, logger *slog.Logger, rest http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(apiPrefix+"/", http.StripPrefix(apiPrefix, httpapi.New(rt, httpapi.WithToken(token), httpapi.WithLogger(logger))))
	mux.Handle(dashboardPrefix+"/", http.StripPrefix(dashboardPrefix, dashboard.New(rt, dashboard.WithToken(token), dashboard.WithLogger(logger))))
	if rest != nil {
		mux.Handle("/", rest)
	} else {
		mux.Handle("GET /{$}", http.RedirectHandler(dashboardPrefix+"/", http.StatusFound))
	}
	return mux
}

// runMonitor serves the cluster-wide HTTP API and the dashboard over an existing Redis, with
// no dispatcher, until SIGINT or SIGTERM.
func runMonitor(args []string, stdout, stderr io.Writer) error {
	return serveAPI("monitor", args, stderr)
}

// runDashboard is runMonitor by the name the dashboard is known by.
func runDashboard(args []string, stdout, stderr io.Writer) error {
	return serveAPI("dashboard", args, stderr)
}

// serveAPI is monitor and dashboard: the API and the dashboard, over an existing Redis.
func serveAPI(cmd string, args []string, stderr io.Writer) error {
	fs := flags(cmd, "--redis URL [--listen ADDR] [--monitor-token TOKEN] [--monitor-remote]", stderr)
	rflags := addRedisFlags(fs, redisURLHelp+" (required: the API reads an existing Redis)")
	prefix := fs.String("prefix", runtime.DefaultPrefix, "key prefix in Redis")
	listen := fs.String("listen", "127.0.0.1:8080", "serve the HTTP API at this loopback address (port 0 picks one)")
	remote := fs.Bool("monitor-remote", false, "let --listen be a non-loopback address (actions then need --monitor-token)")
	token := fs.String("monitor-token", os.Getenv(tokenEnv), "the token actions need (Authorization: Bearer TOKEN); default $"+tokenEnv)
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	conn, err := connectExisting(ctx, rflags, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := runtime.New(runtime.Config{Redis: conn.client, Prefix: *prefix, Logger: logger})
	if err != nil {
		return usagef("%v", err)
	}
	defer rt.Close()
	var opts []monitor.ListenOption
	if *remote {
		opts = append(opts, monitor.AllowRemote())
	}
	srv, err := monitor.Listen(ctx, *listen, withAPI(rt, *token, logger, nil), opts...)
	if err != nil {
		if errors.Is(err, monitor.ErrNotLoopback) {
			return usagef("--listen: %v", err)
		}
		return err
	}
	defer srv.Close()
	fmt.Fprintf(stderr, "zasync %s: dashboard at %s%s/, API at %s%s/v1/ over %s\n", cmd, srv.URL(), dashboardPrefix, srv.URL(), apiPrefix, redactURL(conn.url))
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	select {
	case <-signals:
		return nil
	case <-srv.Done():
		return srv.Wait()
	}
}
