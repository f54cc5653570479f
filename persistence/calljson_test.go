package persistence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceValidate is Validate as it was written with encoding/json alone: each argument
// checked by json.Valid, then the call marshalled and measured. The one-pass code must give
// the same answers.
func referenceValidate(c *Call) error {
	if err := c.checkHandler(); err != nil { // names are not what this compares
		return err
	}
	for i, a := range c.Args {
		if !json.Valid(a) {
			return invalidf("argument %d of %q is not JSON: %.40q", i, c.Handler, a)
		}
	}
	for k, v := range c.Kwargs {
		if k == "" || !utf8.ValidString(k) {
			return invalidf("keyword argument name %q of %q is empty or not valid UTF-8", k, c.Handler)
		}
		if !json.Valid(v) {
			return invalidf("keyword argument %q of %q is not JSON: %.40q", k, c.Handler, v)
		}
	}
	if len(c.Meta) > 0 {
		if len(c.Meta) > MaxMetaEntries {
			return invalidf("the call of %q has %d metadata entries, more than %d", c.Handler, len(c.Meta), MaxMetaEntries)
		}
		keys := slices.Sorted(maps.Keys(c.Meta))
		size := 0
		for _, k := range keys {
			if k == "" || !utf8.ValidString(k) || !utf8.ValidString(c.Meta[k]) {
				return invalidf("metadata %q of %q: the name is empty, or it is not valid UTF-8", k, c.Handler)
			}
			size += len(k) + len(c.Meta[k])
		}
		if size > MaxMetaBytes {
			return invalidf("the metadata of %q is %d bytes, more than %d", c.Handler, size, MaxMetaBytes)
		}
	}
	if len(c.Args) == 0 && len(c.Kwargs) == 0 {
		return nil
	}
	return checkStored("call of "+c.Handler, c)
}

// The JSON a program might give as arguments, with what encoding/json changes when it stores
// it (spaces, HTML characters, line separators) and what it refuses.
var jsonSeeds = []string{
	`1`, `-0.5e+10`, `0`, `-0`, `1E5`, `"x"`, `""`, `null`, `true`, `false`, `[]`, `{}`,
	`{"a":[1,2,{"b":null}]}`, ` [ 1 , "x" , { "k" : [ ] } ] `, "\t\n\r1\n",
	`"<p>&amp;</p>"`, "\"line\u2028sep\u2029\"", "\"\xe2\x80\"", "\"\xe2\"", `"\u2028 \" \\ \/ \b\f\n\r\t \uABcd"`,
	"\"\xff\xfe invalid UTF-8\"", `"é"`, `{"<":">"}`,
	`01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`, `tru`, `truex`, `nul`, `[1,]`, `{"a":1,}`, `{"a"}`, `{1:2}`,
	`[1 2]`, `"unterminated`, "\"ctrl\x01\"", `"\x"`, `"\u12"`, `"\u12G4"`, `]`, `[`, `{`, ``, ` `,
	`[1]]`, `{}}`, `"a" "b"`, `123456789012345678901234567890`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`"` + strings.Repeat("x", 10240) + `"`,
	`"` + strings.Repeat("abc<def", 300) + `"`,
	// Stops past the first bytes of a string, found by the searches of a long run.
	`"` + strings.Repeat("a", 20) + `\n` + strings.Repeat("b", 20) + `<` + strings.Repeat("c", 30) + `&>"`,
	`"` + strings.Repeat("a", 40) + "\x01" + strings.Repeat("b", 40) + `"`,
	`"` + strings.Repeat("a", 40) + "\x1f\"",
	`["` + strings.Repeat("a", 40) + `","` + strings.Repeat("b", 40) + `<","` + strings.Repeat("\\\"", 30) + `"]`,
	`{"` + strings.Repeat("k", 50) + `":"` + strings.Repeat("v", 50) + "\u2028\u2029\xe2\x82\xac" + `",` +
		`"` + strings.Repeat("k", 60) + `>":[` + "\"\xe2\x80\"" + `]}`,
	`"` + strings.Repeat("a", 30) + `\u00` + `"`,
	`"` + strings.Repeat("a", 30) + `\`,
	`"` + strings.Repeat("a", 30),
	`["` + strings.Repeat("a", 30) + `"` + strings.Repeat(" ", 30) + `,` + strings.Repeat("\n", 20) + `"` + strings.Repeat("b", 30) + `"]`,
}

