package redisstore

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/zasync/zasync/persistence"
)

// The fast paths for a call without arguments write what encoding/json writes and read what
// it reads, and hand everything else to it.
func TestPlainCallMatchesJSON(t *testing.T) {
	handlers := []string{"noop", "a.b-c_d", "zasync.handleInterrupt", `with"quote`, `back\slash`, "tab\there",
		"<html>", "a&b", "é", "\u2028", "x\x7f", strings.Repeat("h", 200)}
	var inputs []string
	for _, h := range handlers {
		b, err := json.Marshal(persistence.Call{Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
		b, _ = json.Marshal(persistence.Call{Handler: h, Args: []json.RawMessage{json.RawMessage(`1`)}})
		inputs = append(inputs, string(b))
	}
	inputs = append(inputs, `{"handler":"x","args":[]}`, `{"handler":"x"} `, ` {"handler":"x"}`, `{"handler":"x"}}`,
		`{"handler":"x\"}`, `{"handler":""}`, `{"handler":"a"b"}`)
	for _, in := range inputs {
		var fast persistence.Call
		if !decodePlainCall(in, &fast) {
			continue
		}
		var slow persistence.Call
		if err := json.Unmarshal([]byte(in), &slow); err != nil {
			t.Errorf("%s: the fast path read %+v, encoding/json fails: %v", in, fast, err)
			continue
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s: the fast path read %+v, encoding/json %+v", in, fast, slow)
		}
	}
	for _, h := range handlers {
		for _, call := range []persistence.Call{{Handler: h}, {Handler: h, Args: []json.RawMessage{json.RawMessage(`1`)}}} {
			want, _ := json.Marshal(call)
			if got := encodeCall(&call); got != string(want) {
				t.Errorf("encodeCall(%+v) = %s, encoding/json writes %s", call, got, want)
			}
		}
	}
	var c persistence.Call
	if !decodePlainCall(`{"handler":"noop"}`, &c) || c.Handler != "noop" {
		t.Fatalf("the common case is not taken: %+v", c)
	}
}

// A job read from its fields in any order, as a script answers them, is the job read from
// its hash.
func TestDecodePairsMatchesDecodeJob(t *testing.T) {
	f := newFixture(t)
	j := f.running()
	h := f.m.HKeys
	fields, err := h(f.s.k.job("q", j.ID))
	if err != nil {
		t.Fatal(err)
	}
	hash := map[string]string{}
	var kv []string
	for _, name := range fields {
		v := f.m.HGet(f.s.k.job("q", j.ID), name)
		hash[name] = v
		kv = append(kv, name, v)
	}
	fromMap, ok1, err1 := decodeJob(j.Ref, hash)
	fromPairs, ok2, err2 := decodePairsCall(j.Ref, kv, nil)
	if err1 != nil || err2 != nil || !ok1 || !ok2 || !reflect.DeepEqual(fromMap, fromPairs) {
		t.Fatalf("decodeJob %+v %v %v\ndecodePairs %+v %v %v", fromMap, ok1, err1, fromPairs, ok2, err2)
	}
	if _, _, err := decodePairsCall(j.Ref, kv[:len(kv)-1], nil); err == nil {
		t.Fatalf("an odd number of values decoded")
	}
	if _, ok, err := decodePairsCall(j.Ref, nil, nil); ok || err != nil {
		t.Fatalf("no fields: %v %v, want not found", ok, err)
	}
}
