package persistence

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"slices"
	"unicode/utf8"
)

// A call's arguments are JSON that a program gives as bytes, often large. encoding/json reads
// them byte by byte through its scanner several times on the way to storage (to check them,
// to compact them, to encode the call, to measure it) and twice more on the way back (to
// check the record, then to decode it). The code here does each way in one pass, which
// skips over the contents of long strings many bytes at a time, and gives the same bytes and the same answers
// as encoding/json: Encode writes what json.Marshal writes, Validate accepts what json.Valid
// accepts, and DecodeCall reads what json.Unmarshal reads (the fuzz tests compare them).

// maxNesting is encoding/json's limit on the nesting of arrays and objects in a value it
// reads: a value nested deeper is not JSON to it.
const maxNesting = 10000

// Encode checks the call as Validate does and returns its JSON as a store writes it: the
// bytes json.Marshal gives, made in one pass over the arguments.
func (c *Call) Encode() ([]byte, error) {
	return c.AppendEncoded(nil)
}

// AppendEncoded is Encode appending to dst, which a caller may reuse once it is done with
// the result.
func (c *Call) AppendEncoded(dst []byte) ([]byte, error) {
	n := len(c.Handler) + 32
	for _, a := range c.Args {
		n += len(a) + 1
	}
	for k, v := range c.Kwargs {
		n += len(k) + len(v) + 4
	}
	for k, v := range c.Meta {
		n += len(k) + len(v) + 6
	}
	e := encoder{emit: true, out: slices.Grow(dst, n)}
	if err := c.encode(&e); err != nil {
		return dst, err
	}
	return e.out, nil
}

// encode checks the call and writes its JSON into e (or measures it only): e.size is then
// the bytes of that JSON and e.depth its deepest nesting. The checks and their order are
// Validate's.
func (c *Call) encode(e *encoder) error {
	if err := c.checkHandler(); err != nil {
		return err
	}
	var keys []string
	if len(c.Kwargs) > 0 {
		keys = make([]string, 0, len(c.Kwargs))
		for k := range c.Kwargs {
			keys = append(keys, k)
		}
		slices.Sort(keys) // json.Marshal's order, and the same first error every time
	}
	e.raw(`{"handler":`)
	e.str(c.Handler)
	e.depth = 1
	if len(c.Args) > 0 {
		e.raw(`,"args":[`)
		for i, a := range c.Args {
			if i > 0 {
				e.raw(",")
			}
			d, ok := e.value(a)
			if !ok {
				return invalidf("argument %d of %q is not JSON: %.40q", i, c.Handler, a)
			}
			e.depth = max(e.depth, 2+d)
		}
		e.raw("]")
	}
	if len(keys) > 0 {
		e.raw(`,"kwargs":{`)
		for i, k := range keys {
			if k == "" || !utf8.ValidString(k) {
				return invalidf("keyword argument name %q of %q is empty or not valid UTF-8", k, c.Handler)
			}
			if i > 0 {
				e.raw(",")
			}
			e.str(k)
			e.raw(":")
			v := c.Kwargs[k]
			d, ok := e.value(v)
			if !ok {
				return invalidf("keyword argument %q of %q is not JSON: %.40q", k, c.Handler, v)
			}
			e.depth = max(e.depth, 2+d)
		}
		e.raw("}")
	}
	if len(c.Meta) > 0 {
		if err := c.encodeMeta(e); err != nil {
			return err
		}
	}
	e.raw("}")
	return checkLimits("call of "+c.Handler, e.size, e.depth)
}

// encodeMeta checks the call's metadata against its limits and writes it, names sorted.
func (c *Call) encodeMeta(e *encoder) error {
	if len(c.Meta) > MaxMetaEntries {
		return invalidf("the call of %q has %d metadata entries, more than %d", c.Handler, len(c.Meta), MaxMetaEntries)
	}
	keys := make([]string, 0, len(c.Meta))
	for k := range c.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys) // json.Marshal's order, and the same first error every time
	size := 0
	for _, k := range keys {
		if v := c.Meta[k]; k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return invalidf("metadata %q of %q: the name is empty, or it is not valid UTF-8", k, c.Handler)
		}
		size += len(k) + len(c.Meta[k])
	}
	if size > MaxMetaBytes {
		return invalidf("the metadata of %q is %d bytes, more than %d", c.Handler, size, MaxMetaBytes)
	}
	e.raw(`,"meta":{`)
	for i, k := range keys {
		if i > 0 {
			e.raw(",")
		}
		e.str(k)
		e.raw(":")
		e.str(c.Meta[k])
	}
	e.raw("}")
	e.depth = max(e.depth, 2)
	return nil
}

