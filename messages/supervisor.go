package messages

// Supervise asks the dispatcher's supervisor to judge its siblings in Queue: the next one in
// the ring after each ping, and, now and then, every agent holding jobs there. The dispatcher
// sends it after each successful ping.
type Supervise struct {
	Queue string
}
