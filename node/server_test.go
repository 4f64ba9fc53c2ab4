package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/storage"
	"github.com/stanza-io/stanza/transport"
)

type testServer struct {
	url  string
	nats *transport.Embedded
	srv  *Server
	conn transport.Conn
	fst  *FileStorage
	fopt FileStorageOptions
}

func startTestServer(t *testing.T, dir string, mutate func(*Config)) *testServer {
	t.Helper()
	ns, err := transport.StartEmbedded(transport.EmbeddedOptions{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{url: ns.ClientURL(), nats: ns}
	t.Cleanup(ns.Shutdown)
	ts.start(t, dir, mutate)
	return ts
}

func (ts *testServer) start(t *testing.T, dir string, mutate func(*Config)) {
	t.Helper()
	conn, err := transport.DialNATS(transport.NATSOptions{URL: ts.url, Name: "stanza-test"})
	if err != nil {
		t.Fatal(err)
	}
	var st Storage = NewMemStorage()
	if dir != "" {
		fst, err := OpenFileStorage(storage.OSFS{}, dir, ts.fopt)
		if err != nil {
			t.Fatal(err)
		}
		st, ts.fst = fst, fst
	}
	cfg := Config{ClusterID: "test-cluster", NodeName: "a", Limits: statemachine.DefaultLimits(), TickNanos: int64(10 * time.Millisecond)}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := StartServer(cfg, st, conn)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv, ts.conn = srv, conn
	t.Cleanup(ts.stop)
}

func (ts *testServer) stop() {
	if ts.srv != nil {
		ts.srv.Shutdown()
		ts.conn.Close()
		ts.srv = nil
		if ts.fst != nil {
			ts.fst.Close()
			ts.fst = nil
		}
	}
}

func connect(t *testing.T, ts *testServer, id string, opts ...stan.Option) stan.Conn {
	t.Helper()
	opts = append([]stan.Option{stan.NatsURL(ts.url), stan.ConnectWait(5 * time.Second)}, opts...)
	var sc stan.Conn
	var err error
	// The single node elects itself within a few ticks; retry until it serves.
	deadline := time.Now().Add(10 * time.Second)
	for {
		sc, err = stan.Connect("test-cluster", id, opts...)
		if err == nil || time.Now().After(deadline) || !errors.Is(err, stan.ErrConnectReqTimeout) {
			break
		}
	}
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

func recv(t *testing.T, ch <-chan *stan.Msg) *stan.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func TestStockClientPubSub(t *testing.T) {
	ts := startTestServer(t, t.TempDir(), nil)
	sc := connect(t, ts, "me")
	for i := 1; i <= 3; i++ {
		if err := sc.Publish("foo", []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	ch := make(chan *stan.Msg, 16)
	sub, err := sc.Subscribe("foo", func(m *stan.Msg) { ch <- m }, stan.DeliverAllAvailable())
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		m := recv(t, ch)
		if m.Sequence != uint64(i) || string(m.Data) != fmt.Sprintf("m%d", i) || m.Subject != "foo" || m.Redelivered {
			t.Fatalf("message %d: got seq %d %q on %s redelivered=%v", i, m.Sequence, m.Data, m.Subject, m.Redelivered)
		}
	}
	// A new message after the subscription arrives live.
	if err := sc.Publish("foo", []byte("live")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, ch); m.Sequence != 4 || string(m.Data) != "live" {
		t.Fatalf("live message: seq %d %q", m.Sequence, m.Data)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	// Exact protocol errors reach the client.
	if err := sc.Publish("foo.*", []byte("x")); err == nil || err.Error() != statemachine.ErrInvalidPubReq {
		t.Fatalf("publish to a wildcard: %v, want %q", err, statemachine.ErrInvalidPubReq)
	}
	if _, err := sc.Subscribe("foo", func(*stan.Msg) {}, stan.AckWait(500*time.Millisecond)); err == nil || err.Error() != statemachine.ErrInvalidAckWait {
		t.Fatalf("sub-second AckWait: %v", err)
	}
	if _, err := stan.Connect("test-cluster", "me", stan.NatsURL(ts.url)); err == nil || err.Error() != statemachine.ErrInvalidClient {
		t.Fatalf("duplicate live client ID: %v, want %q", err, statemachine.ErrInvalidClient)
	}
}

func TestStockClientDurableSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, dir, nil)
	sc := connect(t, ts, "me")
	ch := make(chan *stan.Msg, 16)
	sub, err := sc.Subscribe("orders", func(m *stan.Msg) { ch <- m }, stan.DurableName("d"), stan.SetManualAckMode(), stan.DeliverAllAvailable(), stan.MaxInflight(10))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		if err := sc.Publish("orders", []byte(fmt.Sprintf("o%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 4; i++ {
		m := recv(t, ch)
		if i <= 2 {
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart the replica on the same directory: everything acknowledged
	// is there, the durable resumes with its unacked messages first.
	ts.stop()
	ts.start(t, dir, nil)
	sc = connect(t, ts, "me")
	if err := sc.Publish("orders", []byte("o5")); err != nil {
		t.Fatal(err)
	}
	ch2 := make(chan *stan.Msg, 16)
	if _, err := sc.Subscribe("orders", func(m *stan.Msg) { ch2 <- m }, stan.DurableName("d"), stan.SetManualAckMode()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 3; i++ {
		m := recv(t, ch2)
		got = append(got, fmt.Sprintf("%d:%s:%v", m.Sequence, m.Data, m.Redelivered))
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if want := "3:o3:true 4:o4:true 5:o5:false"; strings.Join(got, " ") != want {
		t.Fatalf("after restart got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestStockClientQueueAndRedelivery(t *testing.T) {
	ts := startTestServer(t, "", nil)
	sc := connect(t, ts, "me")
	ch := make(chan *stan.Msg, 64)
	// A subscriber that never acks gets its message again after AckWait,
	// marked redelivered.
	if _, err := sc.Subscribe("r", func(m *stan.Msg) { ch <- m }, stan.SetManualAckMode(), stan.AckWait(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := sc.Publish("r", []byte("again")); err != nil {
		t.Fatal(err)
	}
	first := recv(t, ch)
	second := recv(t, ch)
	if first.Redelivered || !second.Redelivered || second.Sequence != first.Sequence || second.RedeliveryCount != 1 {
		t.Fatalf("redelivery: first %+v second %+v", first.MsgProto, second.MsgProto)
	}

	// Two queue members share the messages; each message goes to one.
	qa, qb := make(chan *stan.Msg, 64), make(chan *stan.Msg, 64)
	sc2 := connect(t, ts, "other")
	if _, err := sc.QueueSubscribe("q", "workers", func(m *stan.Msg) { qa <- m }); err != nil {
		t.Fatal(err)
	}
	if _, err := sc2.QueueSubscribe("q", "workers", func(m *stan.Msg) { qb <- m }); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := 0; i < n; i++ {
		if err := sc.Publish("q", []byte("w")); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]bool{}
	var fromA, fromB int
	for len(seen) < n {
		select {
		case m := <-qa:
			fromA++
			seen[m.Sequence] = true
		case m := <-qb:
			fromB++
			seen[m.Sequence] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("queue group got %d of %d messages", len(seen), n)
		}
	}
	if fromA == 0 || fromB == 0 || fromA+fromB != n {
		t.Fatalf("queue split %d/%d of %d: each message must go to exactly one member, both members used", fromA, fromB, n)
	}
}
