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
	if _, err := statemachine.DecodeCommand(cmd); err == nil || !strings.Contains(err.Error(), "field 30") {
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
