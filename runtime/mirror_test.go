package runtime

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/zasync/zasync/actors"
	"github.com/zasync/zasync/persistence"
)

// The types this package declares for the model of persistence and actors have those types'
// fields, in the same order, with the same JSON tags, so that a field added there is not
// forgotten here (add it to the type and to its converter). The fields a put's answer sets
// and no record stores are left out of JobRecord: Job.Duplicate and Job.Debounced say them.
func TestTypesMirrorTheirModel(t *testing.T) {
	t.Parallel()
	leftOut := map[string]bool{"Job.Duplicate": true, "Job.Debounced": true}
	pairs := []struct{ ours, theirs any }{
		{Ref{}, persistence.Ref{}},
		{JobRecord{}, persistence.Job{}},
		{UniqueHold{}, persistence.Unique{}},
		{Owner{}, persistence.Owner{}},
		{CallbackChoice{}, persistence.CallbackChoice{}},
		{PastAttempt{}, persistence.PastAttempt{}},
		{Failure{}, persistence.Failure{}},
		{BadStatusError{}, persistence.BadStatusError{}},
		{TimeoutError{}, persistence.TimeoutError{}},
		{AbortedError{}, persistence.AbortedError{}},
		{CorruptError{}, persistence.CorruptError{}},
		{QueueStats{}, persistence.QueueStats{}},
		{QuotaInfo{}, persistence.QuotaInfo{}},
		{Decision{}, persistence.Decision{}},
		{SubJob{}, actors.SubJob{}},
		{JobInfo{}, actors.JobInfo{}},
		{PollInfo{}, actors.PollInfo{}},
		{QueuePoll{}, actors.QueuePoll{}},
		{AgentPoll{}, actors.AgentPoll{}},
		{Statistics{}, actors.Statistics{}},
		{JobDuration{}, actors.JobDuration{}},
		{StatusInfo{}, actors.StatusInfo{}},
	}
	for _, p := range pairs {
		ours, theirs := reflect.TypeOf(p.ours), reflect.TypeOf(p.theirs)
		var fields []reflect.StructField
		for i := range theirs.NumField() {
			if f := theirs.Field(i); !leftOut[theirs.Name()+"."+f.Name] {
				fields = append(fields, f)
			}
		}
		if ours.NumField() != len(fields) {
			t.Errorf("%s has %d fields, %s has %d", ours, ours.NumField(), theirs, len(fields))
			continue
		}
		for i := range ours.NumField() {
			o, th := ours.Field(i), fields[i]
			if o.Name != th.Name || o.Tag != th.Tag || o.Anonymous != th.Anonymous || kindOf(o.Type) != kindOf(th.Type) {
				t.Errorf("%s field %d is %s %s `%s`, %s's is %s %s `%s`", ours, i, o.Name, o.Type, o.Tag, theirs, th.Name, th.Type, th.Tag)
			}
		}
	}
}

// kindOf describes a field's type without its package, for TestTypesMirrorTheirModel: a
// field of a type of its own there has the type of the same name here.
func kindOf(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + kindOf(t.Elem())
	case reflect.Slice:
		return "[]" + kindOf(t.Elem())
	case reflect.Map:
		return "map[" + kindOf(t.Key()) + "]" + kindOf(t.Elem())
	}
	name := t.Name()
	switch {
	case name == "Job" && t.PkgPath() == "github.com/zasync/zasync/persistence":
		name = "JobRecord"
	case name == "Unique" && t.PkgPath() == "github.com/zasync/zasync/persistence":
		name = "UniqueHold"
	case name == "" || t.PkgPath() == "" || strings.HasPrefix(t.PkgPath(), "github.com/zasync/zasync/"):
	default:
		name = t.PkgPath() + "." + name
	}
	return t.Kind().String() + " " + name
}

