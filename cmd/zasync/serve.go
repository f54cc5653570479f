package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zasync/zasync/monitor"
	"github.com/zasync/zasync/runtime"
)

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// runServe runs one node, a dispatcher with its agents, until SIGINT or SIGTERM stops it
// cleanly; a second signal stops it at once.
func runServe(args []string, stdout, stderr io.Writer) error {
	fs := flags("serve", "[flags]", stderr)
	rflags := addRedisFlags(fs, redisURLHelp+"; without one, an embedded Redis whose URL is printed")
	prefix := fs.String("prefix", runtime.DefaultPrefix, "key prefix in Redis")
	var queues, agents, every listFlag
	fs.Var(&queues, "queue", "a queue to serve (repeatable; default "+runtime.DefaultQueue+")")
	fs.Var(&agents, "agent", "an agent of every queue served, NAME:SIZE (repeatable; default "+runtime.DefaultAgent+":"+strconv.Itoa(runtime.DefaultAgentSize)+")")
	poll := fs.Duration("poll-interval", runtime.DefaultPollInterval, "how often an idle dispatcher looks for work (puts wake it at once)")
	ping := fs.Duration("ping-interval", runtime.DefaultPingInterval, "how often the dispatcher records that it is alive")
	death := fs.Duration("ping-death-interval", runtime.DefaultPingDeathInterval, "how long without a ping before siblings declare the dispatcher dead")
	grace := fs.Duration("grace", runtime.DefaultShutdownGrace, "how long a clean stop waits for running jobs")
	uuid := fs.String("uuid", "", "this dispatcher's UUID (default $"+runtime.UUIDEnv+", else ./"+runtime.UUIDFile+", created on first start)")
	monitorAddr := fs.String("monitor", "", "serve the HTTP monitor (JSON and /metrics) at this loopback address, e.g. 127.0.0.1:8080 (port 0 picks one)")
	remote := fs.Bool("monitor-remote", false, "let --monitor listen on a non-loopback address (reads have no authentication; actions need --monitor-token)")
	token := fs.String("monitor-token", os.Getenv(tokenEnv), "the token the HTTP API's actions need (Authorization: Bearer TOKEN); default $"+tokenEnv)
	takeover := fs.Bool("wait-for-takeover", false, "when another live process runs with this UUID, wait and take its queues over once it stops pinging (default: refuse to start)")
	builtin := fs.Bool("builtin", false, "register the built-in handlers: "+builtinNames())
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text (key=value) or json (one object a line)")
	logArgs := fs.Bool("log-arguments", false, "put jobs' arguments and results in the logs (default: left out, as they may be personal data)")
	fs.Var(&every, "every", everyHelp)
	everyMissed := fs.String("every-missed", string(runtime.MissedRunOnce), "what --every schedules do with ticks every process missed: run-once (the newest, once) or skip")
	if err := parse(fs, args); err != nil {
		return err
	}
	everyDecls, missed, err := parseEveryFlags(every, *everyMissed)
	if err != nil {
		return err
	}
	cfg := runtime.Config{Prefix: *prefix, UUID: *uuid, PollInterval: *poll, PingInterval: *ping,
		PingDeathInterval: *death, ShutdownGrace: *grace, RetryPolicies: []runtime.RetryPolicy{retryErrors}, WaitForTakeover: *takeover}
	agentCfgs, err := parseAgents(agents)
	if err != nil {
		return err
	}
	if len(queues) == 0 {
		queues = listFlag{runtime.DefaultQueue}
	}
	for _, q := range queues {
		cfg.Queues = append(cfg.Queues, runtime.QueueConfig{Name: q, Agents: agentCfgs})
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", *level)
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: levelNames}
	switch *format {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		return usagef("--log-format %q: want text or json", *format)
	}
	cfg.LogArguments = *logArgs

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	conn, err := connect(ctx, rflags, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	cfg.Redis = conn.client
	rt, err := runtime.New(cfg)
	if err != nil {
		return usagef("%v", err)
	}
	defer rt.Close()
	if *builtin {
		if err := registerBuiltins(rt); err != nil {
			return err
		}
	}
	if err := declareEvery(rt, everyDecls, missed); err != nil {
		return err
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	if err := rt.Start(ctx); err != nil {
		return err
	}
	if *monitorAddr != "" {
		var opts []monitor.ListenOption
		if *remote {
			opts = append(opts, monitor.AllowRemote())
		}
		h := withAPI(rt, *token, cfg.Logger, monitor.New(rt, monitor.WithLogger(cfg.Logger)))
		srv, err := monitor.Listen(ctx, *monitorAddr, h, opts...)
		if err != nil {
			rt.Stop(ctx)
			if errors.Is(err, monitor.ErrNotLoopback) {
				return usagef("--monitor: %v", err)
			}
			return err
		}
		defer srv.Close()
		fmt.Fprintf(stderr, "zasync serve: monitor at %s/ (metrics at %s/metrics, the dashboard at %s%s/, the HTTP API at %s%s/v1/)\n",
			srv.URL(), srv.URL(), srv.URL(), dashboardPrefix, srv.URL(), apiPrefix)
	}
	fmt.Fprintf(stderr, "zasync serve: dispatcher %s serving %s with %s on %s (poll %s, ping %s, death %s)\n",
		rt.StatusInfo().UUID, strings.Join(queues, ", "), describeAgents(agentCfgs), redactURL(conn.url), *poll, *ping, *death)

	sig := <-signals
	fmt.Fprintf(stderr, "zasync serve: %s: stopping cleanly (running jobs are cancelled; waiting up to %s for them to return); signal again to stop at once\n", sig, *grace)
	done := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), *grace+time.Minute)
		defer cancel()
		done <- rt.Stop(sctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("clean stop: %w", err)
		}
		fmt.Fprintln(stderr, "zasync serve: stopped")
		return nil
	case sig := <-signals:
		fmt.Fprintf(stderr, "zasync serve: %s again: stopping at once; siblings will recover this dispatcher's jobs\n", sig)
		os.Exit(1)
		return nil
	}
}

// parseAgents reads NAME:SIZE agent flags; none gives the default agent.
func parseAgents(flags []string) ([]runtime.AgentConfig, error) {
	if len(flags) == 0 {
		return []runtime.AgentConfig{{Name: runtime.DefaultAgent, Size: runtime.DefaultAgentSize}}, nil
	}
	out := make([]runtime.AgentConfig, 0, len(flags))
	for _, f := range flags {
		name, size, ok := strings.Cut(f, ":")
		n, err := strconv.Atoi(size)
		if !ok || name == "" || err != nil || n < 1 {
			return nil, usagef("--agent %q: want NAME:SIZE with SIZE at least 1", f)
		}
		out = append(out, runtime.AgentConfig{Name: name, Size: n})
	}
	return out, nil
}

func describeAgents(agents []runtime.AgentConfig) string {
	parts := make([]string, len(agents))
	for i, a := range agents {
		parts[i] = fmt.Sprintf("agent %s:%d", a.Name, a.Size)
	}
	return strings.Join(parts, ", ")
}

func builtinNames() string {
	names := make([]string, len(builtins))
	for i, b := range builtins {
		names[i] = b.name
	}
	return strings.Join(names, ", ")
}

// levelNames prints zasync's CRITICAL level by its name.
func levelNames(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l >= runtime.LevelCritical {
			a.Value = slog.StringValue("CRITICAL")
		}
	}
	return a
}