// Validate and Encode give what encoding/json gives: the same errors as the reference, and
// the bytes json.Marshal writes; DecodeCall reads back what json.Unmarshal reads.
func FuzzCallEncode(f *testing.F) {
	for i, s := range jsonSeeds {
		f.Add("h", s, jsonSeeds[(i+7)%len(jsonSeeds)], "k", jsonSeeds[(i+3)%len(jsonSeeds)])
	}
	f.Add("émettre<&>", `1`, ``, "<key>\u2028", `2`)
	f.Add("h", strings.Repeat("[", 998)+strings.Repeat("]", 998), ``, "", ``)
	f.Add("h", strings.Repeat("[", 999)+strings.Repeat("]", 999), ``, "", ``)
	f.Fuzz(func(t *testing.T, handler, arg1, arg2, key, value string) {
		c := Call{Handler: handler}
		for _, a := range []string{arg1, arg2} {
			if a != "" {
				c.Args = append(c.Args, json.RawMessage(a))
			}
		}
		if key != "" || value != "" {
			c.Kwargs = map[string]json.RawMessage{key: json.RawMessage(value)}
		}
		checkEncoding(t, &c)
		// The same strings as metadata, with the arguments and alone.
		c.Meta = map[string]string{key: value, "k2": arg1}
		checkEncoding(t, &c)
		checkEncoding(t, &Call{Handler: handler, Meta: c.Meta})
	})
}

// checkEncoding compares Validate, Encode and DecodeCall with encoding/json for c.
func checkEncoding(t *testing.T, c *Call) {
	t.Helper()
	want := referenceValidate(c)
	got := c.Validate()
	if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
		t.Fatalf("Validate(%.300q): %v, encoding/json says %v", c.String(), got, want)
	}
	enc, err := c.Encode()
	if (err == nil) != (want == nil) {
		t.Fatalf("Encode: %v, Validate: %v", err, want)
	}
	if err != nil {
		return
	}
	marshalled, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("json.Marshal of a valid call: %v", err)
	}
	if !bytes.Equal(enc, marshalled) {
		t.Fatalf("Encode wrote\n%.300q\njson.Marshal writes\n%.300q", enc, marshalled)
	}
	checkDecoding(t, enc)
}

// checkDecoding compares DecodeCall with json.Unmarshal for data.
func checkDecoding(t *testing.T, data []byte) {
	t.Helper()
	var want Call
	werr := json.Unmarshal(data, &want)
	got, err := DecodeCall(data)
	if (err == nil) != (werr == nil) {
		t.Fatalf("DecodeCall(%.300q): %v, json.Unmarshal: %v", data, err, werr)
	}
	if err != nil {
		if !reflect.DeepEqual(got, Call{}) {
			t.Fatalf("DecodeCall(%.300q) failed but gave %.300v", data, got)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeCall(%.300q) = %.300v, json.Unmarshal reads %.300v", data, got, want)
	}
}

// DecodeCall reads whatever a record may hold as json.Unmarshal does: what Encode writes
// in one pass, anything else through encoding/json.
func FuzzDecodeCall(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add(`{"handler":"h","args":[` + s + `]}`)
		f.Add(`{"handler":"h","args":[1,` + s + `],"kwargs":{"k":` + s + `}}`)
	}
	for _, s := range []string{
		`{"handler":"h"}`, `{"handler":"h","args":[]}`, `{"handler":"h","kwargs":{}}`, `{"handler":"h","args":null}`,
		`{"handler":"h","args":[1],"args":[2]}`, `{"handler":"h","kwargs":{"a":1,"a":2}}`, `{"Handler":"h","ARGS":[1]}`,
		`{"handler":"h", "args":[1]}`, `{"handler":"h","args":[1] }`, `{"handler":"h","args":[ 1]}`, `{"handler":"h"} `,
		`{"handler":"h\u0041","args":[1]}`, "{\"handler\":\"h\xff\",\"args\":[1]}", `{"handler":"h","kwargs":{"\u006b":1}}`,
		`{"handler":"h","other":1,"args":[1]}`, `{"args":[1],"handler":"h"}`, `{"handler":1}`, `{"handler":"h","args":[1]}x`,
		`{"handler":"h","args":[1],"kwargs":{"k":[` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `]}}`,
		`{"handler":"h","args":[` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `]}`,
		`{"handler":"h","args":[` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `]}`,
		`{"handler":"h","args":["` + strings.Repeat("x", 10240) + `"]}`, `null`, `[]`, ``,
		`{"handler":"h","meta":{"a":"b"}}`, `{"handler":"h","args":[1],"kwargs":{"k":2},"meta":{"a":"b","c":""}}`,
		`{"handler":"h","meta":{}}`, `{"handler":"h","meta":{"a":1}}`, `{"handler":"h","meta":{"a":"A"}}`,
		`{"handler":"h","meta":{"a":"b",}}`, `{"handler":"h","meta":{"a":"b"},"args":[1]}`, `{"handler":"h","meta":{"a""b"}}`,
		`{"handler":"h","meta":{"a":"b"}`, `{"handler":"h","meta":null}`, `{"handler":"h","meta":{"a":"b","a":"c"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		checkDecoding(t, []byte(data))
	})
}

// The seeds alone, run by go test without -fuzz, and a few calls the fuzz targets cannot
// build (several keyword arguments, whose order json.Marshal sorts).
func TestCallEncodingMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range jsonSeeds {
		checkEncoding(t, &Call{Handler: "h", Args: []json.RawMessage{json.RawMessage(s)}})
		checkEncoding(t, &Call{Handler: "h", Kwargs: map[string]json.RawMessage{"k": json.RawMessage(s)}})
	}
	checkEncoding(t, &Call{Handler: "h", Kwargs: map[string]json.RawMessage{
		"b": json.RawMessage(`2`), "a": json.RawMessage(` [1] `), "é": json.RawMessage(`"<"`), "A": json.RawMessage(`{}`),
	}})
	checkEncoding(t, &Call{Handler: "h", Args: []json.RawMessage{json.RawMessage(`1`), nil}})
	checkEncoding(t, &Call{Handler: "h", Args: []json.RawMessage{}, Kwargs: map[string]json.RawMessage{}})
}

// A call's arguments decoded from a record share its bytes but cannot be appended to over
// each other: a handler that appends to one argument leaves the next as it was.
func TestDecodeCallArgumentsAreCapped(t *testing.T) {
	t.Parallel()
	c, err := DecodeCall([]byte(`{"handler":"h","args":[1,2],"kwargs":{"a":3,"b":4}}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(c.Args[0], '9')
	_ = append(c.Kwargs["a"], '9')
	if string(c.Args[1]) != "2" || string(c.Kwargs["b"]) != "4" {
		t.Fatalf("appending to one argument changed the next: %s", c.String())
	}
}

// The pair of callbacks is checked as stored, as encoding/json measures it.
func TestCheckPairMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	side := func(arg string) *Call { return &Call{Handler: "h<", Args: []json.RawMessage{json.RawMessage(arg)}} }
	for _, p := range []CallbackChoice{
		{}, {Success: side(`1`)}, {Failure: side(` "<&>" `)}, {Success: side(`[1]`), Failure: side(`{"a":[{}]}`)},
		{Success: &Call{Handler: "h"}}, {Success: side(string(nested(MaxCallDepth - 3)))}, {Failure: side(string(nested(MaxCallDepth - 2)))},
	} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		want := checkLimits("pair of callbacks", len(b), jsonDepth(b))
		for _, c := range []*Call{p.Success, p.Failure} {
			if c != nil && c.Validate() != nil {
				want = c.Validate()
			}
		}
		if got := checkPair(&p); (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
			t.Fatalf("checkPair(%s): %v, encoding/json says %v", b, got, want)
		}
	}
}