// checkLimits checks the size and depth of a call or pair of calls as stored; what names it
// in the error.
func checkLimits(what string, size, depth int) error {
	if size > MaxCallSize {
		return invalidf("%s is %d bytes as stored, more than %d", what, size, MaxCallSize)
	}
	if depth > MaxCallDepth {
		return invalidf("%s nests %d levels deep as stored, more than %d", what, depth, MaxCallDepth)
	}
	return nil
}

// checkPair checks a pair of callback calls, each side as a call and both as stored
// together: {"success":…,"failure":…}, one level deeper than its sides.
func checkPair(p *CallbackChoice) error {
	size, depth := len("{}"), 1
	for _, side := range []*Call{p.Success, p.Failure} {
		if side == nil {
			continue
		}
		var e encoder
		if err := side.encode(&e); err != nil {
			return err
		}
		if size > 2 {
			size++ // the comma
		}
		size += len(`"success":`) + e.size // "failure" is as long
		depth = max(depth, 1+e.depth)
	}
	return checkLimits("pair of callbacks", size, depth)
}

// DecodeCall reads data, a call's JSON as stored, as json.Unmarshal reads it into a zero
// Call. The arguments are slices of data, not copies: data must not change afterwards. A
// call as Encode writes it is read in one pass; anything else (a record written by hand,
// say) is left to encoding/json.
func DecodeCall(data []byte) (Call, error) {
	if c, ok := decodeStored(data); ok {
		return c, nil
	}
	var c Call
	if err := json.Unmarshal(data, &c); err != nil {
		return Call{}, err
	}
	return c, nil
}

// decodeStored reads a call laid out as Encode writes it: the handler, then the arguments,
// then the keyword arguments, nothing between the tokens of the call itself, and names with
// nothing escaped. It reports false for anything else, which json.Unmarshal may still read
// (or reject).
func decodeStored(data []byte) (c Call, ok bool) {
	const head = `{"handler":`
	if !bytes.HasPrefix(data, []byte(head)) {
		return Call{}, false
	}
	c.Handler, ok = plainString(data, len(head))
	if !ok {
		return Call{}, false
	}
	i := len(head) + len(c.Handler) + 2
	s := scanner{src: data}
	// A value sits two levels deep in the call: the call itself and its list or object of
	// arguments count towards encoding/json's limit.
	const limit = maxNesting - 2
	if rest := data[i:]; bytes.HasPrefix(rest, []byte(`,"args":[`)) {
		i += len(`,"args":[`)
		for {
			end, _, ok := s.value(i, limit)
			if !ok {
				return Call{}, false
			}
			// Capped, so that a handler appending to one argument cannot write over the next.
			c.Args = append(c.Args, json.RawMessage(data[i:end:end]))
			i = end + 1
			if end < len(data) && data[end] == ']' {
				break
			}
			if end >= len(data) || data[end] != ',' {
				return Call{}, false
			}
		}
	}
	if rest := data[i:]; bytes.HasPrefix(rest, []byte(`,"kwargs":{`)) {
		c.Kwargs = make(map[string]json.RawMessage)
		if i, ok = members(data, i+len(`,"kwargs":{`), func(k string, at int) (int, bool) {
			end, _, ok := s.value(at, limit)
			if ok {
				c.Kwargs[k] = json.RawMessage(data[at:end:end])
			}
			return end, ok
		}); !ok {
			return Call{}, false
		}
	}
	if rest := data[i:]; bytes.HasPrefix(rest, []byte(`,"meta":{`)) {
		c.Meta = make(map[string]string)
		if i, ok = members(data, i+len(`,"meta":{`), func(k string, at int) (int, bool) {
			v, ok := plainString(data, at)
			if ok {
				c.Meta[k] = v
			}
			return at + len(v) + 2, ok
		}); !ok {
			return Call{}, false
		}
	}
	if i != len(data)-1 || data[i] != '}' {
		return Call{}, false
	}
	return c, true
}

