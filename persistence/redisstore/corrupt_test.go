package redisstore

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/zasync/zasync/persistence"
)

// A job whose record cannot be read whole (here, as an earlier version let a call nested
// 10,001 levels deep be stored) is a job of its own, not a fault of the queue: listings read
// it in part, a claim hands it out with the other jobs, its Corrupt set, and its claimer's
// commit of a failure frees the slot; the field that cannot be read stays as stored. Before,
// the claim took the job and failed as a whole, leaving it and every job claimed with it
// held by an agent that ran nothing, and every listing of the queue failed.
func TestUnreadableRecordIsClaimedAndFailed(t *testing.T) {
	deep := `{"handler":"h","args":[` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `]}`
	for _, tc := range []struct {
		name, field, value string
		scripted           bool // the claim script takes it (else its transaction, which it falls back to)
	}{
		{"deep call", fCall, deep, true}, {"deep call/transaction", fCall, deep, false}, {"call not JSON", fCall, "{nope", true},
		{"status", fStatus, "sideways", true}, {"attempt", fAttempt, "x", true}, {"retry/transaction", fRetry, "[", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.s.noScripts = !tc.scripted
			var ids []string
			for _, h := range []string{"bad", "good"} {
				j, err := f.s.Put(f.ctx, "q", persistence.JobSpec{Call: persistence.Call{Handler: h}})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, j.ID)
			}
			key := f.s.k.job("q", ids[0])
			f.m.HSet(key, tc.field, tc.value)

			listed, err := f.s.GetMany(f.ctx, "q", ids)
			if err != nil || len(listed) != 2 || listed[0] == nil || listed[0].Corrupt == nil || listed[1].Corrupt != nil {
				t.Fatalf("GetMany: %v %v, want the bad job read in part and the good one whole", listed, err)
			}
			jobs, err := f.s.Claim(f.ctx, persistence.ClaimParams{Queue: "q", Dispatcher: "d1", Agent: "main", Size: 3, Start: true})
			if err != nil || len(jobs) != 2 {
				t.Fatalf("Claim: %v %v, want both jobs", jobs, err)
			}
			bad := jobs[slices.IndexFunc(jobs, func(j *persistence.Job) bool { return j.ID == ids[0] })]
			if bad.Corrupt == nil || !slices.Contains(bad.Corrupt.Fields, tc.field) || bad.Status != persistence.StatusActive {
				t.Fatalf("claimed bad job: %+v, want it ACTIVE with Corrupt naming %s", bad, tc.field)
			}
			for _, j := range jobs {
				if j.ID != bad.ID && j.Corrupt != nil {
					t.Fatalf("the good job was claimed with Corrupt set: %v", j.Corrupt)
				}
			}
			done, errs, err := f.s.CommitMany(f.ctx, []persistence.Commit{{Fence: bad.Fence(), Known: bad,
				Outcome: persistence.Outcome{Failure: persistence.NewFailure(bad.Corrupt, ""), Complete: true}}})
			if err != nil || errs[0] != nil {
				t.Fatalf("commit of its failure: %v %v", errs, err)
			}
			if done[0].Status != persistence.StatusCompleted || done[0].Failure.Type != "CorruptRecordError" {
				t.Fatalf("after the commit: %s %+v, want COMPLETED with a CorruptRecordError", done[0].Status, done[0].Failure)
			}
			if held, _ := f.s.AgentJobs(f.ctx, "q", f.owner); slices.Contains(held, bad.ID) {
				t.Fatalf("the failed job still holds a slot: %v", held)
			}
			got, err := f.s.Get(f.ctx, bad.Ref)
			if got == nil || got.Status != persistence.StatusCompleted || got.Failure == nil || !persistence.IsKind(got.Failure, "CorruptRecordError") {
				t.Fatalf("Get after the failure: %+v %v", got, err)
			}
			if tc.field != fStatus && tc.field != fAttempt {
				if v := f.m.HGet(key, tc.field); v != tc.value {
					t.Fatalf("the field that could not be read was rewritten: %.40q", v)
				}
			}
			var failure persistence.Failure
			if err := json.Unmarshal([]byte(f.m.HGet(key, fFailure)), &failure); err != nil || !strings.Contains(failure.Message, "field "+tc.field) {
				t.Fatalf("stored failure %+v %v, want it to name the field", failure, err)
			}
		})
	}
}
