package statemachine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stanza-io/stanza/statemachine/pb"
)

// commandGen draws commands from a small universe of clients, channels and
// names, so that they collide often: duplicate IDs, resumes, queue joins,
// acks of real and unknown sequences, and time-driven work.
type commandGen struct {
	r      *rand.Rand
	nowSec int64
	nAck   int
	acks   []string // ack inboxes handed out
}

func (g *commandGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *commandGen) next(s *State) *pb.Command {
	if g.r.IntN(10) == 0 {
		g.nowSec += int64(g.r.IntN(40))
	}
	now := g.nowSec * nanosPerSecond
	cl := g.pick("c0", "c1", "c2", "c3", "bad id")
	chn := g.pick("foo", "bar", "baz.q", "Foo", "a.*")
	cmd := &pb.Command{NowNanos: now}
	switch k := g.r.IntN(100); {
	case k < 8:
		cmd.Op = &pb.Command_Connect{Connect: &pb.Connect{Replace: g.r.IntN(3) == 0, Request: &pb.ConnectRequest{
			ClientID: cl, HeartbeatInbox: "hb." + cl, Protocol: 1, ConnID: []byte(fmt.Sprintf("conn.%s.%d", cl, g.r.IntN(3)))}}}
	case k < 11:
		cmd.Op = &pb.Command_Close{Close: &pb.CloseClient{ClientID: cl}}
	case k < 45:
		var msgs []*pb.PubMsg
		for i := g.r.IntN(4); i >= 0; i-- {
			conn := []byte(fmt.Sprintf("conn.%s.%d", cl, g.r.IntN(3)))
			if g.r.IntN(4) == 0 {
				conn = nil
			}
			msgs = append(msgs, &pb.PubMsg{ClientID: cl, Guid: fmt.Sprint(g.r.IntN(1000)), Subject: chn, ConnID: conn,
				Data: bytes.Repeat([]byte{'x'}, g.r.IntN(40))})
		}
		cmd.Op = &pb.Command_Publish{Publish: &pb.Publish{Msgs: msgs}}
	case k < 60:
		g.nAck++
		ack := fmt.Sprintf("ack.%d", g.nAck)
		g.acks = append(g.acks, ack)
		req := &pb.SubscriptionRequest{ClientID: cl, Subject: chn, Inbox: "in." + ack, MaxInFlight: int32(g.r.IntN(8)),
			AckWaitInSecs: int32(g.r.IntN(20)), StartPosition: pb.StartPosition(g.r.IntN(6)),
			StartSequence: uint64(g.r.IntN(30)), StartTimeDelta: int64(g.r.IntN(100)) * nanosPerSecond}
		if g.r.IntN(2) == 0 {
			req.DurableName = g.pick("d1", "d2", "d:x")
		}
		if g.r.IntN(3) == 0 {
			req.QGroup = g.pick("q1", "q2")
		}
		cmd.Op = &pb.Command_Subscribe{Subscribe: &pb.Subscribe{Request: req, AckInbox: ack}}
	case k < 68:
		inbox := "nosuch"
		if len(g.acks) > 0 {
			inbox = g.acks[g.r.IntN(len(g.acks))]
		}
		cmd.Op = &pb.Command_Unsubscribe{Unsubscribe: &pb.Unsubscribe{CloseOnly: g.r.IntN(2) == 0,
			Request: &pb.UnsubscribeRequest{ClientID: cl, Subject: chn, Inbox: inbox}}}
	case k < 88:
		var acks []*pb.AckFrom
		for i := g.r.IntN(5); i >= 0 && len(g.acks) > 0; i-- {
			acks = append(acks, &pb.AckFrom{AckInbox: g.acks[g.r.IntN(len(g.acks))], Ack: &pb.Ack{Subject: chn, Sequence: uint64(g.r.IntN(30))}})
		}
		cmd.Op = &pb.Command_Acks{Acks: &pb.Acks{Acks: acks}}
	case k < 92:
		cmd.Op = &pb.Command_ClientHealth{ClientHealth: &pb.ClientHealth{ClientID: cl, Failed: g.r.IntN(2) == 0}}
	case k < 94:
		cmd.Op = &pb.Command_Redeliver{Redeliver: &pb.Redeliver{SubID: uint64(g.r.IntN(20))}}
	default:
		// What the leader would propose now, or a stale one.
		if due := s.Due(now); len(due) > 0 {
			return due[g.r.IntN(len(due))]
		}
		cmd.Op = &pb.Command_Expire{Expire: &pb.ExpireMsgs{Channel: chn}}
	}
	return cmd
}

