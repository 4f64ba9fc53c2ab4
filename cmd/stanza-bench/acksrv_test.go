package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// TestAckServer runs stock stan.go against the ack-only server, on a
// nats-server started as -embed starts it: connect, sync and async
// publishes acknowledged, a subscription refused with a clear error, close.
func TestAckServer(t *testing.T) {
	e, err := startEmbedded("127.0.0.1:-1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	nc, err := nats.Connect(e.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a, err := startAckServer(nc, "ack-only")
	if err != nil {
		t.Fatal(err)
	}
	defer a.stop()

	sc, err := stan.Connect("ack-only", "pub", stan.NatsURL(e.ClientURL()), stan.ConnectWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Publish("foo", []byte("sync")); err != nil {
		t.Fatalf("sync publish: %v", err)
	}
	const n = 1000
	acked := make(chan error, n)
	for range n {
		if _, err := sc.PublishAsync("foo", []byte("async"), func(_ string, err error) { acked <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case err := <-acked:
			if err != nil {
				t.Fatalf("ack %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d async publishes acknowledged", i, n)
		}
	}
	if _, err := sc.Subscribe("foo", func(*stan.Msg) {}); err == nil || !strings.Contains(err.Error(), "keeps no messages") {
		t.Errorf("subscribe: got %v, want the ack-only server's refusal", err)
	}
	if err := sc.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	// Another cluster ID finds no server.
	if sc, err := stan.Connect("other", "pub2", stan.NatsURL(e.ClientURL()), stan.ConnectWait(300*time.Millisecond)); err == nil {
		sc.Close()
		t.Error("connected to cluster \"other\"")
	}
}

// TestStartEmbedded checks -embed's address parsing (TestAckServer runs the
// ack-only server on a server it started).
func TestStartEmbedded(t *testing.T) {
	for _, bad := range []string{"4222", "127.0.0.1:port", ":"} {
		if e, err := startEmbedded(bad, "", ""); err == nil {
			e.Shutdown()
			t.Errorf("-embed %q: no error", bad)
		}
	}
}
