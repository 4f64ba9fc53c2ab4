package statemachine

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestExternalLogReplay is the contract between the state machine and a
// persistent message log: a replica whose log is only trimmed after a
// snapshot (Retention) decides exactly as one that trims at once, and a
// replica restarted from an older snapshot over the same log decides the
// same again while it re-applies the commands since.
func TestExternalLogReplay(t *testing.T) {
	gen := &commandGen{r: rand.New(rand.NewPCG(11, 12))}
	cfg := Config{Limits: testLimits()}
	owned := New(cfg)
	log := newMemLog()
	ext := New(Config{Limits: testLimits(), Log: log})

	const n, snapAt = 4000, 1500
	var cmds []*pb.Command
	var results []string
	var old []byte
	for i := 0; i < n; i++ {
		cmd := gen.next(owned)
		cmds = append(cmds, cmd)
		ra, rb := owned.Apply(cmd), ext.Apply(cmd)
		if got, want := render(rb), render(ra); got != want {
			t.Fatalf("command %d: the external log decided differently:\n%s\nvs\n%s", i, got, want)
		}
		results = append(results, render(ra))
		if i == snapAt {
			old = ext.Snapshot()
		}
	}
	if !bytes.Equal(owned.SnapshotWithMessages(), ext.SnapshotWithMessages()) {
		t.Fatal("the two replicas differ after the same commands")
	}

	// A restart from the old snapshot over the untrimmed log replays the
	// same decisions.
	restarted := New(Config{Limits: testLimits(), Log: log})
	if err := restarted.Restore(old); err != nil {
		t.Fatalf("restore the old snapshot: %v", err)
	}
	for i := snapAt + 1; i < n; i++ {
		if got := render(restarted.Apply(cmds[i])); got != results[i] {
			t.Fatalf("replayed command %d decided differently:\n%s\nvs\n%s", i, got, results[i])
		}
	}
	if !bytes.Equal(restarted.SnapshotWithMessages(), ext.SnapshotWithMessages()) {
		t.Fatal("the replayed replica differs")
	}

	// Retention applied after the newest snapshot: that snapshot still
	// restores, the old one no longer can, and neither can a snapshot
	// without messages over an empty log.
	snap := ext.Snapshot()
	trimmed := 0
	live := map[string]bool{}
	for _, r := range ext.Retention() {
		live[r.Log] = true
		if c := log.logs[r.Log]; c != nil && c.first < r.First {
			trimmed++
		}
		if err := log.TrimBefore(r.Log, r.First); err != nil {
			t.Fatal(err)
		}
	}
	for name := range log.logs {
		if !live[name] {
			log.drop(name)
			trimmed++
		}
	}
	if trimmed == 0 {
		t.Fatal("the workload trimmed nothing: the test proves too little")
	}
	if err := New(Config{Limits: testLimits(), Log: log}).Restore(snap); err != nil {
		t.Fatalf("restore after retention: %v", err)
	}
	if err := New(Config{Limits: testLimits(), Log: log}).Restore(old); err == nil || !strings.Contains(err.Error(), "message log") {
		t.Fatalf("restore of a snapshot older than the retention: %v, want a message log error", err)
	}
	if msgs, _ := ext.Totals(); msgs == 0 {
		t.Fatal("the workload ends with no message")
	}
	if err := New(cfg).Restore(snap); err == nil {
		t.Fatal("a snapshot without messages restored over an empty log")
	}
	full := New(cfg)
	if err := full.Restore(ext.SnapshotWithMessages()); err != nil {
		t.Fatalf("restore with messages: %v", err)
	}
	if !bytes.Equal(full.SnapshotWithMessages(), ext.SnapshotWithMessages()) {
		t.Fatal("a snapshot with messages did not restore the same state")
	}
}

// TestLogFailurePanics: a log that loses a message stops the state machine
// with a *LogFailure rather than letting it decide without it.
func TestLogFailurePanics(t *testing.T) {
	log := newMemLog()
	s := New(Config{Limits: DefaultLimits(), Log: log})
	s.Apply(NewCommand(1, &pb.Connect{Request: &pb.ConnectRequest{ClientID: "c", HeartbeatInbox: "hb"}}))
	s.Apply(NewCommand(2, &pb.Publish{Msgs: []*pb.PubMsg{{ClientID: "c", Guid: "g", Subject: "foo", Data: []byte("x")}}}))
	log.drop(s.channels["foo"].log)
	defer func() {
		f, ok := recover().(*LogFailure)
		if !ok || !strings.Contains(f.Error(), "message log") {
			t.Fatalf("recovered %v, want a *LogFailure", f)
		}
	}()
	s.Apply(NewCommand(3, &pb.Subscribe{Request: &pb.SubscriptionRequest{ClientID: "c", Subject: "foo", Inbox: "in", MaxInFlight: 1,
		AckWaitInSecs: 30, StartPosition: pb.StartPosition_First}, AckInbox: "ack"}))
	t.Fatal("a subscription was served from a log that lost its message")
}