func testLimits() Limits {
	l := DefaultLimits()
	l.MaxChannels = 4
	l.MaxSubscriptions = 6
	l.MaxMsgs = 25
	l.MaxBytes = 600
	l.MaxAgeNanos = 300 * nanosPerSecond
	l.MaxInactivityNanos = 500 * nanosPerSecond
	l.PerChannel = map[string]ChannelLimits{"baz.*": {MaxMsgs: 5}, "bar": {MaxAgeNanos: -1}}
	return l
}

// TestDeterminism applies 10,000 random commands to two replicas, and to a
// third restored from a snapshot taken midway: every result and the final
// snapshots are byte-identical.
func TestDeterminism(t *testing.T) {
	const n = 10000
	gen := &commandGen{r: rand.New(rand.NewPCG(1, 2))}
	cfg := Config{Limits: testLimits()}
	a, b := New(cfg), New(cfg)
	var c *State
	var deliveries int
	for i := 0; i < n; i++ {
		cmd := gen.next(a)
		data := EncodeCommand(cmd)
		dec, err := DecodeCommand(data)
		if err != nil {
			t.Fatal(err)
		}
		ra, rb := a.Apply(cmd), b.Apply(dec)
		if got, want := fmt.Sprint(render(rb)), fmt.Sprint(render(ra)); got != want {
			t.Fatalf("command %d: replicas decided differently:\n%s\nvs\n%s", i, got, want)
		}
		deliveries += len(ra.Deliveries)
		if c != nil {
			if got, want := render(c.Apply(dec)), render(ra); got != want {
				t.Fatalf("command %d: restored replica decided differently:\n%s\nvs\n%s", i, got, want)
			}
		}
		if err := a.CheckInvariants(); err != nil {
			t.Fatalf("command %d (%v): %v", i, cmd, err)
		}
		if i == n/2 {
			c = New(cfg)
			if err := c.Restore(a.SnapshotWithMessages()); err != nil {
				t.Fatal(err)
			}
		}
	}
	sa := a.SnapshotWithMessages()
	if !bytes.Equal(sa, b.SnapshotWithMessages()) || !bytes.Equal(sa, c.SnapshotWithMessages()) {
		t.Fatal("snapshots differ after the same commands")
	}
	if deliveries < 500 || len(a.channels) < 3 {
		t.Fatalf("the random workload is too weak: %d deliveries, %d channels", deliveries, len(a.channels))
	}
	t.Logf("%d commands, %d deliveries, snapshot %d bytes", n, deliveries, len(sa))
}

// addCommandSeeds adds n encoded commands of a random workload (seeded
// with seed) to f's corpus.
func addCommandSeeds(f *testing.F, seed uint64, n int) {
	gen := &commandGen{r: rand.New(rand.NewPCG(seed, seed+1))}
	s := New(Config{Limits: testLimits()})
	for range n {
		cmd := gen.next(s)
		s.Apply(cmd)
		f.Add(EncodeCommand(cmd))
	}
}

