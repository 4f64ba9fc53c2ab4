package statemachine

import (
	"testing"

	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/proto"
)

// pubMsgSeeds are PubMsgs as clients send them, and some that only the slow
// path takes.
func pubMsgSeeds() [][]byte {
	msgs := []*pb.PubMsg{
		{ClientID: "me", Guid: "g1", Subject: "foo", Data: []byte("hello")},
		{ClientID: "me", Guid: "g2", Subject: "foo.bar", Reply: "r", Data: []byte{}, ConnID: []byte("c1")},
		{ClientID: "me", Guid: "g3", Subject: "foo", Sha256: []byte{1, 2}},
		{},
	}
	var out [][]byte
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return append(out,
		[]byte{0x0a, 0x02, 'a', 'b', 0x0a, 0x01, 'c'}, // clientID twice: the last wins
		[]byte{0x12, 0x01, 0xff},                      // invalid UTF-8 in guid
		[]byte{0x2a, 0x00, 0x2a, 0x01, 'x'},           // data twice
		[]byte{0x08, 0x01},                            // field 1 with the wrong wire type
		[]byte{0x62, 0x01, 'u'},                       // an unknown field
		[]byte{0x12, 0x05, 'a'},                       // truncated
	)
}

// sameAsProto fails t unless decode(data) errs when proto.Unmarshal into
// want does, and otherwise gives a message equal to want.
func sameAsProto[M proto.Message](t *testing.T, name string, data []byte, decode func([]byte) (M, error), want M) {
	t.Helper()
	wantErr := proto.Unmarshal(data, want)
	got, err := decode(data)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%s(%x): error %v, proto.Unmarshal: %v", name, data, err, wantErr)
	}
	if err == nil && !proto.Equal(got, want) {
		t.Fatalf("%s(%x) = %v, proto.Unmarshal gives %v", name, data, got, want)
	}
}

// FuzzDecodePubMsg holds DecodePubMsg to proto.Unmarshal: the same error or
// lack of one, and an equal message.
func FuzzDecodePubMsg(f *testing.F) {
	for _, b := range pubMsgSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsProto(t, "DecodePubMsg", data, DecodePubMsg, &pb.PubMsg{}) })
}

// FuzzDecodePubMsgInto holds DecodePubMsgInto to proto.Unmarshal, after any
// message: sharing the previous message's strings changes nothing.
func FuzzDecodePubMsgInto(f *testing.F) {
	seeds := pubMsgSeeds()
	for _, a := range seeds {
		for _, b := range seeds {
			f.Add(a, b)
		}
	}
	f.Fuzz(func(t *testing.T, before, data []byte) {
		prev, err := DecodePubMsg(before)
		if err != nil {
			prev = nil
		}
		after := func(b []byte) (*pb.PubMsg, error) {
			m := &pb.PubMsg{}
			return m, DecodePubMsgInto(m, b, prev)
		}
		sameAsProto(t, "DecodePubMsgInto", data, after, &pb.PubMsg{})
	})
}

