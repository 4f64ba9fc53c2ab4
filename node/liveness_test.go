package node

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	stan "github.com/nats-io/stan.go"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (ts *testServer) hasClient(t *testing.T, id string) bool {
	var ok bool
	if err := ts.srv.Do(func(c *Core) { _, ok = c.State().ClientByID(id) }); err != nil {
		t.Fatal(err)
	}
	return ok
}

// A client whose process died stops answering heartbeats and is closed
// after HBFailCount misses; its durable survives, offline.
func TestDeadClientExpiresAfterHeartbeats(t *testing.T) {
	ts := startTestServer(t, "", func(c *Config) {
		c.HBIntervalNanos = int64(50 * time.Millisecond)
		c.HBTimeoutNanos = int64(50 * time.Millisecond)
		c.HBFailCount = 2
	})
	nc, err := nats.Connect(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	sc := connect(t, ts, "doomed", stan.NatsConn(nc))
	if _, err := sc.Subscribe("x", func(*stan.Msg) {}, stan.DurableName("keep")); err != nil {
		t.Fatal(err)
	}
	// Heartbeats are answered while the client lives.
	time.Sleep(300 * time.Millisecond) // several heartbeat intervals: the client must stay
	if !ts.hasClient(t, "doomed") {
		t.Fatal("a live client was expired")
	}
	nc.Close() // the process dies: no close request, no more heartbeat replies
	waitFor(t, "the dead client to expire", func() bool { return !ts.hasClient(t, "doomed") })

	// The ID is free again, and the durable resumes.
	sc2 := connect(t, ts, "doomed")
	if _, err := sc2.Subscribe("x", func(*stan.Msg) {}, stan.DurableName("keep")); err != nil {
		t.Fatalf("resume durable after expiry: %v", err)
	}
}

// A new connection with the ID of a client that died (but has not expired
// yet) replaces it once the old one fails the duplicate probe.
func TestDeadClientReplacedByProbe(t *testing.T) {
	ts := startTestServer(t, "", nil) // default heartbeats: 30s, far away
	nc, err := nats.Connect(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, ts, "phoenix", stan.NatsConn(nc))
	nc.Close()
	start := time.Now()
	sc := connect(t, ts, "phoenix")
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("replaced after %v: the old client must get the 500ms probe first", d)
	}
	if err := sc.Publish("y", []byte("ok")); err != nil {
		t.Fatalf("publish as the replacement: %v", err)
	}
}
