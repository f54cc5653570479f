package persistence

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCallValidate(t *testing.T) {
	t.Parallel()
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, tc := range []struct {
		name string
		call Call
		ok   bool
	}{
		{"plain", Call{Handler: "send_mail"}, true},
		{"dotted with args", Call{Handler: "billing.charge", Args: []json.RawMessage{raw(`1`), raw(`"x"`), raw(`{"a":[1,2]}`), raw(`null`)}}, true},
		{"kwargs", Call{Handler: "h", Kwargs: map[string]json.RawMessage{"k": raw(`true`)}}, true},
		{"unicode handler", Call{Handler: "émettre"}, true},
		{"longest handler", Call{Handler: strings.Repeat("h", MaxHandlerLen)}, true},
		{"empty handler", Call{}, false},
		{"empty handler with args", Call{Args: []json.RawMessage{raw(`1`)}}, false},
		{"handler too long", Call{Handler: strings.Repeat("h", MaxHandlerLen+1)}, false},
		{"newline", Call{Handler: "a\nb"}, false},
		{"NUL", Call{Handler: "a\x00b"}, false},
		{"tab", Call{Handler: "a\tb"}, false},
		{"DEL", Call{Handler: "a\x7fb"}, false},
		{"leading space", Call{Handler: " h"}, false},
		{"trailing space", Call{Handler: "h "}, false},
		{"arg not JSON", Call{Handler: "h", Args: []json.RawMessage{raw(`1`), raw(`{`)}}, false},
		{"arg bare word", Call{Handler: "h", Args: []json.RawMessage{raw(`forty`)}}, false},
		{"empty arg", Call{Handler: "h", Args: []json.RawMessage{raw(``)}}, false},
		{"kwarg not JSON", Call{Handler: "h", Kwargs: map[string]json.RawMessage{"k": raw(`'single'`)}}, false},
		{"empty kwarg name", Call{Handler: "h", Kwargs: map[string]json.RawMessage{"": raw(`1`)}}, false},
	} {
		err := tc.call.Validate()
		if tc.ok && err != nil {
			t.Fatalf("%s: want valid, got %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: want ErrInvalid, got %v", tc.name, err)
		}
	}
}

func TestCallString(t *testing.T) {
	t.Parallel()
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, tc := range []struct {
		call Call
		want string
	}{
		{Call{Handler: "h"}, "h()"},
		{Call{Handler: "mod.func", Args: []json.RawMessage{raw(`1`)}, Kwargs: map[string]json.RawMessage{"k": raw(`2`)}}, "mod.func(1, k=2)"},
		{Call{Handler: "h", Args: []json.RawMessage{raw(`1`), raw(`"x"`), raw(`[1,2]`)}}, `h(1, "x", [1,2])`},
		{Call{Handler: "h", Kwargs: map[string]json.RawMessage{"b": raw(`null`), "a": raw(`true`), "c": raw(`{"x":1}`)}}, `h(a=true, b=null, c={"x":1})`},
	} {
		if got := tc.call.String(); got != tc.want {
			t.Fatalf("String: want %q, got %q", tc.want, got)
		}
	}
}

func TestCallIsSystem(t *testing.T) {
	t.Parallel()
	for handler, want := range map[string]bool{
		HandlerHandleInterrupt: true,
		HandlerResumeCallbacks: true,
		HandlerFail:            true,
		"zasync.other":         true,
		"zasyncish":            false,
		"user.zasync.x":        false,
		"h":                    false,
	} {
		c := Call{Handler: handler}
		if c.IsSystem() != want {
			t.Fatalf("IsSystem(%q): want %v", handler, want)
		}
	}
	if !strings.HasPrefix(HandlerHandleInterrupt, SystemPrefix) || HandlerHandleInterrupt != "zasync.handleInterrupt" {
		t.Fatalf("want the handleInterrupt handler named zasync.handleInterrupt, got %q", HandlerHandleInterrupt)
	}
}

// A Call survives a JSON round trip, arguments included.
func TestCallJSON(t *testing.T) {
	t.Parallel()
	c := Call{Handler: "h", Args: []json.RawMessage{json.RawMessage(`[1,"a"]`)}, Kwargs: map[string]json.RawMessage{"k": json.RawMessage(`{"x":null}`)}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back Call
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if back.String() != c.String() {
		t.Fatalf("want %s after a JSON round trip, got %s", c.String(), back.String())
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("want the round-tripped call valid, got %v", err)
	}
}

func TestCallRejectsInvalidUTF8Names(t *testing.T) {
	for _, c := range []Call{
		{Handler: "h\xda"},
		{Handler: "h", Kwargs: map[string]json.RawMessage{"k\xff": json.RawMessage(`1`)}},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Validate(%q): %v, want ErrInvalid", c.Handler, err)
		}
	}
}

// nested returns a JSON array nested depth levels deep.
func nested(depth int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", depth) + strings.Repeat("]", depth))
}

// What is checked is the call as stored, not each argument alone: an argument that encoding/json
// accepts alone (9,999 levels) but that the stored call nests past every reader's limit is
// refused, and everything accepted reads back.
func TestCallValidateChecksWhatIsStored(t *testing.T) {
	t.Parallel()
	big := json.RawMessage(`"` + strings.Repeat("x", MaxCallSize) + `"`)
	for _, tc := range []struct {
		name string
		spec JobSpec
		want string // in the error; "" means accepted
	}{
		{"argument at the limit", JobSpec{Call: Call{Handler: "h", Args: []json.RawMessage{nested(MaxCallDepth - 2)}}}, ""},
		{"argument past the limit", JobSpec{Call: Call{Handler: "h", Args: []json.RawMessage{nested(MaxCallDepth - 1)}}}, "nests 1001 levels deep as stored"},
		{"argument valid alone", JobSpec{Call: Call{Handler: "h", Args: []json.RawMessage{nested(9999)}}}, "nests 10001 levels deep as stored"},
		{"keyword at the limit", JobSpec{Call: Call{Handler: "h", Kwargs: map[string]json.RawMessage{"k": nested(MaxCallDepth - 2)}}}, ""},
		{"keyword past the limit", JobSpec{Call: Call{Handler: "h", Kwargs: map[string]json.RawMessage{"k": nested(MaxCallDepth - 1)}}}, "nests 1001"},
		{"brackets in strings do not count", JobSpec{Call: Call{Handler: "h", Args: []json.RawMessage{json.RawMessage(`"` + strings.Repeat(`[\"`, 2000) + `"`)}}}, ""},
		{"pair of calls at the limit", JobSpec{Choice: &CallbackChoice{Success: &Call{Handler: "h", Args: []json.RawMessage{nested(MaxCallDepth - 3)}}}}, ""},
		{"pair of calls past the limit", JobSpec{Choice: &CallbackChoice{Failure: &Call{Handler: "h", Args: []json.RawMessage{nested(MaxCallDepth - 2)}}}}, "pair of callbacks nests 1001"},
		{"too big", JobSpec{Call: Call{Handler: "h", Args: []json.RawMessage{big}}}, "more than 16777216"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.spec.Validate()
			if tc.want != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Validate: %v, want ErrInvalid with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			var stored any = &tc.spec.Call
			if tc.spec.Choice != nil {
				stored = tc.spec.Choice
			}
			b, _ := json.Marshal(stored)
			if err := json.Unmarshal(b, stored); err != nil {
				t.Fatalf("accepted, but its stored form does not read back: %v", err)
			}
		})
	}
}
