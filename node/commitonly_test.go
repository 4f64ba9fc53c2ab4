package node

import (
	"strings"
	"testing"

	"github.com/stanza-io/stanza/statemachine/pb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// raftMsg decodes a raft payload as a replica does; nil for anything that
// is not one whole message.
func raftMsg(data []byte) *raftpb.Message {
	m, _ := (&reassembler{}).add(data)
	return m
}

// TestCommitOnlyAppendsNotSent: with one publisher waiting on each PubAck,
// the leader sends its followers the appends that carry entries and no
// appends that carry only a newer commit index; the followers still apply
// every message, by the next append or heartbeat.
func TestCommitOnlyAppendsNotSent(t *testing.T) {
	bus := newBenchBus(t, 3)
	leader := bus.leader()
	subj := SubjectsFor("_STAN.discover", "bench")
	bus.request(t, subj.Discover, "bench.connect", &pb.ConnectRequest{ClientID: "me", HeartbeatInbox: "bench.hb", Protocol: 1, ConnID: []byte("c1")})
	withEntries, commitOnly := 0, 0
	bus.drop = func(to *Core, data []byte) bool {
		if m := raftMsg(data); m != nil && m.GetType() == raftpb.MsgApp {
			if len(m.GetEntries()) > 0 {
				withEntries++
			} else {
				commitOnly++
			}
		}
		return false
	}
	const n = 20
	for i := range n {
		data, _ := proto.Marshal(&pb.PubMsg{ClientID: "me", ConnID: []byte("c1"), Guid: strings.Repeat("g", i+1), Subject: "foo", Data: []byte("x")})
		leader.Receive(bus.nowNano, Msg{Subject: subj.PubPrefix + ".foo", Reply: "bench.puback", Data: data})
		bus.pump(t)
		if bus.pubAcks != i+1 {
			t.Fatalf("publish %d: %d PubAcks", i, bus.pubAcks)
		}
	}
	if bus.pubAcks != n {
		t.Fatalf("%d PubAcks for %d publishes", bus.pubAcks, n)
	}
	if withEntries < 2*n || commitOnly != 0 {
		t.Errorf("appends to followers: %d with entries, %d with only a commit index; want at least %d and 0", withEntries, commitOnly, 2*n)
	}
	// One heartbeat later every follower has applied all n.
	bus.nowNano += 100_000_000
	for _, c := range bus.cores {
		c.Tick(bus.nowNano)
	}
	bus.pump(t)
	for _, c := range bus.cores {
		if ch, _ := c.sm.Channel("foo"); ch.Last != n {
			t.Errorf("%s: channel foo ends at %d, want %d", c.cfg.NodeName, ch.Last, n)
		}
	}
}

// TestLostAppendRecoveredByHeartbeat: with one follower down, the append
// that carries a publish to the other one is lost. The leader must find out
// from that follower's next heartbeat response (raft sends it an empty
// append, which it rejects, and the entry goes again): dropping that empty
// append as commit-only would leave the publish uncommitted until some
// other proposal came.
func TestLostAppendRecoveredByHeartbeat(t *testing.T) {
	bus := newBenchBus(t, 3)
	leader := bus.leader()
	var live, down *Core
	for _, c := range bus.cores {
		switch {
		case c == leader:
		case live == nil:
			live = c
		default:
			down = c
		}
	}
	subj := SubjectsFor("_STAN.discover", "bench")
	bus.request(t, subj.Discover, "bench.connect", &pb.ConnectRequest{ClientID: "me", HeartbeatInbox: "bench.hb", Protocol: 1, ConnID: []byte("c1")})
	lost := 0
	bus.drop = func(to *Core, data []byte) bool {
		if to == down {
			return true
		}
		if m := raftMsg(data); m != nil && m.GetType() == raftpb.MsgApp && len(m.GetEntries()) > 0 && to == live && lost == 0 {
			lost++
			return true
		}
		return false
	}
	data, _ := proto.Marshal(&pb.PubMsg{ClientID: "me", ConnID: []byte("c1"), Guid: "g1", Subject: "foo", Data: []byte("x")})
	leader.Receive(bus.nowNano, Msg{Subject: subj.PubPrefix + ".foo", Reply: "bench.puback", Data: data})
	bus.pump(t)
	if lost != 1 || bus.pubAcks != 0 {
		t.Fatalf("lost %d appends, %d PubAcks: the test did not lose the publish's append", lost, bus.pubAcks)
	}
	// A few heartbeats (one a tick), far below the election timeout.
	for range 3 {
		bus.nowNano += 100_000_000
		for _, c := range bus.cores {
			c.Tick(bus.nowNano)
		}
		bus.pump(t)
	}
	if bus.pubAcks != 1 {
		t.Fatalf("%d PubAcks three heartbeats after the lost append, want 1", bus.pubAcks)
	}
	if ch, _ := live.sm.Channel("foo"); ch.Last != 1 {
		t.Errorf("live follower: channel foo ends at %d, want 1", ch.Last)
	}
}
