package pb

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt")

// goldenMessages holds one message of each kind of the client protocol. Their
// encodings are pinned in testdata/golden.txt: a change there is a change of
// the wire, which stock STAN clients would see.
func goldenMessages() []struct {
	name string
	msg  proto.Message
} {
	const ts = int64(1700000000123456789) // encodes as a 9-byte varint
	return []struct {
		name string
		msg  proto.Message
	}{
		{"PubMsg", &PubMsg{ClientID: "me", Guid: "guid-1", Subject: "foo", Data: []byte("hello"), ConnID: []byte("conn")}},
		{"PubAck/ok", &PubAck{Guid: "guid-1"}},
		{"PubAck/error", &PubAck{Guid: "guid-1", Error: "stan: invalid publish request"}},
		{"MsgProto", &MsgProto{Sequence: 1, Subject: "foo", Data: []byte("hello"), Timestamp: ts}},
		{"MsgProto/redelivered", &MsgProto{Sequence: 7, Subject: "foo", Data: []byte("x"), Timestamp: ts, Redelivered: true, RedeliveryCount: 2}},
		{"Ack", &Ack{Subject: "foo", Sequence: 42}},
		{"ConnectRequest", &ConnectRequest{ClientID: "me", HeartbeatInbox: "_INBOX.hb", Protocol: 1, ConnID: []byte("conn"), PingInterval: 5, PingMaxOut: 88}},
		{"ConnectResponse", &ConnectResponse{PubPrefix: "_STAN.pub.c", SubRequests: "_STAN.sub.c", UnsubRequests: "_STAN.unsub.c", CloseRequests: "_STAN.close.c", SubCloseRequests: "_STAN.subclose.c", PingRequests: "_STAN.discover.c.pings", PingInterval: 5, PingMaxOut: 88, Protocol: 1}},
		{"Ping", &Ping{ConnID: []byte("conn")}},
		{"PingResponse/ok", &PingResponse{}},
		{"PingResponse/error", &PingResponse{Error: "client has been replaced or is no longer registered"}},
		{"SubscriptionRequest", &SubscriptionRequest{ClientID: "me", Subject: "foo", QGroup: "q", Inbox: "_INBOX.d", MaxInFlight: 1024, AckWaitInSecs: 30, DurableName: "dur", StartPosition: StartPosition_SequenceStart, StartSequence: 10}},
		{"SubscriptionRequest/timedelta", &SubscriptionRequest{ClientID: "me", Subject: "foo", Inbox: "_INBOX.d", MaxInFlight: 1, AckWaitInSecs: 1, StartPosition: StartPosition_TimeDeltaStart, StartTimeDelta: 5_000_000_000}},
		{"SubscriptionResponse", &SubscriptionResponse{AckInbox: "_STAN.ack.c.1"}},
		{"UnsubscribeRequest", &UnsubscribeRequest{ClientID: "me", Subject: "foo", Inbox: "_STAN.ack.c.1", DurableName: "dur"}},
		{"CloseRequest", &CloseRequest{ClientID: "me"}},
		{"CloseResponse/ok", &CloseResponse{}},
	}
}

func TestGoldenEncoding(t *testing.T) {
	var b strings.Builder
	for _, g := range goldenMessages() {
		data, err := proto.Marshal(g.msg)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		fmt.Fprintf(&b, "%s %d %s\n", g.name, len(data), hex.EncodeToString(data))

		// Round trip: decoding gives the same message back.
		back := g.msg.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(data, back); err != nil {
			t.Fatalf("%s: decode: %v", g.name, err)
		}
		if !proto.Equal(back, g.msg) {
			t.Fatalf("%s: round trip changed the message: %v", g.name, back)
		}
	}
	const path = "testdata/golden.txt"
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != string(want) {
		t.Fatalf("wire encoding changed (run with -update only if intended):\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestWireFacts pins the facts stock clients depend on, independently of the
// golden file.
func TestWireFacts(t *testing.T) {
	ack, _ := proto.Marshal(&PubAck{Guid: "guid-1"})
	if got, want := hex.EncodeToString(ack), "0a06"+hex.EncodeToString([]byte("guid-1")); got != want {
		t.Errorf("successful PubAck = %s, want %s (guid only)", got, want)
	}
	// stan.go's TestSubscriptionPending counts len(payload)+19 bytes per message.
	msg, _ := proto.Marshal(&MsgProto{Sequence: 1, Subject: "foo", Data: []byte("hello"), Timestamp: 1700000000123456789})
	if len(msg) != 24 {
		t.Errorf("MsgProto(seq 1, foo, hello) is %d bytes, want 24", len(msg))
	}
	for _, m := range []proto.Message{&PingResponse{}, &CloseResponse{}} {
		if b, _ := proto.Marshal(m); len(b) != 0 {
			t.Errorf("successful %T is %d bytes, want empty", m, len(b))
		}
	}
}

func FuzzDecodeWire(f *testing.F) {
	for _, g := range goldenMessages() {
		b, _ := proto.Marshal(g.msg)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{&PubMsg{}, &MsgProto{}, &Ack{}, &ConnectRequest{}, &SubscriptionRequest{}, &UnsubscribeRequest{}, &CloseRequest{}, &Ping{}} {
			if err := proto.Unmarshal(data, m); err != nil {
				continue
			}
			// Whatever decodes must encode again without error.
			if _, err := proto.Marshal(m); err != nil {
				t.Fatalf("%T decoded but does not encode: %v", m, err)
			}
		}
	})
}
