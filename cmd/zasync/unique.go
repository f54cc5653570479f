package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zasync/zasync/runtime"
)

// uniqueFlags are put's flags for a unique key (runtime.Unique).
type uniqueFlags struct {
	key       *setString
	states    *string
	completed *time.Duration
	debounce  *bool
}

func addUniqueFlags(fs *flagSet) uniqueFlags {
	key := new(setString)
	fs.Var(key, "unique", "put the job only if no job of the queue holds this key; else print the job that holds it (1 to 512 bytes of UTF-8)")
	return uniqueFlags{
		key: key,
		states: fs.String("unique-states", "pending,scheduled,active",
			"with --unique, the states in which a job holds its key: a comma-separated list of pending (due), scheduled (waiting for its begin_after) and active (claimed, running, or running its callbacks)"),
		completed: fs.Duration("unique-completed", 0, "with --unique, hold the key for this long after the job completes too (capped at the store's retention; 0: released at completion)"),
		debounce: fs.Bool("debounce", false,
			"with --unique, when the key's job is still pending and never started, give it this put's arguments and --begin-after instead (the newest put wins)"),
	}
}

// option returns the flags' put option, none without --unique.
func (u uniqueFlags) option() (runtime.PutOption, error) {
	if !u.key.set {
		if *u.debounce || *u.completed != 0 {
			return nil, usagef("--debounce and --unique-completed need --unique KEY")
		}
		return nil, nil
	}
	var opts runtime.UniqueOpts
	for _, s := range strings.Split(*u.states, ",") {
		st, ok := runtime.ParseUniqueState(strings.TrimSpace(s))
		if !ok {
			return nil, usagef("--unique-states %q: want a comma-separated list of pending, scheduled and active", *u.states)
		}
		opts.States |= st
	}
	if *u.completed < 0 {
		return nil, usagef("--unique-completed %s: want a positive duration", *u.completed)
	}
	opts.CompletedWithin, opts.Debounce = *u.completed, *u.debounce
	return runtime.Unique(u.key.v, opts), nil
}

// setString is a string flag that knows whether it was given: --unique "" is an empty key,
// which the put refuses, not no key.
type setString struct {
	v   string
	set bool
}

func (s *setString) String() string { return s.v }

func (s *setString) Set(v string) error {
	s.v, s.set = v, true
	return nil
}

// reportDuplicate says on stderr that job was not made by this put, when it was not.
func reportDuplicate(w io.Writer, job *runtime.Job) {
	switch {
	case job.Debounced():
		fmt.Fprintf(w, "%s holds the unique key, pending: it takes this put's arguments and begin_after (debounced)\n", job)
	case job.Duplicate():
		fmt.Fprintf(w, "%s holds the unique key: nothing was put\n", job)
	}
}
