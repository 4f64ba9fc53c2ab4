package node

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	stan "github.com/nats-io/stan.go"
	stanpb "github.com/nats-io/stan.go/pb"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/proto"
)

// End-to-end protocol tests: a real replica on a real NATS server, driven by
// the stock stan.go client, and by raw NATS requests where the bytes matter.

// The subjects of cluster "test-cluster", spelled out: clients must see
// exactly nats-streaming-server's names.
const (
	subjDiscover = "_STAN.discover.test-cluster"
	subjPings    = "_STAN.discover.test-cluster.pings"
	subjPubPre   = "_STAN.pub.test-cluster"
	subjSub      = "_STAN.sub.test-cluster"
	subjUnsub    = "_STAN.unsub.test-cluster"
	subjSubClose = "_STAN.subclose.test-cluster"
	subjClose    = "_STAN.close.test-cluster"
)

// rawRequestMax bounds every raw request: the replica answers in a few ticks.
const rawRequestMax = 5 * time.Second

// quietWindow is how long a test watches for a delivery that must not come.
const quietWindow = 300 * time.Millisecond

func rawConn(t *testing.T, ts *testServer) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// rawRequest sends data on subject and decodes the reply into resp.
func rawRequest(t *testing.T, nc *nats.Conn, subject string, data []byte, resp proto.Message) {
	t.Helper()
	m, err := nc.Request(subject, data, rawRequestMax)
	if err != nil {
		t.Fatalf("request on %s: %v", subject, err)
	}
	if err := proto.Unmarshal(m.Data, resp); err != nil {
		t.Fatalf("reply on %s: %v (% x)", subject, err, m.Data)
	}
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// subscribe subscribes with a channel as handler; deliveries are buffered.
func subscribe(t *testing.T, sc stan.Conn, channel string, opts ...stan.SubscriptionOption) (stan.Subscription, chan *stan.Msg) {
	t.Helper()
	ch := make(chan *stan.Msg, 1024)
	sub, err := sc.Subscribe(channel, func(m *stan.Msg) { ch <- m }, opts...)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", channel, err)
	}
	return sub, ch
}

func queueSubscribe(t *testing.T, sc stan.Conn, channel, group string, ch chan *stan.Msg, opts ...stan.SubscriptionOption) stan.Subscription {
	t.Helper()
	sub, err := sc.QueueSubscribe(channel, group, func(m *stan.Msg) { ch <- m }, opts...)
	if err != nil {
		t.Fatalf("queue subscribe to %s/%s: %v", channel, group, err)
	}
	return sub
}

func recvN(t *testing.T, ch <-chan *stan.Msg, n int) []*stan.Msg {
	t.Helper()
	out := make([]*stan.Msg, 0, n)
	for len(out) < n {
		out = append(out, recv(t, ch))
	}
	return out
}

// quiet asserts that nothing arrives on ch for quietWindow.
func quiet(t *testing.T, ch <-chan *stan.Msg, what string) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("%s: unexpected delivery seq %d %q redelivered=%v", what, m.Sequence, m.Data, m.Redelivered)
	case <-time.After(quietWindow):
	}
}

// quietAll asserts that nothing arrives on any of chans for quietWindow.
func quietAll(t *testing.T, chans []chan *stan.Msg) {
	t.Helper()
	time.Sleep(quietWindow) // watching for deliveries that must not come
	for i, ch := range chans {
		select {
		case m := <-ch:
			t.Fatalf("subscription %d: unexpected delivery seq %d %q", i, m.Sequence, m.Data)
		default:
		}
	}
}

// describe renders deliveries as "seq:data" or "seq:data:R" for a
// redelivery, for exact comparisons.
func describe(msgs []*stan.Msg) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = fmt.Sprintf("%d:%s", m.Sequence, m.Data)
		if m.Redelivered {
			parts[i] += ":R"
		}
	}
	return strings.Join(parts, " ")
}

func publishN(t *testing.T, sc stan.Conn, channel string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := sc.Publish(channel, []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatalf("publish m%d on %s: %v", i, channel, err)
		}
	}
}

func ackAll(t *testing.T, msgs []*stan.Msg) {
	t.Helper()
	for _, m := range msgs {
		if err := m.Ack(); err != nil {
			t.Fatalf("ack seq %d: %v", m.Sequence, err)
		}
	}
}

func channelSubs(t *testing.T, ts *testServer, channel string) []statemachine.SubInfo {
	t.Helper()
	var subs []statemachine.SubInfo
	if err := ts.srv.Do(func(c *Core) { subs = c.State().ChannelSubs(channel) }); err != nil {
		t.Fatal(err)
	}
	return subs
}

