package storetest

import (
	"maps"
	"testing"

	"github.com/zasync/zasync/persistence"
)

// Group "Meta": a call's metadata is stored and read back by every way a job is written and
// read: Put, PutMany, Create with AddChild, AddCallback, Get and Claim, with arguments and
// without.
func init() {
	register("Meta",
		testCase{"KeptEverywhere", testMetaKeptEverywhere},
	)
}

func testMetaKeptEverywhere(t *testing.T, h Harness) {
	b := setup(t, h)
	meta := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "request-id": "<é&>"}
	with := func(c persistence.Call) persistence.Call {
		c.Meta = maps.Clone(meta)
		return c
	}
	check := func(what string, j *persistence.Job) {
		t.Helper()
		if !maps.Equal(j.Call.Meta, meta) {
			t.Fatalf("%s: metadata %v, want %v", what, j.Call.Meta, meta)
		}
		if got := b.get(j.Ref); !maps.Equal(got.Call.Meta, meta) {
			t.Fatalf("%s read back: metadata %v, want %v", what, got.Call.Meta, meta)
		}
	}
	plain := b.put(Queue, persistence.JobSpec{Call: with(call("h"))})
	check("Put without arguments", plain)
	args := b.put(Queue, persistence.JobSpec{Call: with(call("h", 1, "x"))})
	check("Put with arguments", args)
	many, err := b.s.PutMany(b.ctx, Queue, []persistence.JobSpec{{Call: with(call("h"))}, {Call: with(call("h", 2))}})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range many {
		check("PutMany", j)
	}
	parent, err := b.s.Create(b.ctx, Queue, persistence.JobSpec{Call: with(call("zasync.serial"))})
	if err != nil {
		t.Fatal(err)
	}
	check("Create", parent)
	child, _, err := b.s.AddChild(b.ctx, parent.Ref, persistence.JobSpec{Call: with(call("h"))})
	if err != nil {
		t.Fatal(err)
	}
	check("AddChild", child)
	cb, _, err := b.s.AddCallback(b.ctx, plain.Ref, persistence.JobSpec{Call: with(call("h"))})
	if err != nil {
		t.Fatal(err)
	}
	check("AddCallback", cb)
	for _, j := range b.claim(b.dispatcher(), 10, nil) {
		if !maps.Equal(j.Call.Meta, meta) {
			t.Fatalf("claimed %s: metadata %v, want %v", j.Ref, j.Call.Meta, meta)
		}
	}
}