// members reads the members of an object laid out as Encode writes it, from its first name at
// data[i] to its closing brace: each name plain and followed by ':', then its value, which
// value reads from its first byte, answering the index just past it. It returns the index
// just past the brace, or false for anything else (an empty object included).
func members(data []byte, i int, value func(name string, at int) (end int, ok bool)) (int, bool) {
	for {
		k, ok := plainString(data, i)
		if !ok {
			return 0, false
		}
		i += len(k) + 2
		if i >= len(data) || data[i] != ':' {
			return 0, false
		}
		end, ok := value(k, i+1)
		if !ok || end >= len(data) {
			return 0, false
		}
		switch data[end] {
		case '}':
			return end + 1, true
		case ',':
			i = end + 1
		default:
			return 0, false
		}
	}
}

// plainString returns the contents of the JSON string at data[i] when it has nothing
// escaped and is valid UTF-8: as json.Unmarshal reads it.
func plainString(data []byte, i int) (string, bool) {
	if i >= len(data) || data[i] != '"' {
		return "", false
	}
	end := i + 1 + bytes.IndexByte(data[i+1:], '"')
	if end <= i {
		return "", false
	}
	s := data[i+1 : end]
	for _, b := range s {
		if b < 0x20 || b == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(s) {
		return "", false // encoding/json would replace the invalid bytes
	}
	return string(s), true
}

// encoder writes a call's JSON as json.Marshal does, or, when emit is false, only measures
// it: size is its length and depth its deepest nesting so far.
type encoder struct {
	emit  bool
	out   []byte
	size  int
	depth int
	stack []byte // scratch for the scanner, kept between values
}

// raw writes s, JSON already.
func (e *encoder) raw(s string) {
	e.size += len(s)
	if e.emit {
		e.out = append(e.out, s...)
	}
}

// str writes s as a JSON string. Names are short and mostly plain; others go through
// encoding/json, which escapes them as json.Marshal does.
func (e *encoder) str(s string) {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f || htmlOrQuote[b] {
			q, _ := json.Marshal(s) // a string always encodes
			e.size += len(q)
			if e.emit {
				e.out = append(e.out, q...)
			}
			return
		}
	}
	e.size += len(s) + 2
	if e.emit {
		e.out = append(e.out, '"')
		e.out = append(e.out, s...)
		e.out = append(e.out, '"')
	}
}

// htmlOrQuote marks the printable ASCII bytes json.Marshal escapes in a string.
var htmlOrQuote = [256]bool{'"': true, '\\': true, '<': true, '>': true, '&': true}

// value writes src, one JSON value with optional spaces around it, as json.Marshal writes a
// json.RawMessage: compacted, with '<', '>', '&', U+2028 and U+2029 escaped. It reports
// whether src is JSON, as json.Valid does, and the deepest nesting of arrays and objects in
// it.
func (e *encoder) value(src []byte) (depth int, ok bool) {
	s := scanner{src: src, e: e, stack: e.stack}
	e.size += len(src) // the cuts below add and take away from it
	i := s.space(0)
	end, depth, ok := s.value(i, maxNesting)
	e.stack = s.stack
	if !ok || s.space(end) != len(src) {
		return 0, false
	}
	if e.emit {
		e.out = append(e.out, src[s.start:]...)
	}
	return depth, true
}

// scanner reads JSON values in src. With an encoder, it also writes what it reads there,
// compacted and escaped as json.Marshal writes a json.RawMessage; without one it only
// checks.
type scanner struct {
	src   []byte
	e     *encoder
	start int    // src[start:] is not written yet
	stack []byte // scratch, kept between values
	// Where each stop byte of a long run is next in src (see nextStop), once searched; zero
	// before, which is always before the place a search starts from.
	next [len(writerStops)]int
}