// TestProtocolConnect: a live client ID is refused; a client that no longer
// answers its heartbeat inbox is replaced after the probe, loses its session
// (its connID is refused), and its durable passes to the replacement.
func TestProtocolConnect(t *testing.T) {
	t.Parallel()
	ts := startTestServer(t, "", nil)
	nc := rawConn(t, ts)

	live := connect(t, ts, "live")
	if _, err := stan.Connect("test-cluster", "live", stan.NatsURL(ts.url)); err == nil || err.Error() != statemachine.ErrInvalidClient {
		t.Fatalf("duplicate live client ID: %v, want %q", err, statemachine.ErrInvalidClient)
	}
	if err := live.Publish("still", []byte("alive")); err != nil {
		t.Fatalf("the refused duplicate hurt the live client: %v", err)
	}

	// A raw client whose heartbeat inbox nobody listens on: it is "dead"
	// from the start. Its ConnectResponse carries the standard subjects.
	ghostConnID := []byte("ghost-conn-id")
	req := &pb.ConnectRequest{ClientID: "ghost", HeartbeatInbox: nats.NewInbox(), Protocol: 1, ConnID: ghostConnID, PingInterval: 7, PingMaxOut: 4}
	var cr pb.ConnectResponse
	rawRequest(t, nc, subjDiscover, marshal(t, req), &cr)
	want := &pb.ConnectResponse{PubPrefix: subjPubPre, SubRequests: subjSub, UnsubRequests: subjUnsub, CloseRequests: subjClose,
		SubCloseRequests: subjSubClose, PingRequests: subjPings, PingInterval: 7, PingMaxOut: 4, Protocol: 1}
	if !proto.Equal(&cr, want) {
		t.Fatalf("ConnectResponse:\n got %v\nwant %v", &cr, want)
	}
	ghostPub := func(guid string) *pb.PubAck {
		var ack pb.PubAck
		rawRequest(t, nc, subjPubPre+".ghostly", marshal(t, &pb.PubMsg{ClientID: "ghost", ConnID: ghostConnID, Guid: guid, Subject: "ghostly", Data: []byte("boo")}), &ack)
		return &ack
	}
	if ack := ghostPub("g1"); ack.GetGuid() != "g1" || ack.GetError() != "" {
		t.Fatalf("publish as the registered raw client: %v", ack)
	}

	start := time.Now()
	sc, err := stan.Connect("test-cluster", "ghost", stan.NatsURL(ts.url), stan.ConnectWait(5*time.Second))
	if err != nil {
		t.Fatalf("replacing a dead client: %v", err)
	}
	t.Cleanup(func() { sc.Close() })
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("replaced after %v: the old client must get the 500ms probe first", d)
	}
	if ack := ghostPub("g2"); ack.GetGuid() != "g2" || ack.GetError() != statemachine.ErrInvalidPubReq {
		t.Fatalf("publish with the replaced connID: %v, want error %q", ack, statemachine.ErrInvalidPubReq)
	}
	var pr pb.PingResponse
	rawRequest(t, nc, subjPings, marshal(t, &pb.Ping{ConnID: ghostConnID}), &pr)
	if pr.GetError() != statemachine.ErrPingReplaced {
		t.Fatalf("ping with the replaced connID: %q, want %q", pr.GetError(), statemachine.ErrPingReplaced)
	}
	if err := sc.Publish("ghostly", []byte("new")); err != nil {
		t.Fatalf("publish as the replacement: %v", err)
	}

	// Two connects racing for the ID of a dead client: the one that
	// arrives during the probe is refused at once, the other replaces it.
	rawRequest(t, nc, subjDiscover, marshal(t, &pb.ConnectRequest{ClientID: "race", HeartbeatInbox: nats.NewInbox(), Protocol: 1, ConnID: []byte("race-1")}), &cr)
	if cr.GetError() != "" {
		t.Fatalf("raw connect: %q", cr.GetError())
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			sc, err := stan.Connect("test-cluster", "race", stan.NatsURL(ts.url), stan.ConnectWait(5*time.Second))
			if err == nil {
				t.Cleanup(func() { sc.Close() })
			}
			errs <- err
		}()
	}
	var won, refused int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			won++
		case err.Error() == statemachine.ErrInvalidClient:
			refused++
		default:
			t.Fatalf("racing connect: %v", err)
		}
	}
	if won != 1 || refused != 1 {
		t.Fatalf("racing connects: %d won, %d refused; want 1 and 1", won, refused)
	}

	// A stan client whose process died (its NATS connection closed) with
	// an unacked message on a durable: the replacement resumes the durable
	// and gets the message again.
	deadNC, err := nats.Connect(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	dead := connect(t, ts, "phoenix", stan.NatsConn(deadNC))
	_, ch := subscribe(t, dead, "phx", stan.DurableName("keep"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	publishN(t, dead, "phx", 1, 1)
	recv(t, ch)
	deadNC.Close()
	reborn := connect(t, ts, "phoenix")
	_, ch = subscribe(t, reborn, "phx", stan.DurableName("keep"), stan.SetManualAckMode())
	if got, want := describe(recvN(t, ch, 1)), "1:m1:R"; got != want {
		t.Fatalf("resumed durable of the replaced client: got %q, want %q", got, want)
	}
}

// TestProtocolPublish: sync publishes are acknowledged; every PublishAsync
// gets exactly one ack, without error, with the GUID PublishAsync returned;
// everything is stored in publish order.
func TestProtocolPublish(t *testing.T) {
	t.Parallel()
	ts := startTestServer(t, "", nil)
	sc := connect(t, ts, "pub")
	const syncN, asyncN = 10, 300
	publishN(t, sc, "pubs", 1, syncN)

	var mu sync.Mutex
	acked := map[string]int{}
	var ackErrs []error
	done := make(chan struct{})
	handler := func(guid string, err error) {
		mu.Lock()
		defer mu.Unlock()
		acked[guid]++
		if err != nil {
			ackErrs = append(ackErrs, fmt.Errorf("guid %s: %w", guid, err))
		}
		if len(acked) == asyncN {
			close(done)
		}
	}
	returned := map[string]bool{}
	for i := syncN + 1; i <= syncN+asyncN; i++ {
		guid, err := sc.PublishAsync("pubs", []byte(fmt.Sprintf("m%d", i)), handler)
		if err != nil {
			t.Fatalf("PublishAsync m%d: %v", i, err)
		}
		if guid == "" || returned[guid] {
			t.Fatalf("PublishAsync m%d returned GUID %q: empty or reused", i, guid)
		}
		returned[guid] = true
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d of %d async acks within 10s", len(acked), asyncN)
	}
	mu.Lock()
	if len(ackErrs) > 0 {
		t.Fatalf("async acks with errors: %v", ackErrs)
	}
	for guid, n := range acked {
		if !returned[guid] || n != 1 {
			t.Fatalf("ack for GUID %q: %d times, returned by PublishAsync: %v", guid, n, returned[guid])
		}
	}
	mu.Unlock()

	_, ch := subscribe(t, sc, "pubs", stan.DeliverAllAvailable())
	for i, m := range recvN(t, ch, syncN+asyncN) {
		if want := fmt.Sprintf("%d:m%d", i+1, i+1); describe([]*stan.Msg{m}) != want {
			t.Fatalf("stored message %d: got %q, want %q", i+1, describe([]*stan.Msg{m}), want)
		}
	}
	quiet(t, ch, "after all stored messages")
}

// TestProtocolStartPositions checks the first sequence delivered for every
// start position, on a channel holding m1..m5 with a gap in time between m3
// and m4.
func TestProtocolStartPositions(t *testing.T) {
	t.Parallel()
	ts := startTestServer(t, "", nil)
	sc := connect(t, ts, "pos")
	publishN(t, sc, "pos", 1, 3)
	// A gap in the messages' timestamps for the time-based starts to fall
	// into; nothing is being waited for.
	time.Sleep(300 * time.Millisecond)
	publishN(t, sc, "pos", 4, 5)

	all, ch := subscribe(t, sc, "pos", stan.DeliverAllAvailable())
	msgs := recvN(t, ch, 5)
	all.Unsubscribe()
	// Halfway between m3 and m4: robust to the request's travel time,
	// which moves the server's start point later.
	mid := time.Unix(0, (msgs[2].Timestamp+msgs[3].Timestamp)/2)

	// Options are built at subscribe time: a time delta is relative to now.
	stored := []struct {
		name      string
		opt       func() stan.SubscriptionOption
		wantFirst uint64
	}{
		{"DeliverAllAvailable", stan.DeliverAllAvailable, 1},
		{"StartWithLastReceived", stan.StartWithLastReceived, 5},
		{"StartAtSequence(0)", func() stan.SubscriptionOption { return stan.StartAtSequence(0) }, 1},
		{"StartAtSequence(1)", func() stan.SubscriptionOption { return stan.StartAtSequence(1) }, 1},
		{"StartAtSequence(3)", func() stan.SubscriptionOption { return stan.StartAtSequence(3) }, 3},
		{"StartAtSequence(5)", func() stan.SubscriptionOption { return stan.StartAtSequence(5) }, 5},
		{"StartAtTimeDelta(between m3 and m4)", func() stan.SubscriptionOption { return stan.StartAtTimeDelta(time.Since(mid)) }, 4},
		{"StartAtTime(between m3 and m4)", func() stan.SubscriptionOption { return stan.StartAtTime(mid) }, 4},
		{"StartAtTimeDelta(1h)", func() stan.SubscriptionOption { return stan.StartAtTimeDelta(time.Hour) }, 1},
	}
	storedChans := make([]chan *stan.Msg, len(stored))
	for i, tc := range stored {
		var sub stan.Subscription
		sub, storedChans[i] = subscribe(t, sc, "pos", tc.opt())
		defer sub.Unsubscribe()
	}
	for i, tc := range stored {
		got := recvN(t, storedChans[i], int(5-tc.wantFirst+1))
		for j, m := range got {
			if want := tc.wantFirst + uint64(j); m.Sequence != want || m.Redelivered {
				t.Errorf("%s: delivery %d is seq %d redelivered=%v, want seq %d (all: %s)", tc.name, j, m.Sequence, m.Redelivered, want, describe(got))
				break
			}
		}
	}

	// Positions past the end deliver only what is published next.
	newOnly := []struct {
		name string
		opt  stan.SubscriptionOption
	}{
		{"NewOnly", stan.StartAt(stanpb.StartPosition_NewOnly)},
		{"default", nil},
		{"StartAtSequence(6)", stan.StartAtSequence(6)},
		{"StartAtSequence(100)", stan.StartAtSequence(100)},
		{"StartAtTime(future)", stan.StartAtTime(time.Now().Add(time.Hour))},
	}
	chans := make([]chan *stan.Msg, len(newOnly))
	for i, tc := range newOnly {
		var opts []stan.SubscriptionOption
		if tc.opt != nil {
			opts = append(opts, tc.opt)
		}
		var sub stan.Subscription
		sub, chans[i] = subscribe(t, sc, "pos", opts...)
		defer sub.Unsubscribe()
	}
	// One window for every subscription: nothing beyond m5, nothing
	// before m6 for the new-only ones.
	quietAll(t, append(storedChans, chans...))
	publishN(t, sc, "pos", 6, 6)
	for i, tc := range newOnly {
		if got := describe(recvN(t, chans[i], 1)); got != "6:m6" {
			t.Errorf("%s: first delivery %q, want 6:m6", tc.name, got)
		}
	}
}

// TestProtocolDurables: a closed durable resumes after its last ack, with its
// unacked messages first and marked redelivered; it survives its
// connection's close; an unsubscribed durable's name starts afresh.
func TestProtocolDurables(t *testing.T) {
	t.Parallel()
	ts := startTestServer(t, "", nil)
	sc := connect(t, ts, "dur")

	// Everything acked: the resume continues with the next message, and
	// the resume's own start position is ignored.
	sub, ch := subscribe(t, sc, "d1", stan.DurableName("d"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	publishN(t, sc, "d1", 1, 3)
	ackAll(t, recvN(t, ch, 3))
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	publishN(t, sc, "d1", 4, 5)
	sub, ch = subscribe(t, sc, "d1", stan.DurableName("d"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	got := recvN(t, ch, 2)
	if want := "4:m4 5:m5"; describe(got) != want {
		t.Fatalf("resume after acking everything: got %q, want %q", describe(got), want)
	}
	ackAll(t, got)
	quiet(t, ch, "resumed durable")
	sub.Close()

	// Unacked messages come back first, redelivered, then new ones.
	sub, ch = subscribe(t, sc, "d2", stan.DurableName("d"), stan.SetManualAckMode(), stan.DeliverAllAvailable(), stan.MaxInflight(10))
	publishN(t, sc, "d2", 1, 4)
	got = recvN(t, ch, 4)
	ackAll(t, got[:2])
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	publishN(t, sc, "d2", 5, 5)
	_, ch = subscribe(t, sc, "d2", stan.DurableName("d"), stan.SetManualAckMode(), stan.MaxInflight(10))
	got = recvN(t, ch, 3)
	if want := "3:m3:R 4:m4:R 5:m5"; describe(got) != want {
		t.Fatalf("resume with unacked messages: got %q, want %q", describe(got), want)
	}
	ackAll(t, got)

	// Closing the connection keeps the durable for the same client ID.
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	sc = connect(t, ts, "dur")
	_, ch = subscribe(t, sc, "d2", stan.DurableName("d"), stan.SetManualAckMode())
	publishN(t, sc, "d2", 6, 6)
	if got := describe(recvN(t, ch, 1)); got != "6:m6" {
		t.Fatalf("durable after connection close: got %q, want 6:m6", got)
	}

	// Unsubscribe forgets the durable: the same name starts at its own
	// start position, not where the old one was.
	sub, ch = subscribe(t, sc, "d3", stan.DurableName("u"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	publishN(t, sc, "d3", 1, 3)
	ackAll(t, recvN(t, ch, 3))
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	sub, ch = subscribe(t, sc, "d3", stan.DurableName("u"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	got = recvN(t, ch, 3)
	if want := "1:m1 2:m2 3:m3"; describe(got) != want {
		t.Fatalf("new durable after unsubscribe, DeliverAllAvailable: got %q, want %q", describe(got), want)
	}
	// Unacked on purpose: the unsubscribe drops the pending state too.
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	_, ch = subscribe(t, sc, "d3", stan.DurableName("u"), stan.SetManualAckMode(), stan.StartAtSequence(2))
	got = recvN(t, ch, 2)
	if want := "2:m2 3:m3"; describe(got) != want {
		t.Fatalf("new durable after unsubscribe, StartAtSequence(2): got %q, want %q", describe(got), want)
	}
	if _, err := sc.Subscribe("d3", func(*stan.Msg) {}, stan.DurableName("u")); err == nil || err.Error() != statemachine.ErrDupDurable {
		t.Fatalf("second online durable with the same name: %v, want %q", err, statemachine.ErrDupDurable)
	}
}

// TestProtocolQueues: each message goes to exactly one member; a plain group
// disappears with its last member; a durable group survives all members
// closing and resumes where it was, unacked messages first.
func TestProtocolQueues(t *testing.T) {
	t.Parallel()
	ts := startTestServer(t, "", nil)
	sc1, sc2 := connect(t, ts, "q1"), connect(t, ts, "q2")

	// Plain group: shared, then gone with its last member.
	shared := make(chan *stan.Msg, 64)
	a := queueSubscribe(t, sc1, "q", "g", shared, stan.SetManualAckMode(), stan.DeliverAllAvailable())
	b := queueSubscribe(t, sc2, "q", "g", shared, stan.SetManualAckMode())
	publishN(t, sc1, "q", 1, 6)
	checkOnce := func(msgs []*stan.Msg, from, to uint64) {
		t.Helper()
		seen := map[uint64]int{}
		for _, m := range msgs {
			seen[m.Sequence]++
		}
		for seq := from; seq <= to; seq++ {
			if seen[seq] != 1 {
				t.Fatalf("seq %d delivered %d times to the group (all: %s)", seq, seen[seq], describe(msgs))
			}
		}
	}
	got := recvN(t, shared, 6)
	checkOnce(got, 1, 6)
	ackAll(t, got)
	a.Close()
	b.Close()
	fresh := make(chan *stan.Msg, 64)
	c := queueSubscribe(t, sc1, "q", "g", fresh, stan.DeliverAllAvailable())
	if got := recvN(t, fresh, 1); got[0].Sequence != 1 {
		t.Fatalf("plain group recreated with DeliverAllAvailable: first seq %d, want 1", got[0].Sequence)
	}
	c.Unsubscribe()

	// Durable group: two members, everything acked, both close; a new
	// member resumes after the last message, whatever its start position.
	a = queueSubscribe(t, sc1, "dq", "g", shared, stan.DurableName("dur"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	b = queueSubscribe(t, sc2, "dq", "g", shared, stan.DurableName("dur"), stan.SetManualAckMode())
	publishN(t, sc1, "dq", 1, 6)
	got = recvN(t, shared, 6)
	checkOnce(got, 1, 6)
	ackAll(t, got)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	publishN(t, sc1, "dq", 7, 8)
	resumed := make(chan *stan.Msg, 64)
	queueSubscribe(t, sc2, "dq", "g", resumed, stan.DurableName("dur"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	got = recvN(t, resumed, 2)
	if want := "7:m7 8:m8"; describe(got) != want {
		t.Fatalf("durable group resumed: got %q, want %q", describe(got), want)
	}
	ackAll(t, got)
	quiet(t, resumed, "resumed durable group")

	// Durable group whose last member leaves with unacked messages.
	lone := make(chan *stan.Msg, 64)
	queueSubscribe(t, sc1, "dq2", "g", lone, stan.DurableName("dur"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	publishN(t, sc1, "dq2", 1, 3)
	got = recvN(t, lone, 3)
	ackAll(t, got[:1])
	if err := sc1.Close(); err != nil { // the connection close takes the member with it
		t.Fatal(err)
	}
	publishN(t, sc2, "dq2", 4, 4)
	rejoined := make(chan *stan.Msg, 64)
	queueSubscribe(t, sc2, "dq2", "g", rejoined, stan.DurableName("dur"), stan.SetManualAckMode())
	got = recvN(t, rejoined, 3)
	if want := "2:m2:R 3:m3:R 4:m4"; describe(got) != want {
		t.Fatalf("durable group rejoined after its last member's connection closed: got %q, want %q", describe(got), want)
	}
}

// TestProtocolAcks: an unacked message comes back after AckWait, marked
// redelivered, and stops once acked; MaxInflight is exact.
func TestProtocolAcks(t *testing.T) {
	t.Parallel()
	ts := startTestServer(t, "", nil)
	sc := connect(t, ts, "acker")

	_, ch := subscribe(t, sc, "aw", stan.SetManualAckMode(), stan.AckWait(time.Second))
	publishN(t, sc, "aw", 1, 1)
	first := recv(t, ch)
	sent := time.Now()
	second := recv(t, ch)
	if d := time.Since(sent); d < 800*time.Millisecond {
		t.Fatalf("redelivered after %v, before AckWait (1s)", d)
	}
	if first.Redelivered || !second.Redelivered || second.Sequence != 1 || second.RedeliveryCount != 1 || string(second.Data) != "m1" {
		t.Fatalf("redelivery: first %q then %q (count %d)", describe([]*stan.Msg{first}), describe([]*stan.Msg{second}), second.RedeliveryCount)
	}
	if err := second.Ack(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		t.Fatalf("redelivered after the ack: %q", describe([]*stan.Msg{m}))
	case <-time.After(1500 * time.Millisecond): // longer than AckWait
	}

	// MaxInflight(3) and no acks: exactly 3, then one per ack.
	_, ch = subscribe(t, sc, "mif", stan.SetManualAckMode(), stan.MaxInflight(3), stan.DeliverAllAvailable())
	publishN(t, sc, "mif", 1, 10)
	inflight := func(wantLastSent uint64) {
		t.Helper()
		subs := channelSubs(t, ts, "mif")
		if len(subs) != 1 || subs[0].LastSent != wantLastSent || subs[0].PendingCount != 3 || !subs[0].IsStalled {
			t.Fatalf("server view: %+v, want last sent %d, 3 pending, stalled", subs, wantLastSent)
		}
	}
	got := recvN(t, ch, 3)
	if want := "1:m1 2:m2 3:m3"; describe(got) != want {
		t.Fatalf("MaxInflight(3): got %q, want %q", describe(got), want)
	}
	inflight(3)
	quiet(t, ch, "MaxInflight(3) with 3 unacked")
	if err := got[1].Ack(); err != nil {
		t.Fatal(err)
	}
	if next := describe(recvN(t, ch, 1)); next != "4:m4" {
		t.Fatalf("after one ack: got %q, want 4:m4", next)
	}
	inflight(4)
	quiet(t, ch, "MaxInflight(3) after one ack")
}

// TestProtocolBadInput sends garbage and requests from unknown clients on
// every subject, and an oversized payload, and checks each exact rejection
// and that the state did not change at all.
func TestProtocolBadInput(t *testing.T) {
	t.Parallel()
	ts := startTestServer(t, "", nil)
	sc := connect(t, ts, "good")
	publishN(t, sc, "ok", 1, 1)
	_, okCh := subscribe(t, sc, "ok", stan.DurableName("d"), stan.DeliverAllAvailable())
	recv(t, okCh)
	// The client acks after its callback: wait for the ack to be applied,
	// or it would land between the two snapshots below.
	eventually(t, "the delivery acked", func() bool {
		subs := channelSubs(t, ts, "ok")
		return len(subs) == 1 && subs[0].PendingCount == 0
	})
	nc := rawConn(t, ts)

	snapshot := func() []byte {
		t.Helper()
		var b []byte
		if err := ts.srv.Do(func(c *Core) { b = c.State().Snapshot() }); err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := snapshot()

	// Neither decodes: a length running past the end, and wire type 7.
	garbage := map[string][]byte{"truncated": {0x0a, 0x05, 'a'}, "bad wire type": {0x0f, 0x01}}
	errOf := map[string]func(*testing.T, string, []byte) string{
		"discover": func(t *testing.T, s string, b []byte) string {
			var r pb.ConnectResponse
			rawRequest(t, nc, s, b, &r)
			return r.GetError()
		},
		"pub": func(t *testing.T, s string, b []byte) string {
			var r pb.PubAck
			rawRequest(t, nc, s, b, &r)
			return r.GetError()
		},
		"sub": func(t *testing.T, s string, b []byte) string {
			var r pb.SubscriptionResponse
			rawRequest(t, nc, s, b, &r)
			return r.GetError()
		},
		"close": func(t *testing.T, s string, b []byte) string {
			var r pb.CloseResponse
			rawRequest(t, nc, s, b, &r)
			return r.GetError()
		},
	}
	cases := []struct {
		name, subject, kind string
		data                []byte
		want                string
	}{
		{"connect", subjDiscover, "discover", nil, statemachine.ErrInvalidConnReq},
		{"publish", subjPubPre + ".ok", "pub", nil, statemachine.ErrInvalidPubReq},
		{"subscribe", subjSub, "sub", nil, statemachine.ErrInvalidSubReq},
		{"unsubscribe", subjUnsub, "sub", nil, statemachine.ErrInvalidUnsubReq},
		{"subclose", subjSubClose, "sub", nil, statemachine.ErrInvalidUnsubReq},
		{"close", subjClose, "close", nil, statemachine.ErrInvalidCloseReq},
	}
	for _, tc := range cases {
		for gname, g := range garbage {
			if got := errOf[tc.kind](t, tc.subject, g); got != tc.want {
				t.Errorf("%s with %s garbage: %q, want %q", tc.name, gname, got, tc.want)
			}
		}
	}

	// Well-formed requests the server must refuse.
	refused := []struct {
		name, subject, kind string
		req                 proto.Message
		want                string
	}{
		{"connect without heartbeat inbox", subjDiscover, "discover", &pb.ConnectRequest{ClientID: "x"}, statemachine.ErrInvalidConnReq},
		{"connect with a bad client ID", subjDiscover, "discover", &pb.ConnectRequest{ClientID: "a.b", HeartbeatInbox: "hb"}, statemachine.ErrInvalidClientID},
		{"connect as a live client", subjDiscover, "discover", &pb.ConnectRequest{ClientID: "good", HeartbeatInbox: "hb"}, statemachine.ErrInvalidClient},
		{"publish from an unknown client", subjPubPre + ".ok", "pub", &pb.PubMsg{ClientID: "nobody", Guid: "g", Subject: "ok", Data: []byte("x")}, statemachine.ErrInvalidPubReq},
		{"publish from an unknown client to a new channel", subjPubPre + ".new", "pub", &pb.PubMsg{ClientID: "nobody", Guid: "g", Subject: "new", Data: []byte("x")}, statemachine.ErrInvalidPubReq},
		{"publish with a wrong connID", subjPubPre + ".ok", "pub", &pb.PubMsg{ClientID: "good", ConnID: []byte("forged"), Guid: "g", Subject: "ok"}, statemachine.ErrInvalidPubReq},
		{"publish without GUID", subjPubPre + ".ok", "pub", &pb.PubMsg{ClientID: "good", Subject: "ok"}, statemachine.ErrInvalidPubReq},
		{"subscribe from an unknown client", subjSub, "sub", &pb.SubscriptionRequest{ClientID: "nobody", Subject: "new", Inbox: "_INBOX.x", MaxInFlight: 1, AckWaitInSecs: 30}, statemachine.ErrUnknownClient},
		{"subscribe without client ID", subjSub, "sub", &pb.SubscriptionRequest{Subject: "new", Inbox: "_INBOX.x", MaxInFlight: 1, AckWaitInSecs: 30}, statemachine.ErrMissingClient},
		{"subscribe to a wildcard", subjSub, "sub", &pb.SubscriptionRequest{ClientID: "good", Subject: "new.*", Inbox: "_INBOX.x", MaxInFlight: 1, AckWaitInSecs: 30}, statemachine.ErrInvalidSubject},
		{"subscribe with a bad start position", subjSub, "sub", &pb.SubscriptionRequest{ClientID: "good", Subject: "new", Inbox: "_INBOX.x", MaxInFlight: 1, AckWaitInSecs: 30, StartPosition: 9}, statemachine.ErrInvalidStart},
		{"unsubscribe on an unknown channel", subjUnsub, "sub", &pb.UnsubscribeRequest{ClientID: "nobody", Subject: "new", Inbox: "x"}, statemachine.ErrUnknownChannel},
		{"unsubscribe an unknown subscription", subjUnsub, "sub", &pb.UnsubscribeRequest{ClientID: "good", Subject: "ok", Inbox: "x"}, statemachine.ErrInvalidSub},
		{"subclose an unknown subscription", subjSubClose, "sub", &pb.UnsubscribeRequest{ClientID: "good", Subject: "ok", Inbox: "x"}, statemachine.ErrInvalidSub},
		{"close an unknown client", subjClose, "close", &pb.CloseRequest{ClientID: "nobody"}, statemachine.ErrUnknownClient},
		{"close without client ID", subjClose, "close", &pb.CloseRequest{}, statemachine.ErrUnknownClient},
	}
	for _, tc := range refused {
		if got := errOf[tc.kind](t, tc.subject, marshal(t, tc.req)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// Garbage pings and acks are dropped without a word.
	if err := nc.Publish(subjPings, garbage["truncated"]); err != nil {
		t.Fatal(err)
	}
	for _, si := range channelSubs(t, ts, "ok") {
		if si.AckInbox != "" {
			if err := nc.Publish(si.AckInbox, garbage["truncated"]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Above the NATS max payload the client fails before sending anything.
	big := make([]byte, sc.NatsConn().MaxPayload()+1)
	if err := sc.Publish("ok", big); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("oversized publish: %v, want %v", err, nats.ErrMaxPayload)
	}
	if _, err := sc.PublishAsync("ok", big, func(string, error) {}); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("oversized async publish: %v, want %v", err, nats.ErrMaxPayload)
	}

	// A request on every subject after the bad ones flushes them through
	// the replica: then the state must be byte for byte what it was.
	var cr pb.CloseResponse
	rawRequest(t, nc, subjClose, marshal(t, &pb.CloseRequest{ClientID: "nobody"}), &cr)
	if after := snapshot(); !bytes.Equal(before, after) {
		t.Fatalf("bad input changed the state (%d bytes before, %d after)", len(before), len(after))
	}
	var counts string
	if err := ts.srv.Do(func(c *Core) {
		sm := c.State()
		msgs, _ := sm.Totals()
		counts = fmt.Sprintf("clients=%d channels=%v subs=%d msgs=%d", sm.NumClients(), sm.ChannelNames(), sm.NumSubscriptions(), msgs)
	}); err != nil {
		t.Fatal(err)
	}
	if want := "clients=1 channels=[ok] subs=1 msgs=1"; counts != want {
		t.Fatalf("state after bad input: %s, want %s", counts, want)
	}

	// And the server still serves.
	publishN(t, sc, "ok", 2, 2)
	if got := describe(recvN(t, okCh, 1)); got != "2:m2" {
		t.Fatalf("after bad input: got %q, want 2:m2", got)
	}
}

// TestAppendPubAckMatchesProto: the hand-made PubAck is proto.Marshal's.
func TestAppendPubAckMatchesProto(t *testing.T) {
	for _, a := range []*pb.PubAck{{}, {Guid: "g"}, {Error: "stan: bad"}, {Guid: strings.Repeat("x", 300), Error: "e"}} {
		want, err := proto.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendPubAck([]byte("kept"), a.GetGuid(), a.GetError()); !bytes.Equal(got[4:], want) || string(got[:4]) != "kept" {
			t.Errorf("%v: got %x, want %x", a, got, want)
		}
	}
}

// TestEncodeAcksCommandMatchesProto: the hand-made Acks command is
// proto.Marshal's.
func TestEncodeAcksCommandMatchesProto(t *testing.T) {
	runs := []*pb.AckRun{
		{AckInbox: "_STAN.ack.x.1", Subject: "foo", Sequences: []uint64{1, 2, 3}},
		{AckInbox: strings.Repeat("i", 200), Subject: strings.Repeat("s", 130), Sequences: []uint64{1 << 50, 0, 127, 128}},
		{AckInbox: "only"},
		{Subject: "subject only", Sequences: []uint64{0}},
		{},
	}
	for _, now := range []int64{0, 1, -5, 1 << 62} {
		for n := range len(runs) + 1 {
			want := statemachine.EncodeCommand(statemachine.NewCommand(now, &pb.Acks{Runs: runs[:n]}))
			if got := encodeAcksCommand(now, runs[:n]); !bytes.Equal(got, want) {
				t.Errorf("now %d, %d runs: got %x, want %x", now, n, got, want)
			}
		}
	}
}

// TestAcksQueueAsRuns: acks are batched into one command, a run per
// consecutive (inbox, channel), at most acksBatchMax acks a command.
func TestAcksQueueAsRuns(t *testing.T) {
	c := &Core{}
	ack := func(inbox, subject string, seq uint64) { c.queueAck(inbox, &pb.Ack{Subject: subject, Sequence: seq}) }
	ack("i1", "foo", 1)
	ack("i1", "foo", 2)
	ack("i2", "foo", 7)
	ack("i1", "foo", 3)
	ack("i1", "bar", 4)
	if len(c.queue) != 1 {
		t.Fatalf("%d commands, want 1", len(c.queue))
	}
	got := c.queue[0].GetAcks().GetRuns()
	want := []*pb.AckRun{{AckInbox: "i1", Subject: "foo", Sequences: []uint64{1, 2}}, {AckInbox: "i2", Subject: "foo", Sequences: []uint64{7}},
		{AckInbox: "i1", Subject: "foo", Sequences: []uint64{3}}, {AckInbox: "i1", Subject: "bar", Sequences: []uint64{4}}}
	if len(got) != len(want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("run %d: %v, want %v", i, got[i], want[i])
		}
	}
	c.queue = nil
	for i := range acksBatchMax + 1 {
		ack("i1", "foo", uint64(i+1))
	}
	if len(c.queue) != 2 || len(c.queue[0].GetAcks().GetRuns()[0].GetSequences()) != acksBatchMax {
		t.Errorf("%d commands after %d acks, want 2 with %d in the first", len(c.queue), acksBatchMax+1, acksBatchMax)
	}
}

// TestEncodePublishCommand: a Publish command framed from the clients'
// PubMsg bytes decodes to the command itself.
func TestEncodePublishCommand(t *testing.T) {
	msgs := []*pb.PubMsg{
		{ClientID: "c", Guid: "g1", Subject: "foo", Data: []byte("hello")},
		{ClientID: "c", Guid: "g2", Subject: "foo", Reply: "r", Data: bytes.Repeat([]byte{7}, 300), ConnID: []byte("conn")},
		{},
	}
	var raw [][]byte
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	for _, now := range []int64{0, 1, -5, 1 << 62} {
		acks := []string{"a", "", strings.Repeat("s", 200)}
		want := &pb.Command{NowNanos: now, Op: &pb.Command_Publish{Publish: &pb.Publish{Msgs: msgs, AckSubjects: acks}}}
		got, err := statemachine.DecodeCommand(encodePublishCommand(now, raw, acks))
		if err != nil || !proto.Equal(got, want) {
			t.Fatalf("now %d: decoded %v (%v), want %v", now, got, err, want)
		}
		if exact := statemachine.EncodeCommand(want); !bytes.Equal(encodePublishCommand(now, raw, acks), exact) {
			t.Errorf("now %d: framing differs from proto.Marshal of the decoded command", now)
		}
	}
}

// TestProtocolReplaceDurable: with ReplaceDurable (--replace_durable), a
// client that subscribes again to its durable while it is online gets it:
// the old subscription is closed, and the new one resumes with the
// unacknowledged messages first.
func TestProtocolReplaceDurable(t *testing.T) {
	ts := startTestServer(t, "", func(c *Config) { c.ReplaceDurable = true })
	sc := connect(t, ts, "again")
	_, old := subscribe(t, sc, "rd", stan.DurableName("d"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	publishN(t, sc, "rd", 1, 2)
	got := recvN(t, old, 2)
	ackAll(t, got[:1]) // m2 stays unacknowledged
	// An ack is a plain publish: wait until it is applied, or the new
	// subscription could find m1 pending too.
	subsOf := func() []statemachine.SubInfo {
		var subs []statemachine.SubInfo
		if err := ts.srv.Do(func(c *Core) { subs = c.State().ChannelSubs("rd") }); err != nil {
			t.Fatal(err)
		}
		return subs
	}
	waitFor(t, "the ack of m1", func() bool { s := subsOf(); return len(s) == 1 && s[0].PendingCount == 1 })
	_, ch := subscribe(t, sc, "rd", stan.DurableName("d"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	m := recv(t, ch)
	if m.Sequence != 2 || !m.Redelivered {
		t.Fatalf("the replacing subscription got seq %d redelivered=%v first, want seq 2 redelivered", m.Sequence, m.Redelivered)
	}
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
	publishN(t, sc, "rd", 3, 3)
	if m := recv(t, ch); m.Sequence != 3 {
		t.Fatalf("the replacing subscription got seq %d, want 3", m.Sequence)
	}
	quiet(t, old, "the replaced subscription")
	if subs := subsOf(); len(subs) != 1 {
		t.Fatalf("%d subscriptions on rd, want 1: %+v", len(subs), subs)
	}
}
