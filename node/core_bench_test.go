package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/proto"
)

// benchBus wires cores together in memory: raft messages go to their
// replica, everything else is counted or handed to the benchmark's client.
// No NATS, no disk (MemStorage), one goroutine: what is measured is the
// CPU and allocations of the cores themselves.
type benchBus struct {
	cores   []*Core
	byRaft  map[string]*Core
	queue   []benchMsg
	pubAcks int
	deliver func(subject string, data []byte) // messages to the client's inboxes
	// fromClient is what the client sends back (acks): handed to the
	// leader after a round, never while a core is processing.
	fromClient []Msg
	nowNano    int64
	// drop, when set, decides which raft messages are lost: data is the
	// wire payload sent to the core to.
	drop func(to *Core, data []byte) bool
}

type benchMsg struct {
	to *Core
	m  Msg
}

func newBenchBus(b testing.TB, nodes int) *benchBus {
	bus := &benchBus{byRaft: map[string]*Core{}, nowNano: 1_000_000_000}
	var peers []string
	for i := range nodes {
		peers = append(peers, fmt.Sprintf("n%d", i))
	}
	for _, name := range peers {
		cfg := Config{ClusterID: "bench", NodeName: name, Peers: peers, Logger: slog.New(slog.DiscardHandler),
			SnapshotEntries: 10_000}
		var c *Core
		c, err := New(cfg, NewMemStorage(), func(subject, reply string, data []byte) { bus.out(subject, reply, data) })
		if err != nil {
			b.Fatal(err)
		}
		bus.cores = append(bus.cores, c)
		bus.byRaft[c.raftSubject(c.id)] = c
	}
	// Elect a leader: tick until one serves.
	for range 1000 {
		if bus.leader() != nil {
			return bus
		}
		bus.nowNano += 100_000_000
		for _, c := range bus.cores {
			c.Tick(bus.nowNano)
		}
		bus.pump(b)
	}
	b.Fatal("no leader")
	return nil
}

func (bus *benchBus) out(subject, _ string, data []byte) {
	if c := bus.byRaft[subject]; c != nil {
		if bus.drop != nil && bus.drop(c, data) {
			return
		}
		// A copy, as a transport makes: the core reuses its buffer.
		bus.queue = append(bus.queue, benchMsg{to: c, m: Msg{Subject: subject, Data: bytes.Clone(data)}})
		return
	}
	if subject == "bench.puback" {
		bus.pubAcks++
		return
	}
	if bus.deliver != nil {
		bus.deliver(subject, data)
	}
}

func (bus *benchBus) leader() *Core {
	for _, c := range bus.cores {
		if c.Serving() {
			return c
		}
	}
	return nil
}

// pump processes every core and hands over their raft messages until
// nothing moves.
func (bus *benchBus) pump(b testing.TB) {
	for range 10_000 {
		for _, c := range bus.cores {
			if err := c.Process(bus.nowNano); err != nil {
				b.Fatal(err)
			}
		}
		if len(bus.queue) == 0 && len(bus.fromClient) == 0 {
			return
		}
		q, fc := bus.queue, bus.fromClient
		bus.queue, bus.fromClient = nil, nil
		for _, m := range q {
			m.to.Receive(bus.nowNano, m.m)
		}
		if l := bus.leader(); l != nil {
			for _, m := range fc {
				l.Receive(bus.nowNano, m)
			}
		}
	}
	b.Fatal("the cores never settle")
}

// request sends a client request to the leader and pumps until it is done.
func (bus *benchBus) request(b testing.TB, subject, reply string, m proto.Message) {
	data, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	bus.leader().Receive(bus.nowNano, Msg{Subject: subject, Reply: reply, Data: data})
	bus.pump(b)
}

// BenchmarkCorePublish publishes batches of 128-byte messages through the
// leader and, with followers, through raft: ns and allocations are per
// message, over every replica. "sub" adds a subscriber that acks each
// delivery (MaxInflight 1024).
func BenchmarkCorePublish(b *testing.B) {
	for _, bc := range []struct {
		nodes int
		sub   bool
	}{{1, false}, {1, true}, {3, false}, {3, true}} {
		name := fmt.Sprintf("nodes=%d", bc.nodes)
		if bc.sub {
			name += "/sub"
		}
		b.Run(name, func(b *testing.B) {
			batch := benchBatch
			bus := newBenchBus(b, bc.nodes)
			subj := SubjectsFor("_STAN.discover", "bench")
			bus.request(b, subj.Discover, "bench.connect", &pb.ConnectRequest{ClientID: "me", HeartbeatInbox: "bench.hb", Protocol: 1, ConnID: []byte("c1")})
			delivered := 0
			var ackInbox string
			if bc.sub {
				bus.deliver = func(subject string, data []byte) {
					switch {
					case subject == "bench.subreply":
						var r pb.SubscriptionResponse
						if err := proto.Unmarshal(data, &r); err != nil || r.GetError() != "" {
							b.Fatalf("subscribe: %v %q", err, r.GetError())
						}
						ackInbox = r.GetAckInbox()
					case subject == "bench.msgs":
						var m pb.MsgProto
						if err := proto.Unmarshal(data, &m); err != nil {
							b.Fatal(err)
						}
						delivered++
						ack, _ := proto.Marshal(&pb.Ack{Subject: "foo", Sequence: m.GetSequence()})
						bus.fromClient = append(bus.fromClient, Msg{Subject: ackInbox, Data: ack})
					}
				}
				bus.request(b, subj.Sub, "bench.subreply", &pb.SubscriptionRequest{ClientID: "me", Subject: "foo", Inbox: "bench.msgs",
					MaxInFlight: 1024, AckWaitInSecs: 30, StartPosition: pb.StartPosition_NewOnly})
				if ackInbox == "" {
					b.Fatal("no subscription")
				}
			}
			payload := []byte(strings.Repeat("x", 128))
			msgs := make([][]byte, batch)
			for i := range msgs {
				msgs[i], _ = proto.Marshal(&pb.PubMsg{ClientID: "me", ConnID: []byte("c1"), Guid: fmt.Sprintf("guid-%d", i), Subject: "foo", Data: payload})
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for range b.N {
				leader := bus.leader()
				for _, m := range msgs {
					leader.Receive(bus.nowNano, Msg{Subject: subj.PubPrefix + ".foo", Reply: "bench.puback", Data: m})
				}
				bus.nowNano += 1_000_000
				bus.pump(b)
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			n := b.N * batch
			if bus.pubAcks != n {
				b.Fatalf("%d PubAcks for %d messages", bus.pubAcks, n)
			}
			if bc.sub && delivered != n {
				b.Fatalf("%d deliveries for %d messages", delivered, n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/msg")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n), "allocs/msg")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchBatch is how many messages BenchmarkCorePublish hands the leader
// between two rounds (CORE_BENCH_BATCH to change it).
var benchBatch = func() int {
	if n, err := strconv.Atoi(os.Getenv("CORE_BENCH_BATCH")); err == nil && n > 0 {
		return n
	}
	return 256
}()
