package runtime

// The priorities a job may have (see Priority).
const (
	// MinPriority is the lowest priority: its jobs are claimed after every other due job.
	MinPriority = 1
	// MaxPriority is the highest priority: its due jobs are claimed first.
	MaxPriority = 9
	// DefaultPriority is the priority of a job put without one.
	DefaultPriority = 5
)

// Priority orders the job among the due jobs of its queue: a claim takes the due job of the
// highest priority first, and the jobs of one priority first come, first served. n is
// MinPriority (1) to MaxPriority (9), DefaultPriority (5) when not given; anything else is
// invalid (ErrInvalid). Jobs put back after an interruption still go before every priority,
// and no priority makes a job claimed before its begin_after. A job keeps its priority when
// it is retried or rescheduled. Give it once for a handler with Handle's options.
func Priority(n int) PutOption {
	return func(s *putSettings) {
		if (n < MinPriority || n > MaxPriority) && s.err == nil {
			s.err = invalidf("priority %d: want %d to %d", n, MinPriority, MaxPriority)
		}
		s.priority = n
	}
}
