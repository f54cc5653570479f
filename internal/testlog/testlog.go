// Package testlog records log records in tests, so that tests can assert what was logged.
package testlog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Recorder is a slog.Handler that keeps every record. It is safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

// Enabled accepts every level.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps rec.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}

// WithAttrs returns r: attributes given to loggers are not needed by the assertions.
func (r *Recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup returns r.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Find returns the first record at level whose message contains part.
func (r *Recorder) Find(level slog.Level, part string) (slog.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Level == level && strings.Contains(rec.Message, part) {
			return rec, true
		}
	}
	return slog.Record{}, false
}

// Records returns a copy of what was recorded.
func (r *Recorder) Records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slog.Record(nil), r.recs...)
}
