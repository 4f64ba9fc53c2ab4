package main

import (
	"time"

	"github.com/nats-io/nuid"
	"github.com/stanza-io/stanza/transport"
)

// subscribeInbox subscribes fn to a new inbox and flushes, so that what is
// sent there from now on reaches fn.
func subscribeInbox(conn transport.Conn, fn func(transport.Msg)) (string, transport.Subscription, error) {
	inbox := "_INBOX." + nuid.Next()
	sub, err := conn.Subscribe(inbox, fn)
	if err != nil {
		return "", nil, err
	}
	if err := conn.Flush(); err != nil {
		sub.Unsubscribe()
		return "", nil, err
	}
	return inbox, sub, nil
}

// anyAnswer publishes on subject what request builds for a new reply
// inbox, and reports whether anything answered there within wait: how a
// starting server finds out whether another one serves what it is about
// to serve.
func anyAnswer(conn transport.Conn, subject string, wait time.Duration, request func(inbox string) ([]byte, error)) (bool, error) {
	answered := make(chan struct{}, 1)
	inbox, sub, err := subscribeInbox(conn, func(transport.Msg) {
		select {
		case answered <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return false, err
	}
	defer sub.Unsubscribe()
	data, err := request(inbox)
	if err != nil {
		return false, err
	}
	if err := conn.Publish(subject, inbox, data); err != nil {
		return false, err
	}
	select {
	case <-answered:
		return true, nil
	case <-time.After(wait):
		return false, nil
	}
}
