package node

import (
	"slices"
	"strconv"
	"testing"

	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/proto"
)

// partitionCore is one partitioned core driven by hand: what it sends is
// recorded in order, and time moves only when the test says.
type partitionCore struct {
	t    *testing.T
	c    *Core
	now  int64
	sent []Msg
}

func newPartitionCore(t *testing.T, partitions ...string) *partitionCore {
	t.Helper()
	p := &partitionCore{t: t, now: 1_000_000_000}
	cfg := Config{ClusterID: "part", NodeName: "stanza", Partitions: partitions, SubjectScope: "s1"}
	c, err := New(cfg, NewMemStorage(), func(subject, reply string, data []byte) {
		p.sent = append(p.sent, Msg{Subject: subject, Reply: reply, Data: slices.Clone(data)})
	})
	if err != nil {
		t.Fatal(err)
	}
	p.c = c
	for range 100 {
		if c.Serving() {
			return p
		}
		p.tick(c.cfg.TickNanos)
	}
	t.Fatal("the core never served")
	return nil
}

func (p *partitionCore) tick(nanos int64) {
	p.now += nanos
	p.c.Tick(p.now)
	if err := p.c.Process(p.now); err != nil {
		p.t.Fatal(err)
	}
}

// receive hands the core m and processes it, and returns what it sent.
func (p *partitionCore) receive(subject, reply string, m proto.Message) []Msg {
	p.t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sent = nil
	p.c.Receive(p.now, Msg{Subject: subject, Reply: reply, Data: data})
	if err := p.c.Process(p.now); err != nil {
		p.t.Fatal(err)
	}
	return p.sent
}

// to returns the messages of sent on subject, decoded into new(T)s.
func to[T any, P interface {
	*T
	proto.Message
}](t *testing.T, sent []Msg, subject string) []P {
	t.Helper()
	var out []P
	for _, m := range sent {
		if m.Subject == subject {
			v := P(new(T))
			if err := proto.Unmarshal(m.Data, v); err != nil {
				t.Fatalf("%s: %v", subject, err)
			}
			out = append(out, v)
		}
	}
	return out
}

func TestPartitionListensOnItsChannelsAndScopedSubjects(t *testing.T) {
	p := newPartitionCore(t, "foo", "bar.*")
	listen := p.c.Listen()
	for _, want := range []string{"_STAN.pub.part.foo", "_STAN.pub.part.bar.*", "_STAN.discover.part", "_STAN.sub.part",
		"_STAN.ack.part.s1.>", "raft"} {
		if want == "raft" {
			want = p.c.raftSubject(p.c.id)
			if want != "_STANZA.raft.part.s1."+strconv.FormatUint(p.c.id, 16) {
				t.Fatalf("raft subject %q is not scoped", want)
			}
		}
		if !slices.Contains(listen, want) {
			t.Errorf("does not listen on %s: %v", want, listen)
		}
	}
	if slices.Contains(listen, "_STAN.pub.part.>") {
		t.Errorf("a partitioned server listens on every channel's publishes: %v", listen)
	}
}

