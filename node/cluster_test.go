package node

import (
	"fmt"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/storage"
	"github.com/stanza-io/stanza/transport"
)

// TestClusterFailover runs three replicas on one NATS server, publishes
// through the leader, stops it, and checks that the survivors elect a new
// leader that keeps every acknowledged message and keeps delivering to a
// durable subscriber.
func TestClusterFailover(t *testing.T) {
	ns := startSharedNATS(t)
	names := []string{"a", "b", "c"}
	servers := map[string]*Server{}
	for _, name := range names {
		servers[name] = startReplica(t, ns, name, names, func(c *Config) { c.SnapshotEntries, c.TrailingEntries = 20, 5 })
	}
	ts := &testServer{url: ns.ClientURL()}
	sc := connect(t, ts, "pub", stan.PubAckWait(2*time.Second))
	got := make(chan *stan.Msg, 256)
	if _, err := sc.Subscribe("log", func(m *stan.Msg) { got <- m }, stan.DurableName("d"), stan.DeliverAllAvailable(), stan.AckWait(time.Second)); err != nil {
		t.Fatal(err)
	}
	publish := func(data string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := sc.Publish("log", []byte(data))
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", data, err)
			}
		}
	}
	for i := 0; i < 30; i++ {
		publish(fmt.Sprintf("before-%d", i))
	}
	leader := ""
	for name, srv := range servers {
		var serving bool
		if err := srv.Do(func(c *Core) { serving = c.Serving() }); err != nil {
			t.Fatal(err)
		}
		if serving {
			leader = name
		}
	}
	if leader == "" {
		t.Fatal("no replica is serving")
	}
	servers[leader].Shutdown()
	for i := 0; i < 10; i++ {
		publish(fmt.Sprintf("after-%d", i))
	}
	// Every acknowledged message reaches the durable subscriber, new
	// deliveries in sequence order, a sequence never changes content. A
	// publish retried after a lost PubAck may be stored twice (STAN has no
	// de-duplication), so payloads are counted, not sequences.
	seen := map[uint64]string{}
	payloads := map[string]bool{}
	var last uint64
	for len(payloads) < 40 {
		select {
		case m := <-got:
			if prev, dup := seen[m.Sequence]; dup && prev != string(m.Data) {
				t.Fatalf("seq %d changed content: %q then %q", m.Sequence, prev, m.Data)
			}
			if !m.Redelivered && m.Sequence <= last {
				t.Fatalf("new delivery out of order: seq %d after %d", m.Sequence, last)
			}
			if !m.Redelivered {
				last = m.Sequence
			}
			seen[m.Sequence] = string(m.Data)
			payloads[string(m.Data)] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("got %d of 40 payloads after failover", len(payloads))
		}
	}
	for seq := uint64(1); seq <= last; seq++ {
		if _, ok := seen[seq]; !ok {
			t.Fatalf("gap: seq %d never delivered (last %d)", seq, last)
		}
	}
	for i := 0; i < 30; i++ {
		if !payloads[fmt.Sprintf("before-%d", i)] {
			t.Fatalf("acknowledged before-%d lost", i)
		}
	}
}

// startSharedNATS starts one embedded NATS server for replicas and clients.
func startSharedNATS(t *testing.T) *transport.Embedded {
	t.Helper()
	ns, err := transport.StartEmbedded(transport.EmbeddedOptions{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// startReplica starts one replica named name of the cluster peers, on a
// FILE store in a temporary directory, connected to ns. mutate may change
// its configuration.
func startReplica(t *testing.T, ns *transport.Embedded, name string, peers []string, mutate func(*Config)) *Server {
	t.Helper()
	conn, err := transport.DialNATS(transport.NATSOptions{URL: ns.ClientURL(), Name: name})
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenFileStorage(storage.OSFS{}, t.TempDir(), FileStorageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ClusterID: "test-cluster", NodeName: name, Peers: peers, Limits: statemachine.DefaultLimits(),
		TickNanos: int64(20 * time.Millisecond)}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := StartServer(cfg, st, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); conn.Close(); st.Close() })
	return srv
}
