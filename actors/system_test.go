package actors

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type ping struct{}

// protoactor's INFO chatter (start, recovered panics, dead letters) stays out of the user's
// log; WARN and above go through with lib=protoactor.
func TestSystemLogsWarnAndAboveOnly(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sys := NewSystem(logger)

	recovered := make(chan struct{})
	props := actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *ping:
			panic("boom")
		case *actor.Restarting:
			close(recovered)
		}
	})
	pid := sys.Root.Spawn(props)
	sys.Root.Send(pid, &ping{})
	select {
	case <-recovered:
	case <-time.After(10 * time.Second):
		t.Fatal("the panicking actor was not restarted")
	}
	if err := sys.Root.PoisonFuture(pid).Wait(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	sys.Root.Send(pid, &ping{}) // a dead letter
	sys.Shutdown()

	if strings.Contains(buf.String(), "level=INFO") || strings.Contains(buf.String(), "level=DEBUG") {
		t.Fatalf("protoactor logged below WARN:\n%s", buf.String())
	}
	sys.Logger().Warn("something protoactor warns about")
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "lib=protoactor") {
		t.Fatalf("a WARN record did not go through with lib=protoactor:\n%s", buf.String())
	}
}

func TestSystemWithoutLoggerDiscards(t *testing.T) {
	sys := NewSystem(nil)
	if sys.Logger().Enabled(context.Background(), slog.LevelError) {
		t.Fatal("a nil logger should discard everything")
	}
	sys.Shutdown()
}