// TestDeliveryWire: the wire form is the record with the redelivery fields,
// and decodes to the message with them.
func TestDeliveryWire(t *testing.T) {
	rec := encodeRecord(nil, 7, "foo", "r", []byte("hi"), 42)
	d := Delivery{Record: rec, Redelivered: true, RedeliveryCount: 300}
	m := d.Message()
	if m.GetSequence() != 7 || m.GetSubject() != "foo" || m.GetReply() != "r" || string(m.GetData()) != "hi" || m.GetTimestamp() != 42 ||
		!m.GetRedelivered() || m.GetRedeliveryCount() != 300 {
		t.Fatalf("decoded %v", m)
	}
	if got := (Delivery{Record: rec}).Wire(); !bytes.Equal(got, rec) {
		t.Fatalf("a first delivery is not the record as stored")
	}
}

// TestEncodeRecordMatchesProto: the hand-made encoding is proto.Marshal's,
// byte for byte, so sizes and snapshots never depend on the encoder.
func TestEncodeRecordMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	for i := 0; i < 2000; i++ {
		m := &pb.MsgProto{Sequence: r.Uint64() >> r.IntN(64), Subject: strings.Repeat("s", r.IntN(200)),
			Reply: strings.Repeat("r", r.IntN(3)*r.IntN(150)), Data: bytes.Repeat([]byte{byte(i)}, r.IntN(3)*r.IntN(300)),
			Timestamp: int64(r.Uint64()) >> r.IntN(64)}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		// One buffer serves every record, as in append.
		buf = encodeRecord(buf[:0], m.Sequence, m.Subject, m.Reply, m.Data, m.Timestamp)
		if !bytes.Equal(buf, want) {
			t.Fatalf("%v: got %x, want %x", m, buf, want)
		}
	}
}

// TestApplyQuietDecidesTheSame: a follower's ApplyQuiet changes the state as
// Apply does and decides the same deliveries, without their records.
func TestApplyQuietDecidesTheSame(t *testing.T) {
	gen := &commandGen{r: rand.New(rand.NewPCG(31, 32))}
	loud, quiet := New(Config{Limits: testLimits()}), New(Config{Limits: testLimits()})
	deliveries := 0
	for i := 0; i < 4000; i++ {
		cmd := gen.next(loud)
		want, got := loud.Apply(cmd), quiet.ApplyQuiet(cmd)
		for j := range got.Deliveries {
			if got.Deliveries[j].Record != nil {
				t.Fatalf("command %d: a quiet delivery carries its record", i)
			}
			if want.Deliveries[j].Record == nil || want.Deliveries[j].Message().GetSequence() != want.Deliveries[j].Seq {
				t.Fatalf("command %d: a delivery carries no record, or not the record of its seq", i)
			}
			if got.Deliveries[j].Seq != want.Deliveries[j].Seq {
				t.Fatalf("command %d: delivery %d is of seq %d, not %d", i, j, got.Deliveries[j].Seq, want.Deliveries[j].Seq)
			}
			want.Deliveries[j].Record = nil
		}
		deliveries += len(got.Deliveries)
		if render(got) != render(want) {
			t.Fatalf("command %d: ApplyQuiet decided\n%s\nApply decided\n%s", i, render(got), render(want))
		}
		if i%100 == 0 && !bytes.Equal(loud.SnapshotWithMessages(), quiet.SnapshotWithMessages()) {
			t.Fatalf("command %d: the states differ", i)
		}
	}
	if deliveries < 500 {
		t.Fatalf("only %d deliveries: the workload is too weak", deliveries)
	}
}