// FuzzDecodeCommand holds DecodeCommand (whose Publish commands take a fast
// path) to proto.Unmarshal.
func FuzzDecodeCommand(f *testing.F) {
	addCommandSeeds(f, 21, 60)
	for _, m := range pubMsgSeeds() {
		inner := append([]byte{0x0a, byte(len(m))}, m...)
		inner = append(inner, 0x12, 0x01, 'r', 0x12, 0x01, 'r')
		f.Add(append(append([]byte{0x08, 0x05, 0x22, byte(len(inner))}, inner...), 0xa2, 0x01, 0x01, 'x'))
	}
	f.Add([]byte{0x22, 0x00, 0x22, 0x00}) // publish twice: proto merges
	acks := EncodeCommand(NewCommand(9, &pb.Acks{Acks: []*pb.AckFrom{
		{AckInbox: "_STAN.ack.x.1", Ack: &pb.Ack{Subject: "foo", Sequence: 1}},
		{AckInbox: "_STAN.ack.x.1", Ack: &pb.Ack{Subject: "foo", Sequence: 2}},
		{AckInbox: "_STAN.ack.x.2"},
		{Ack: &pb.Ack{}},
	}}))
	f.Add(acks)
	f.Add(EncodeCommand(NewCommand(9, &pb.Acks{Runs: []*pb.AckRun{ // what leaders write now
		{AckInbox: "_STAN.ack.x.1", Subject: "foo", Sequences: []uint64{1, 2, 300}},
		{AckInbox: "_STAN.ack.x.2"},
	}})))
	f.Add(EncodeCommand(NewCommand(9, &pb.Acks{Acks: []*pb.AckFrom{{AckInbox: "a"}}, Runs: []*pb.AckRun{{Subject: "b"}}})))
	f.Add([]byte{0x3a, 0x04, 0x0a, 0x02, 0x12, 0x00})             // an ack with an empty Ack
	f.Add([]byte{0x3a, 0x06, 0x0a, 0x04, 0x12, 0x00, 0x12, 0x00}) // Ack twice: proto merges
	f.Fuzz(func(t *testing.T, data []byte) {
		want := &pb.Command{}
		wantErr := proto.Unmarshal(data, want)
		// A command must carry an operation, and nothing at its top level
		// this version does not know.
		rejected := wantErr != nil || want.Op == nil || len(want.ProtoReflect().GetUnknown()) > 0
		got, err := DecodeCommand(data)
		if (err != nil) != rejected {
			t.Fatalf("DecodeCommand(%x): error %v, proto.Unmarshal: %v", data, err, wantErr)
		}
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("DecodeCommand(%x) = %v, proto.Unmarshal gives %v", data, got, want)
		}
	})
}

// FuzzDecodeAck holds DecodeAck to proto.Unmarshal.
func FuzzDecodeAck(f *testing.F) {
	for _, a := range []*pb.Ack{{Subject: "foo", Sequence: 7}, {}, {Sequence: 1 << 40}} {
		b, _ := proto.Marshal(a)
		f.Add(b)
	}
	f.Add([]byte{0x10, 0x01, 0x10, 0x02}) // sequence twice: the last wins
	f.Add([]byte{0x0a, 0x01, 0xff})       // invalid UTF-8
	f.Add([]byte{0x0d, 0, 0, 0, 0})       // a fixed32 field
	f.Fuzz(func(t *testing.T, data []byte) { sameAsProto(t, "DecodeAck", data, DecodeAck, &pb.Ack{}) })
}

// TestDecodeTakesTheFastPath: the Publish and Acks commands the leader proposes are
// decoded by hand (a regression to proto.Unmarshal would go unnoticed by
// the fuzz tests).
func TestDecodeTakesTheFastPath(t *testing.T) {
	cmd := NewCommand(7, &pb.Publish{
		Msgs: []*pb.PubMsg{
			{ClientID: "me", Guid: "a", Subject: "foo", Data: []byte("x")},
			{ClientID: "me", Guid: "b", Subject: "foo", Data: []byte("y"), ConnID: []byte("c")},
		},
		AckSubjects: []string{"_INBOX.1", "_INBOX.1"},
	})
	got, ok := decodeCommandFast(EncodeCommand(cmd))
	if !ok {
		t.Fatal("a leader's Publish command took the slow path")
	}
	if !proto.Equal(got, cmd) {
		t.Fatalf("got %v, want %v", got, cmd)
	}
	m := got.GetPublish().GetMsgs()
	if m[0].ClientID != m[1].ClientID || m[0].Subject != m[1].Subject {
		t.Fatal("equal strings of a batch are not shared")
	}

	acks := NewCommand(8, &pb.Acks{Acks: []*pb.AckFrom{
		{AckInbox: "_STAN.ack.x.1", Ack: &pb.Ack{Subject: "foo", Sequence: 1}},
		{AckInbox: "_STAN.ack.x.1", Ack: &pb.Ack{Subject: "foo", Sequence: 2}},
	}})
	if got, ok := decodeCommandFast(EncodeCommand(acks)); !ok || !proto.Equal(got, acks) {
		t.Fatalf("an Acks command: fast path %v, got %v, want %v", ok, got, acks)
	}
}
