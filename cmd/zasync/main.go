// Command zasync runs and inspects zasync: a durable job runtime for Go over Redis.
//
// Usage: zasync <command> [flags]. Run `zasync help` for the commands and
// `zasync <command> --help` for a command's flags. The Redis to use comes from --redis or
// ZASYNC_REDIS (redis://, rediss:// with TLS, user, password and database number); without
// either, commands that need one start an embedded in-memory Redis. Over TLS, --tls-ca,
// --tls-cert and --tls-key name a private CA and a client certificate. A Redis URL is never
// printed with its password.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands, in the order help shows them.
var commands = []command{
	{"demo", "a short tour on an embedded Redis, crash and recovery included", runDemo},
	{"serve", "run a dispatcher with its agents on one or more queues", runServe},
	{"put", "put a job in a queue and print its id (--wait: its result)", runPut},
	{"wait", "wait for a job to complete and print its result", runWait},
	{"count", "count the stored jobs in the states given (pending active …), filtered", runCount},
	{"jobs", "list the stored jobs in the states given, filtered", runJobs},
	{"jobstats", "count jobs per state, with the longest and shortest waits and runs", runJobStats},
	{"job", "describe one job (queue/id)", runJob},
	{"traceback", "print a failed job's traceback (--detail brief|default|verbose)", runTraceback},
	{"nextpending", "describe the next pending job to run", runNextPending},
	{"lastcompleted", "describe the job that completed last", runLastCompleted},
	{"uuids", "list the UUIDs of the activated dispatchers", runUUIDs},
	{"status", "describe the queues, their dispatchers and their agents", runStatus},
	{"schedules", "list the periodic jobs, their next and last ticks and the processes declaring them", runSchedules},
	{"cancel", "cancel jobs (queue/id …) waiting, scheduled or running anywhere", runCancel},
	{"retry", "run failed or cancelled jobs (queue/id …) again, as new attempts", runRetry},
	{"delete", "delete jobs (queue/id …) that nothing runs, with their callbacks", runDelete},
	{"purge", "delete completed jobs older than an age, before their retention", runPurge},
	{"dashboard", "serve the web dashboard and the HTTP API over a Redis, with no dispatcher", runDashboard},
	{"monitor", "the same as dashboard (the HTTP API is at /api/v1/)", runMonitor},
	{"pause", "pause queues: no dispatcher claims from them until resume", runPause},
	{"resume", "resume paused queues", runResume},
	{"bench", "enqueue and drain no-op jobs, and print the throughput", runBench},
	{"help", "show the commands", nil},
}

// usageError is bad input from the user: one line on stderr, exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func main() {
	// go-redis logs failed dials to stderr on its own; the command says what went wrong in
	// one line instead.
	redis.SetLogger(quietRedis{})
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// quietRedis discards go-redis's own log lines.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// run runs the command line args and returns the exit status: 0, 1 for a failure, 2 for
// bad usage. Errors are one line on stderr, never a stack trace. On a terminal, what comes
// from jobs (results, tracebacks, arguments) is shown escaped: a job must not be able to
// drive the terminal of whoever looks at it.
func run(args []string, stdout, stderr io.Writer) int {
	if isTerminal(stdout) {
		ew := &escapingWriter{w: stdout}
		defer ew.flush()
		stdout = ew
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		help(stdout)
		return 0
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] && c.run != nil })
	if i < 0 {
		fmt.Fprintf(stderr, "zasync: unknown command %q (see zasync help)\n", args[0])
		return 2
	}
	err := commands[i].run(args[1:], stdout, stderr)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errSilent): // the output already says what went wrong
		return 1
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "zasync %s: %s\n", args[0], oneLine(err.Error()))
		return 2
	default:
		fmt.Fprintf(stderr, "zasync %s: %s\n", args[0], oneLine(err.Error()))
		return 1
	}
}

func help(w io.Writer) {
	fmt.Fprintln(w, "zasync: a durable job runtime for Go over Redis.")
	fmt.Fprintln(w, "\nUsage: zasync <command> [flags]   (zasync <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nThe Redis to use: --redis URL or ZASYNC_REDIS (redis://user:password@host:port/db, rediss:// for TLS);")
	fmt.Fprintln(w, "without either, an embedded in-memory Redis that keeps nothing after exit. Over TLS, --tls-ca trusts a")
	fmt.Fprintln(w, "private CA (or set SSL_CERT_FILE), --tls-cert and --tls-key present a client certificate.")
}

// flagSet is a command's flags and how to print its usage for --help.
type flagSet struct {
	*flag.FlagSet
	usage func()
}

// flags returns a flag set for a command that reports its errors as one-line usage errors;
// the usage is printed for --help only.
func flags(name, synopsis string, stderr io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls it on every error: printed for --help only
	return &flagSet{FlagSet: fs, usage: func() {
		fmt.Fprintf(stderr, "Usage: zasync %s %s\n\nFlags:\n", name, synopsis)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}}
}

// parse parses args into fs, turning a flag error into a usage error (and --help into
// flag.ErrHelp after printing the usage).
func parse(fs *flagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.usage()
		return flag.ErrHelp
	case err != nil:
		return usagef("%v", err)
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// oneLine writes an error message on one line, whole: its newlines (a queue's or a
// handler's name may hold one, a failure's message often does) and anything else that could
// drive the terminal are escaped.
func oneLine(s string) string {
	return escapeText(strings.TrimRight(s, " \n"), false)
}