// TestHealthAndCloseOfAReplacedConnection: the leader names the connection
// whose heartbeats it judged. A failure mark or a close meant for a
// connection that was replaced since (same client ID, new heartbeat inbox)
// must leave the new connection alone: a stale mark stopped its
// redeliveries for good (seed 5996).
func TestHealthAndCloseOfAReplacedConnection(t *testing.T) {
	s := New(Config{Limits: testLimits()})
	apply := func(op any) Result { return s.Apply(NewCommand(1, op)) }
	apply(&pb.Connect{Request: &pb.ConnectRequest{ClientID: "c", HeartbeatInbox: "hb.1"}})
	if r := apply(&pb.Connect{Request: &pb.ConnectRequest{ClientID: "c", HeartbeatInbox: "hb.2"}, Replace: true}); r.Err != "" {
		t.Fatalf("replace: %s", r.Err)
	}
	failed := func() bool {
		t.Helper()
		cl, ok := s.ClientByID("c")
		if !ok {
			t.Fatal("client c is gone")
		}
		return cl.FailedHB
	}
	apply(&pb.ClientHealth{ClientID: "c", HbInbox: "hb.1", Failed: true})
	if failed() {
		t.Fatal("the replaced connection's failure mark reached the new one")
	}
	apply(&pb.CloseClient{ClientID: "c", HbInbox: "hb.1"})
	if _, ok := s.ClientByID("c"); !ok {
		t.Fatal("the replaced connection's close closed the new one")
	}
	apply(&pb.ClientHealth{ClientID: "c", HbInbox: "hb.2", Failed: true})
	if !failed() {
		t.Fatal("the connection's own failure mark was ignored")
	}
	apply(&pb.ClientHealth{ClientID: "c", Failed: false}) // no inbox: any connection
	if failed() {
		t.Fatal("a mark without an inbox was ignored")
	}
	apply(&pb.CloseClient{ClientID: "c", HbInbox: "hb.2"})
	if _, ok := s.ClientByID("c"); ok {
		t.Fatal("the connection's own close was ignored")
	}
}

// TestRestoreRefusesUnknownFields: a snapshot holding a field this version
// does not know, at the top or deep inside (a later version's state), is
// refused and the state is unchanged.
func TestRestoreRefusesUnknownFields(t *testing.T) {
	s := New(Config{Limits: DefaultLimits(), Log: newMemLog()})
	s.Apply(NewCommand(1, &pb.Connect{Request: &pb.ConnectRequest{ClientID: "c", HeartbeatInbox: "hb"}}))
	s.Apply(NewCommand(2, &pb.Publish{Msgs: []*pb.PubMsg{{ClientID: "c", Guid: "g", Subject: "foo", Data: []byte("x")}}}))
	s.Apply(NewCommand(3, &pb.Subscribe{Request: &pb.SubscriptionRequest{ClientID: "c", Subject: "foo", Inbox: "in", MaxInFlight: 1,
		AckWaitInSecs: 30, StartPosition: pb.StartPosition_First}, AckInbox: "ack"}))
	good := s.SnapshotWithMessages()
	extra := protowire.AppendVarint(protowire.AppendTag(nil, 40, protowire.VarintType), 1)
	for _, where := range []string{"Snapshot", "SubState"} {
		snap := &pb.Snapshot{}
		if err := proto.Unmarshal(good, snap); err != nil {
			t.Fatal(err)
		}
		var m protoreflect.Message = snap.ProtoReflect()
		if where == "SubState" {
			m = snap.GetChannels()[0].GetSubs()[0].ProtoReflect()
		}
		m.SetUnknown(extra)
		data, err := proto.Marshal(snap)
		if err != nil {
			t.Fatal(err)
		}
		r := New(Config{Limits: DefaultLimits(), Log: newMemLog()})
		before := r.SnapshotWithMessages()
		if err := r.Restore(data); err == nil || !strings.Contains(err.Error(), "field 40 of "+where) {
			t.Errorf("restore with field 40 in %s: %v", where, err)
		}
		if !bytes.Equal(r.SnapshotWithMessages(), before) {
			t.Errorf("a refused snapshot (field 40 in %s) changed the state", where)
		}
	}
	// A field this version reserved (ChannelState 6, dropped on purpose) is
	// no reason to refuse.
	snap := &pb.Snapshot{}
	if err := proto.Unmarshal(good, snap); err != nil {
		t.Fatal(err)
	}
	snap.GetChannels()[0].ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 6, protowire.VarintType), 1))
	reserved, err := proto.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{good, reserved} {
		if err := New(Config{Limits: DefaultLimits(), Log: newMemLog()}).Restore(data); err != nil {
			t.Fatalf("restore of a snapshot this version reads: %v", err)
		}
	}
}