func BenchmarkCallPayload(b *testing.B) {
	arg := json.RawMessage(`"` + strings.Repeat("x", 10238) + `"`)
	c := Call{Handler: "noop", Args: []json.RawMessage{arg}}
	stored, _ := c.Encode()
	b.Run("Validate", func(b *testing.B) {
		b.SetBytes(int64(len(arg)))
		for b.Loop() {
			if err := c.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Encode", func(b *testing.B) {
		b.SetBytes(int64(len(arg)))
		for b.Loop() {
			if _, err := c.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeCall", func(b *testing.B) {
		b.SetBytes(int64(len(arg)))
		for b.Loop() {
			if _, err := DecodeCall(stored); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(arg)))
		for b.Loop() {
			if err := referenceValidate(&c); err != nil {
				b.Fatal(err)
			}
			var back Call
			if err := json.Unmarshal(stored, &back); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// checkStored is how a call was checked before the one-pass code, with encoding/json: the JSON
// of v, a call or a pair of calls as a store writes it, against MaxCallDepth and MaxCallSize.
// what names it in the error.
func checkStored(what string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return invalidf("%s does not encode to JSON: %v", what, err)
	}
	if len(b) > MaxCallSize {
		return invalidf("%s is %d bytes as stored, more than %d", what, len(b), MaxCallSize)
	}
	if d := jsonDepth(b); d > MaxCallDepth {
		return invalidf("%s nests %d levels deep as stored, more than %d", what, d, MaxCallDepth)
	}
	return nil
}

// jsonDepth returns the deepest nesting of arrays and objects in b, valid JSON.
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++ // the escaped byte cannot end the string
				}
			}
		case '[', '{':
			depth++
			deepest = max(deepest, depth)
		case ']', '}':
			depth--
		}
	}
	return deepest
}

// Metadata is encoded as json.Marshal writes it and read back as json.Unmarshal reads it;
// its limits are checked.
func TestCallMetaEncoding(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", MaxMetaBytes)
	many := map[string]string{}
	for i := range MaxMetaEntries + 1 {
		many[fmt.Sprint("k", i)] = "v"
	}
	for _, c := range []Call{
		{Handler: "h", Meta: map[string]string{"traceparent": "00-abc-def-01", "request-id": "<&>\u2028"}},
		{Handler: "h", Args: []json.RawMessage{json.RawMessage(`1`)}, Kwargs: map[string]json.RawMessage{"k": json.RawMessage(`2`)}, Meta: map[string]string{"a": ""}},
		{Handler: "h", Meta: map[string]string{"": "x"}},
		{Handler: "h", Meta: map[string]string{"a": "\xff"}},
		{Handler: "h", Meta: map[string]string{"a": big}},
		{Handler: "h", Meta: map[string]string{"a": big[1:]}},
		{Handler: "h", Meta: many},
	} {
		checkEncoding(t, &c)
	}
}