// cut replaces src[i:j] with repl in what is written.
func (s *scanner) cut(i, j int, repl string) {
	if s.e == nil {
		return
	}
	if s.e.emit {
		s.e.out = append(s.e.out, s.src[s.start:i]...)
		s.e.out = append(s.e.out, repl...)
	}
	s.e.size += len(repl) - (j - i)
	s.start = j
}

// space skips the spaces at i, which are not written, and returns where they end.
func (s *scanner) space(i int) int {
	j := i
	for j < len(s.src) && isSpace(s.src[j]) {
		j++
	}
	if j > i {
		s.cut(i, j, "")
	}
	return j
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// value reads the JSON value that starts at i (no space before it) and returns where it
// ends and its deepest nesting. It fails on anything json.Valid rejects, nesting deeper
// than limit included.
func (s *scanner) value(i, limit int) (end, depth int, ok bool) {
	src := s.src
	s.stack = s.stack[:0] // '{' and '[' of the arrays and objects i is in
	for {
		// A value starts at i.
		if i >= len(src) {
			return i, 0, false
		}
		switch b := src[i]; b {
		case '{', '[':
			s.stack = append(s.stack, b)
			if len(s.stack) > limit {
				return i, 0, false
			}
			depth = max(depth, len(s.stack))
			i = s.space(i + 1)
			if i < len(src) && src[i] == b+2 { // '}' and ']' follow '{' and '[' by two
				s.stack = s.stack[:len(s.stack)-1]
				i++
				break // an empty one: a whole value
			}
			if b == '{' {
				if i, ok = s.key(i); !ok {
					return i, 0, false
				}
			}
			continue
		case '"':
			if i, ok = s.str(i); !ok {
				return i, 0, false
			}
		case 't':
			if i, ok = literal(src, i, "true"); !ok {
				return i, 0, false
			}
		case 'f':
			if i, ok = literal(src, i, "false"); !ok {
				return i, 0, false
			}
		case 'n':
			if i, ok = literal(src, i, "null"); !ok {
				return i, 0, false
			}
		default:
			if i, ok = number(src, i); !ok {
				return i, 0, false
			}
		}
		// A whole value ends at i: close what it ends, or go on to the next element.
		for {
			if len(s.stack) == 0 {
				return i, depth, true
			}
			i = s.space(i)
			if i >= len(src) {
				return i, 0, false
			}
			top := s.stack[len(s.stack)-1]
			if src[i] == top+2 {
				s.stack = s.stack[:len(s.stack)-1]
				i++
				continue
			}
			if src[i] != ',' {
				return i, 0, false
			}
			i = s.space(i + 1)
			if top == '{' {
				if i, ok = s.key(i); !ok {
					return i, 0, false
				}
			}
			break
		}
	}
}

// key reads an object's key at i and the colon after it, and returns where its value starts.
func (s *scanner) key(i int) (int, bool) {
	if i >= len(s.src) || s.src[i] != '"' {
		return i, false
	}
	i, ok := s.str(i)
	if !ok {
		return i, false
	}
	i = s.space(i)
	if i >= len(s.src) || s.src[i] != ':' {
		return i, false
	}
	return s.space(i + 1), true
}

// str reads the string that starts at i and returns where it ends.
func (s *scanner) str(i int) (int, bool) {
	src := s.src
	stops := &stopsReader
	if s.e != nil {
		stops = &stopsWriter
	}
	for j := i + 1; ; {
		j = s.nextStop(j, stops)
		if j >= len(src) {
			return j, false
		}
		switch b := src[j]; {
		case b == '"':
			return j + 1, true
		case b == '\\':
			if j+1 >= len(src) {
				return j, false
			}
			switch src[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(src) || !isHex(src[j+2]) || !isHex(src[j+3]) || !isHex(src[j+4]) || !isHex(src[j+5]) {
					return j, false
				}
				j += 6
			default:
				return j, false
			}
		case b < 0x20:
			return j, false
		case b == 0xE2:
			// U+2028 and U+2029 (E2 80 A8, E2 80 A9) are escaped; other characters are not.
			if j+2 < len(src) && src[j+1] == 0x80 && src[j+2]&^1 == 0xA8 {
				s.cut(j, j+3, lineSeparators[src[j+2]&1])
				j += 3
			} else {
				j++
			}
		default: // '<', '>', '&'
			s.cut(j, j+1, htmlEscapes[b])
			j++
		}
	}
}

// How json.Marshal escapes the bytes it escapes in a json.RawMessage.
var (
	htmlEscapes    = [256]string{'<': `\u003c`, '>': `\u003e`, '&': `\u0026`}
	lineSeparators = [2]string{`\u2028`, `\u2029`}
)

func isHex(b byte) bool { return isDigit(b) || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' }

// literal reads word (true, false or null) at i.
func literal(src []byte, i int, word string) (int, bool) {
	if !bytes.HasPrefix(src[i:], []byte(word)) {
		return i, false
	}
	return i + len(word), true
}

// number reads the number that starts at i: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func number(src []byte, i int) (int, bool) {
	if src[i] == '-' {
		i++
	}
	switch {
	case i >= len(src):
		return i, false
	case src[i] == '0':
		i++
	case '1' <= src[i] && src[i] <= '9':
		i = digits(src, i+1)
	default:
		return i, false
	}
	if i < len(src) && src[i] == '.' {
		if i+1 >= len(src) || !isDigit(src[i+1]) {
			return i, false
		}
		i = digits(src, i+1)
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= len(src) || !isDigit(src[i]) {
			return i, false
		}
		i = digits(src, i)
	}
	return i, true
}

func digits(src []byte, i int) int {
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	return i
}

// stopsReader marks the bytes that end a run of plain bytes in a string for a reader: '"',
// '\\' and control bytes. stopsWriter adds those json.Marshal escapes in a
// json.RawMessage: '<', '>', '&' and the first byte of U+2028 and U+2029.
var stopsReader, stopsWriter = func() (r, w [256]bool) {
	for b := range 0x20 {
		r[b] = true
	}
	r['"'], r['\\'] = true, true
	w = r
	w['<'], w['>'], w['&'], w[0xE2] = true, true, true, true
	return r, w
}()

// The stops other than control bytes, which a long run is searched for with
// bytes.IndexByte: many bytes at a time, where a table is one.
const (
	readerStops = "\"\\"
	writerStops = "\"\\<>&\xE2"
)

// nextStop returns the index of the first byte at or after j, in a string, that stops
// marks (stopsReader or stopsWriter), or len(s.src).
func (s *scanner) nextStop(j int, stops *[256]bool) int {
	src := s.src
	// The first bytes one by one: in escaped text the next stop is near, and a search
	// would cost more than it saves.
	for end := min(len(src), j+16); j < end; j++ {
		if stops[src[j]] {
			return j
		}
	}
	if j == len(src) {
		return j
	}
	// A long run: where each stop byte is next, kept from search to search (a search from
	// an earlier place found the first one at or after j too), so that every byte of src is
	// searched once for each, whatever the number of stops.
	bytes := readerStops
	if stops == &stopsWriter {
		bytes = writerStops
	}
	stop := len(src)
	for k := range len(bytes) {
		if s.next[k] < j {
			s.next[k] = indexFrom(src, j, bytes[k])
		}
		stop = min(stop, s.next[k])
	}
	return j + controlIndex(src[j:stop])
}

// indexFrom returns the index of the first b in src at or after j, or len(src).
func indexFrom(src []byte, j int, b byte) int {
	if i := bytes.IndexByte(src[j:], b); i >= 0 {
		return j + i
	}
	return len(src)
}

// controlIndex returns the index of the first control byte (below 0x20) in b, or len(b).
// It looks at eight bytes at a time: a byte of w-0x2020…20 keeps its top bit from ^w only
// where that byte of w is below 0x20, and the lowest such bit is in the first one (the bit
// trick of "Bit Twiddling Hacks" that finds a zero byte).
func controlIndex(b []byte) int {
	const ones, tops = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if m := (w - ones*0x20) &^ w & tops; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 {
			return i
		}
	}
	return len(b)
}