// A publish or a subscription that arrives before its client's connect
// (which won the race on another server) waits for it, in order.
func TestPartitionHoldsRequestsUntilTheConnect(t *testing.T) {
	p := newPartitionCore(t, "foo", "bar.*")
	pub := func(client, guid, channel string) []Msg {
		return p.receive("_STAN.pub.part."+channel, "acks."+client, &pb.PubMsg{ClientID: client, Guid: guid, Subject: channel, Data: []byte(guid)})
	}
	if sent := pub("early", "g1", "foo"); len(sent) != 0 {
		t.Fatalf("a publish from an unknown client was answered at once: %v", sent)
	}
	if sent := pub("early", "g2", "bar.x"); len(sent) != 0 {
		t.Fatalf("a second publish from an unknown client was answered at once: %v", sent)
	}
	sent := p.receive("_STAN.discover.part", "connect.early", &pb.ConnectRequest{ClientID: "early", HeartbeatInbox: "hb.early"})
	if crs := to[pb.ConnectResponse](t, sent, "connect.early"); len(crs) != 1 || crs[0].GetError() != "" {
		t.Fatalf("connect: %v", crs)
	}
	acks := to[pb.PubAck](t, sent, "acks.early")
	if len(acks) != 2 || acks[0].GetGuid() != "g1" || acks[1].GetGuid() != "g2" || acks[0].GetError() != "" || acks[1].GetError() != "" {
		t.Fatalf("held publishes after the connect: %v", acks)
	}
	if info, ok := p.c.State().Channel("bar.x"); !ok || info.Last != 1 {
		t.Fatalf("channel bar.x: %+v %v", info, ok)
	}

	// A subscription waits the same way.
	sub := &pb.SubscriptionRequest{ClientID: "late", Subject: "foo", Inbox: "in.late", MaxInFlight: 10, AckWaitInSecs: 30,
		StartPosition: pb.StartPosition_First}
	if sent := p.receive("_STAN.sub.part", "sub.late", sub); len(sent) != 0 {
		t.Fatalf("a subscription from an unknown client was answered at once: %v", sent)
	}
	sent = p.receive("_STAN.discover.part", "connect.late", &pb.ConnectRequest{ClientID: "late", HeartbeatInbox: "hb.late"})
	if srs := to[pb.SubscriptionResponse](t, sent, "sub.late"); len(srs) != 1 || srs[0].GetError() != "" {
		t.Fatalf("held subscription after the connect: %v", srs)
	}
	if got := to[pb.MsgProto](t, sent, "in.late"); len(got) != 1 || string(got[0].GetData()) != "g1" {
		t.Fatalf("the held subscription got %v, want foo's message", got)
	}
}

// A client that never connects here gets the error of an unknown client
// once its second of grace is over, not before.
func TestPartitionHeldRequestFailsAfterTheWait(t *testing.T) {
	p := newPartitionCore(t, "foo")
	if sent := p.receive("_STAN.pub.part.foo", "acks.ghost", &pb.PubMsg{ClientID: "ghost", Guid: "g", Subject: "foo"}); len(sent) != 0 {
		t.Fatalf("answered at once: %v", sent)
	}
	var acks []*pb.PubAck
	waited := int64(0)
	for len(acks) == 0 && waited < 2*clientWaitNanos {
		p.sent = nil
		p.tick(p.c.cfg.TickNanos)
		waited += p.c.cfg.TickNanos
		acks = to[pb.PubAck](t, p.sent, "acks.ghost")
	}
	if len(acks) != 1 || acks[0].GetError() != statemachine.ErrInvalidPubReq {
		t.Fatalf("after %d ms: %v", waited/1e6, acks)
	}
	if waited < clientWaitNanos {
		t.Fatalf("failed after %d ms, before the wait was over", waited/1e6)
	}
	if p.c.State().NumChannels() != 0 {
		t.Fatal("a refused publish created its channel")
	}
}

// What another server has is left to it: a subscription request or an
// unsubscribe gets no answer here, and a publish whose PubMsg names a
// channel this server does not have is refused (whatever subject it came
// on).
func TestPartitionLeavesOtherChannelsAlone(t *testing.T) {
	p := newPartitionCore(t, "foo")
	p.receive("_STAN.discover.part", "connect.c", &pb.ConnectRequest{ClientID: "c", HeartbeatInbox: "hb.c"})
	sub := &pb.SubscriptionRequest{ClientID: "c", Subject: "other", Inbox: "in.c", MaxInFlight: 10, AckWaitInSecs: 30,
		StartPosition: pb.StartPosition_NewOnly}
	if sent := p.receive("_STAN.sub.part", "sub.c", sub); len(sent) != 0 {
		t.Fatalf("subscription on another server's channel answered: %v", sent)
	}
	if sent := p.receive("_STAN.unsub.part", "unsub.c", &pb.UnsubscribeRequest{ClientID: "c", Subject: "other", Inbox: "x"}); len(sent) != 0 {
		t.Fatalf("unsubscribe on another server's channel answered: %v", sent)
	}
	sent := p.receive("_STAN.pub.part.foo", "acks.c", &pb.PubMsg{ClientID: "c", Guid: "g", Subject: "other"})
	if acks := to[pb.PubAck](t, sent, "acks.c"); len(acks) != 1 || acks[0].GetError() != statemachine.ErrInvalidPubReq {
		t.Fatalf("publish to another server's channel: %v", acks)
	}
	// An invalid subscription is still refused: no server could take it.
	sub.Subject = "bad..subject"
	if srs := to[pb.SubscriptionResponse](t, p.receive("_STAN.sub.part", "sub.c", sub), "sub.c"); len(srs) != 1 || srs[0].GetError() != statemachine.ErrInvalidSubject {
		t.Fatalf("invalid subject: %v", srs)
	}
	if p.c.State().NumChannels() != 0 || p.c.State().NumSubscriptions() != 0 {
		t.Fatal("another server's channel was created here")
	}
}

func TestPartitionConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"a cluster", Config{ClusterID: "x", NodeName: "a", Peers: []string{"a", "b", "c"}, Partitions: []string{"foo"}}},
		{"a bad pattern", Config{ClusterID: "x", NodeName: "a", Partitions: []string{"foo.>.bar"}}},
		{"a bad scope", Config{ClusterID: "x", NodeName: "a", SubjectScope: "a.b"}},
	} {
		c.cfg.Defaults()
		if err := c.cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// A subscription from a client that never connects here gets
// nats-streaming-server's answer once the wait is over.
func TestPartitionHeldSubscriptionFailsAsInvalid(t *testing.T) {
	p := newPartitionCore(t, "foo")
	sub := &pb.SubscriptionRequest{ClientID: "ghost", Subject: "foo", Inbox: "in.ghost", MaxInFlight: 1, AckWaitInSecs: 30,
		StartPosition: pb.StartPosition_NewOnly}
	if sent := p.receive("_STAN.sub.part", "sub.ghost", sub); len(sent) != 0 {
		t.Fatalf("answered at once: %v", sent)
	}
	var srs []*pb.SubscriptionResponse
	for i := 0; len(srs) == 0 && i < 20; i++ {
		p.sent = nil
		p.tick(p.c.cfg.TickNanos)
		srs = to[pb.SubscriptionResponse](t, p.sent, "sub.ghost")
	}
	if len(srs) != 1 || srs[0].GetError() != statemachine.ErrInvalidSubReq {
		t.Fatalf("after the wait: %v", srs)
	}
}

// A partitioned server tells a client its connection is gone only if the
// connection was registered here: a ping from one it never saw (the client
// connected before this server started) gets no answer, where the error
// would close a client the other servers serve.
func TestPartitionPingsOnlyOnConnectionsItHad(t *testing.T) {
	p := newPartitionCore(t, "foo")
	if sent := p.receive("_STAN.discover.part.pings", "ping.1", &pb.Ping{ConnID: []byte("never-here")}); len(sent) != 0 {
		t.Fatalf("ping from a connection never registered here answered: %v", sent)
	}
	p.receive("_STAN.discover.part", "connect.k", &pb.ConnectRequest{ClientID: "k", HeartbeatInbox: "hb.k", ConnID: []byte("conn-k"), Protocol: 1})
	if prs := to[pb.PingResponse](t, p.receive("_STAN.discover.part.pings", "ping.2", &pb.Ping{ConnID: []byte("conn-k")}), "ping.2"); len(prs) != 1 || prs[0].GetError() != "" {
		t.Fatalf("ping of a live connection: %v", prs)
	}
	p.receive("_STAN.close.part", "close.k", &pb.CloseRequest{ClientID: "k"})
	if prs := to[pb.PingResponse](t, p.receive("_STAN.discover.part.pings", "ping.3", &pb.Ping{ConnID: []byte("conn-k")}), "ping.3"); len(prs) != 1 || prs[0].GetError() != statemachine.ErrPingReplaced {
		t.Fatalf("ping of a connection closed here: %v", prs)
	}
}
