package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: progress is shown only there, so that output
// piped to a file or another program stays plain.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress returns a progress bar of max steps (a spinner when max is -1) drawn on w when
// it is a terminal, else nil. A nil bar is safe to use: its methods do nothing.
func newProgress(w io.Writer, max int64, desc string) *progress {
	if !isTerminal(w) {
		return nil
	}
	return &progress{bar: progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("jobs"),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

// progress is a terminal progress bar; the nil *progress draws nothing.
type progress struct{ bar *progressbar.ProgressBar }

// set moves the bar to n.
func (p *progress) set(n int64) {
	if p != nil {
		p.bar.Set64(n)
	}
}

// describe changes the text before the bar.
func (p *progress) describe(s string) {
	if p != nil {
		p.bar.Describe(s)
	}
}

// done clears the bar.
func (p *progress) done() {
	if p != nil {
		p.bar.Finish()
		p.bar.Exit()
	}
}
