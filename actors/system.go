package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// deadLetterThrottle is how often protoactor may log dead letters. Short, because its
// throttle keeps a goroutine alive for one interval after each burst.
const deadLetterThrottle = 10 * time.Millisecond

// NewSystem returns an actor system whose own logging goes to logger at WARN and above, with
// lib=protoactor: protoactor logs its start, each recovered panic and each dead letter at
// INFO to stderr by default, and none of that belongs in a user's logs. A nil logger discards
// everything.
func NewSystem(logger *slog.Logger) *actor.ActorSystem {
	var h slog.Handler = slog.DiscardHandler
	if logger != nil {
		h = atLeast{Handler: logger.Handler(), min: slog.LevelWarn}
	}
	return actor.NewActorSystem(
		actor.WithLoggerFactory(func(sys *actor.ActorSystem) *slog.Logger {
			return slog.New(h).With("lib", "protoactor", "system", sys.ID)
		}),
		actor.WithDeadLetterThrottleInterval(deadLetterThrottle),
	)
}

// atLeast passes on records at min or above.
type atLeast struct {
	slog.Handler
	min slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{Handler: h.Handler.WithGroup(name), min: h.min}
}
