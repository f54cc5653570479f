package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// escapeText returns s with what could drive a terminal written as escapes: control
// characters (C0 but, with keepLines, newlines and tabs; DEL; C1, which some terminals obey
// like ESC), bidirectional overrides (which reorder what is shown) and bytes that are not
// UTF-8. Escapes are JSON's where JSON has one (\n, \u001b), so escaped JSON stays JSON;
// an invalid byte is \xNN.
func escapeText(s string, keepLines bool) string {
	clean := true
	for _, r := range s {
		if needsEscape(r, keepLines) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !needsEscape(r, keepLines):
			b.WriteString(s[i : i+size])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether r is escaped by escapeText (utf8.RuneError stands for an
// invalid byte as well as for U+FFFD itself, which is escaped only as a byte).
func needsEscape(r rune, keepLines bool) bool {
	switch {
	case r == utf8.RuneError:
		return true
	case keepLines && (r == '\n' || r == '\t'):
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// escapingWriter escapes with escapeText (lines kept) what it writes to a terminal. A
// character split across two writes is held until the second.
type escapingWriter struct {
	w    io.Writer
	tail []byte
}

func (e *escapingWriter) Write(p []byte) (int, error) {
	buf := append(e.tail, p...)
	cut := len(buf)
	for i := max(0, len(buf)-utf8.UTFMax+1); i < len(buf); i++ {
		if utf8.RuneStart(buf[i]) && !utf8.FullRune(buf[i:]) {
			cut = i
			break
		}
	}
	e.tail = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(e.w, escapeText(string(buf[:cut]), true)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes what an unfinished character left, escaped.
func (e *escapingWriter) flush() {
	if len(e.tail) > 0 {
		io.WriteString(e.w, escapeText(string(e.tail), true))
		e.tail = nil
	}
}