// The constants this package declares have the values of those they stand for (written out
// here, so that go doc shows them).
func TestConstantsMirrorTheirModel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		ours, their any
	}{
		{"StatusNew", uint8(StatusNew), uint8(persistence.StatusNew)},
		{"StatusPending", uint8(StatusPending), uint8(persistence.StatusPending)},
		{"StatusAssigned", uint8(StatusAssigned), uint8(persistence.StatusAssigned)},
		{"StatusActive", uint8(StatusActive), uint8(persistence.StatusActive)},
		{"StatusCallbacks", uint8(StatusCallbacks), uint8(persistence.StatusCallbacks)},
		{"StatusCompleted", uint8(StatusCompleted), uint8(persistence.StatusCompleted)},
		{"UniquePending", uint8(UniquePending), uint8(persistence.UniquePending)},
		{"UniqueScheduled", uint8(UniqueScheduled), uint8(persistence.UniqueScheduled)},
		{"UniqueActive", uint8(UniqueActive), uint8(persistence.UniqueActive)},
		{"MissedRunOnce", string(MissedRunOnce), string(persistence.MissedRunOnce)},
		{"MissedSkip", string(MissedSkip), string(persistence.MissedSkip)},
		{"ActionStop", uint8(ActionStop), uint8(persistence.ActionStop)},
		{"ActionRetryNow", uint8(ActionRetryNow), uint8(persistence.ActionRetryNow)},
		{"ActionReschedule", uint8(ActionReschedule), uint8(persistence.ActionReschedule)},
		{"DispatcherStopped", string(DispatcherStopped), string(actors.DispatcherStopped)},
		{"DispatcherStarting", string(DispatcherStarting), string(actors.DispatcherStarting)},
		{"DispatcherStuck", string(DispatcherStuck), string(actors.DispatcherStuck)},
		{"DispatcherRunning", string(DispatcherRunning), string(actors.DispatcherRunning)},
		{"RetryReasonError", RetryReasonError, actors.RetryReasonError},
		{"RetryReasonCommit", RetryReasonCommit, actors.RetryReasonCommit},
		{"RetryReasonInterrupt", RetryReasonInterrupt, actors.RetryReasonInterrupt},
		{"MaxMetaEntries", MaxMetaEntries, persistence.MaxMetaEntries},
		{"MaxMetaBytes", MaxMetaBytes, persistence.MaxMetaBytes},
		{"MaxDispatcherEvents", MaxDispatcherEvents, persistence.MaxDispatcherEvents},
		{"PollHistorySize", PollHistorySize, actors.PollHistorySize},
		{"JobHistorySize", JobHistorySize, actors.JobHistorySize},
		{"MinPriority", MinPriority, persistence.MinPriority},
		{"MaxPriority", MaxPriority, persistence.MaxPriority},
		{"DefaultPriority", DefaultPriority, persistence.DefaultPriority},
		{"LevelCritical", LevelCritical, persistence.LevelCritical},
		{"CountErrors", CountErrors, persistence.CountErrors},
		{"MaxUniqueKey", MaxUniqueKey, persistence.MaxUniqueKey},
	} {
		if c.ours != c.their {
			t.Errorf("%s = %v, the model's is %v", c.name, c.ours, c.their)
		}
	}
	if StatusCompleted.String() != "completed" || StatusCallbacks+1 != StatusCompleted {
		t.Errorf("StatusCompleted renders %q", StatusCompleted)
	}
}

// Every type a program touches is documented in this package, with its fields and methods:
// none is an alias of a type of another package of this module, whose documentation lives
// there. (Sentinel errors and constants are values, documented here.)
func TestNoAliasesToOtherPackages(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/zasync/zasync/"
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ours := map[string]bool{} // the names this file imports the module's packages under
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(path, module) {
				continue
			}
			local := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			ours[local] = true
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || !ts.Assign.IsValid() {
				return true
			}
			typ := ts.Type
			if ix, ok := typ.(*ast.IndexExpr); ok { // a generic type instantiated
				typ = ix.X
			}
			if sel, ok := typ.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && ours[x.Name] {
					t.Errorf("%s: type %s = %s.%s documents nothing here: declare the type here and convert at the boundary, or name %[3]s.%[4]s where it is used",
						fset.Position(ts.Pos()), ts.Name.Name, x.Name, sel.Sel.Name)
				}
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no file of the package found")
	}
}
