package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// TestUnknownCommandStopsReplicas: an entry holding a command with a
// top-level field this version does not know (what a later version's new
// operation looks like to this one) stops every replica before it, with
// its index in the error, instead of being skipped by some and applied by
// others. What was applied before it stays.
func TestUnknownCommandStopsReplicas(t *testing.T) {
	bus := newBenchBus(t, 3)
	leader := bus.leader()
	subj := SubjectsFor("_STAN.discover", "bench")
	bus.request(t, subj.Discover, "bench.connect", &pb.ConnectRequest{ClientID: "me", HeartbeatInbox: "bench.hb", Protocol: 1, ConnID: []byte("c1")})
	data, _ := proto.Marshal(&pb.PubMsg{ClientID: "me", ConnID: []byte("c1"), Guid: "g1", Subject: "foo", Data: []byte("x")})
	leader.Receive(bus.nowNano, Msg{Subject: subj.PubPrefix + ".foo", Reply: "bench.puback", Data: data})
	bus.pump(t)
	if bus.pubAcks != 1 {
		t.Fatalf("%d PubAcks, want 1", bus.pubAcks)
	}
	before := leader.Applied()

	// A known operation and a field 30 beside it.
	cmd := statemachine.EncodeCommand(statemachine.NewCommand(bus.nowNano, &pb.ExpireMsgs{Channel: "foo"}))
	cmd = protowire.AppendTag(cmd, 30, protowire.VarintType)
	cmd = protowire.AppendVarint(cmd, 2)
	if _, err := statemachine.DecodeCommand(cmd); !errors.Is(err, statemachine.ErrNewerCommand) || !strings.Contains(err.Error(), "field 30") {
		t.Fatalf("DecodeCommand of a command with field 30: %v", err)
	}
	if err := leader.rn.Propose(cmd); err != nil {
		t.Fatal(err)
	}
	// The leader stops once the entry commits; the others elect a new one,
	// which commits the entry with its own and stops too. The last replica
	// has no quorum left, and applies nothing.
	stopped := map[*Core]error{}
	for range 200 {
		bus.nowNano += 100_000_000
		for _, c := range bus.cores {
			if stopped[c] == nil {
				c.Tick(bus.nowNano)
			}
		}
		for _, c := range bus.cores {
			if stopped[c] != nil {
				continue
			}
			if err := c.Process(bus.nowNano); err != nil {
				stopped[c] = err
			}
		}
		q := bus.queue
		bus.queue = nil
		for _, m := range q {
			if stopped[m.to] == nil {
				m.to.Receive(bus.nowNano, m.m)
			}
		}
	}
	if len(stopped) < 2 {
		t.Fatalf("%d of %d replicas stopped, want a quorum", len(stopped), len(bus.cores))
	}
	for c, err := range stopped {
		if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "cannot apply") {
			t.Errorf("replica %s: %v", c.cfg.NodeName, err)
		}
	}
	for _, c := range bus.cores {
		if c.Applied() != before {
			t.Errorf("replica %s applied %d, want %d (nothing past the unknown command)", c.cfg.NodeName, c.Applied(), before)
		}
		if msgs, _ := c.State().Totals(); msgs != 1 {
			t.Errorf("replica %s holds %d messages, want 1", c.cfg.NodeName, msgs)
		}
	}
}

// TestMalformedEntrySkipped: bytes that are no command at all (no version
// writes them; a bug would) are skipped alike by every replica, which go on
// serving and stay equal: nothing was acknowledged for them.
func TestMalformedEntrySkipped(t *testing.T) {
	bus := newBenchBus(t, 3)
	leader := bus.leader()
	subj := SubjectsFor("_STAN.discover", "bench")
	bus.request(t, subj.Discover, "bench.connect", &pb.ConnectRequest{ClientID: "me", HeartbeatInbox: "bench.hb", Protocol: 1, ConnID: []byte("c1")})
	bad := []byte{0x22, 0x05, 0x0a} // a Publish whose length runs past the end
	if _, err := statemachine.DecodeCommand(bad); err == nil || errors.Is(err, statemachine.ErrNewerCommand) {
		t.Fatalf("DecodeCommand(%x): %v, want a decode error that is not ErrNewerCommand", bad, err)
	}
	if err := leader.rn.Propose(bad); err != nil {
		t.Fatal(err)
	}
	bus.pump(t) // fails the test if a core stops
	data, _ := proto.Marshal(&pb.PubMsg{ClientID: "me", ConnID: []byte("c1"), Guid: "g1", Subject: "foo", Data: []byte("x")})
	leader.Receive(bus.nowNano, Msg{Subject: subj.PubPrefix + ".foo", Reply: "bench.puback", Data: data})
	bus.pump(t)
	if bus.pubAcks != 1 {
		t.Fatalf("%d PubAcks after the skipped entry, want 1", bus.pubAcks)
	}
	bus.nowNano += 100_000_000
	for _, c := range bus.cores {
		c.Tick(bus.nowNano)
	}
	bus.pump(t)
	for _, c := range bus.cores {
		if c.Applied() != leader.Applied() {
			t.Errorf("replica %s applied %d, the leader %d", c.cfg.NodeName, c.Applied(), leader.Applied())
		}
		if msgs, _ := c.State().Totals(); msgs != 1 {
			t.Errorf("replica %s holds %d messages, want 1", c.cfg.NodeName, msgs)
		}
	}
}