// FuzzApply feeds arbitrary bytes as a sequence of commands: whatever
// decodes is applied, and the state must hold together; nothing panics.
func FuzzApply(f *testing.F) {
	addCommandSeeds(f, 3, 40)
	f.Add([]byte{0x12, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(Config{Limits: testLimits()})
		// Chunks separated by 0xff bytes are separate commands.
		for _, chunk := range bytes.Split(data, []byte{0xff}) {
			cmd, err := DecodeCommand(chunk)
			if err != nil {
				continue
			}
			s.Apply(cmd)
			if err := s.CheckInvariants(); err != nil {
				t.Fatalf("after %v: %v", cmd, err)
			}
		}
		r := New(Config{Limits: testLimits()})
		if err := r.Restore(s.SnapshotWithMessages()); err != nil {
			t.Fatalf("restore of a valid state: %v", err)
		}
	})
}

// FuzzRestore feeds arbitrary bytes as a snapshot: it is rejected with an
// error or restored into a state that holds together.
func FuzzRestore(f *testing.F) {
	gen := &commandGen{r: rand.New(rand.NewPCG(5, 6))}
	s := New(Config{Limits: testLimits()})
	for i := 0; i < 200; i++ {
		s.Apply(gen.next(s))
	}
	f.Add(s.SnapshotWithMessages())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := New(Config{Limits: testLimits()})
		before := r.SnapshotWithMessages()
		if err := r.Restore(data); err != nil {
			if !bytes.Equal(before, r.SnapshotWithMessages()) {
				t.Fatal("a rejected snapshot changed the state")
			}
			return
		}
		if err := r.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
		gen := &commandGen{r: rand.New(rand.NewPCG(7, 8))}
		for i := 0; i < 20; i++ {
			r.Apply(gen.next(r))
			if err := r.CheckInvariants(); err != nil {
				t.Fatalf("after restoring %x: %v", data, err)
			}
		}
	})
}

// TestAckRunsApplyAsSingleAcks applies random commands to two replicas,
// every Acks command to one as single acks and to the other as runs
// (consecutive acks on one inbox for one channel merged, as the leader
// queues them): every result and the final snapshots are the same.
func TestAckRunsApplyAsSingleAcks(t *testing.T) {
	gen := &commandGen{r: rand.New(rand.NewPCG(3, 4))}
	cfg := Config{Limits: testLimits()}
	single, runs := New(cfg), New(cfg)
	merged := 0
	for i := range 10000 {
		cmd := gen.next(single)
		other := cmd
		if a, ok := cmd.Op.(*pb.Command_Acks); ok && len(a.Acks.GetAcks()) > 0 {
			acks := a.Acks.GetAcks()
			if gen.r.IntN(2) == 0 {
				// One subscriber acking several deliveries in a row.
				for _, af := range acks[1:] {
					af.AckInbox = acks[0].GetAckInbox()
				}
			}
			var rs []*pb.AckRun
			for _, af := range acks {
				if n := len(rs); n > 0 && rs[n-1].AckInbox == af.GetAckInbox() && rs[n-1].Subject == af.GetAck().GetSubject() {
					rs[n-1].Sequences = append(rs[n-1].Sequences, af.GetAck().GetSequence())
					merged++
					continue
				}
				rs = append(rs, &pb.AckRun{AckInbox: af.GetAckInbox(), Subject: af.GetAck().GetSubject(), Sequences: []uint64{af.GetAck().GetSequence()}})
			}
			other = &pb.Command{NowNanos: cmd.NowNanos, Op: &pb.Command_Acks{Acks: &pb.Acks{Runs: rs}}}
		}
		if got, want := fmt.Sprint(render(runs.Apply(other))), fmt.Sprint(render(single.Apply(cmd))); got != want {
			t.Fatalf("command %d (%v): runs gave %s, single acks %s", i, cmd, got, want)
		}
	}
	if merged < 1000 {
		t.Fatalf("only %d acks merged into runs: the test exercises too little", merged)
	}
	if !bytes.Equal(single.Snapshot(), runs.Snapshot()) {
		t.Fatal("the replicas' snapshots differ")
	}
	if err := runs.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
