// Package transport moves opaque bytes on subjects: publish, subscribe, and
// request/reply through reply subjects. The real implementation speaks NATS
// (an embedded nats-server or an external one); the simulator provides one
// driven by its clock and faults. Callers see only this interface.
package transport

// Msg is one message received on a subscription.
type Msg struct {
	Subject string
	Reply   string
	Data    []byte
	// More says that more messages already wait behind this one on its
	// subscription: a receiver that batches its work can wait for them.
	More bool
}

// Conn is a connection to a subject-based message bus.
type Conn interface {
	// Publish sends data on subject, with an optional reply subject.
	Publish(subject, reply string, data []byte) error
	// Subscribe calls fn for every message on subject (NATS wildcards '*'
	// and '>' allowed). fn runs on the connection's delivery goroutine and
	// must not block.
	Subscribe(subject string, fn func(Msg)) (Subscription, error)
	// Flush returns once everything published so far reached the bus.
	Flush() error
	// Barrier calls f once every message received before the call has been
	// handed to its subscription's fn: a request that must not overtake
	// earlier messages on other subjects (close after publishes and acks)
	// waits for it.
	Barrier(f func()) error
	// Close closes the connection.
	Close()
}

// Subscription is an active subscription.
type Subscription interface {
	Unsubscribe() error
}
