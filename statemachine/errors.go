package statemachine

// Protocol rejections: the exact strings nats-streaming-server v0.25 sends,
// which clients and their tests compare against. They are data, not Go
// errors.
const (
	ErrInvalidSubject     = "stan: invalid subject"
	ErrInvalidStart       = "stan: invalid start position"
	ErrInvalidSub         = "stan: invalid subscription"
	ErrInvalidClient      = "stan: clientID already registered"
	ErrMissingClient      = "stan: clientID missing"
	ErrInvalidClientID    = "stan: invalid clientID: only alphanumeric and `-` or `_` characters allowed"
	ErrInvalidAckWait     = "stan: invalid ack wait time, should be >= 1s"
	ErrInvalidMaxInflight = "stan: invalid MaxInflight, should be >= 1"
	ErrInvalidConnReq     = "stan: invalid connection request"
	ErrInvalidPubReq      = "stan: invalid publish request"
	ErrInvalidSubReq      = "stan: invalid subscription request"
	ErrInvalidUnsubReq    = "stan: invalid unsubscribe request"
	ErrInvalidCloseReq    = "stan: invalid close request"
	ErrDupDurable         = "stan: duplicate durable registration"
	ErrInvalidDurName     = "stan: durable name of a durable queue subscriber can't contain the character ':'"
	ErrUnknownClient      = "stan: unknown clientID"
	ErrUnknownChannel     = "stan: unknown channel"

	ErrTooManyChannels = "too many channels"
	ErrTooManySubs     = "too many subscriptions per channel"

	// ErrPingReplaced answers a ping whose connID is not registered.
	ErrPingReplaced = "client has been replaced or is no longer registered"

	// errCaseConflictFormat keeps the original's typo ("alreay"): clients may
	// match on it.
	errCaseConflictFormat = "rejecting channel %q because channel %q alreay exists (different cases not allowed)"
)
