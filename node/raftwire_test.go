package node

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func appendOf(from uint64, entries, size int) *raftpb.Message {
	m := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(from), To: proto.Uint64(2), Term: proto.Uint64(3),
		Index: proto.Uint64(10), LogTerm: proto.Uint64(3), Commit: proto.Uint64(9)}
	for i := range entries {
		m.Entries = append(m.Entries, &raftpb.Entry{Term: proto.Uint64(3), Index: proto.Uint64(uint64(11 + i)),
			Data: bytes.Repeat([]byte{byte(i)}, size)})
	}
	return m
}

// TestRaftWireRoundTrip sends messages whole and in chunks through one
// reused encoding buffer and requires each to come out as it went in, the
// chunks of one message interleaved with whole messages from another sender.
func TestRaftWireRoundTrip(t *testing.T) {
	var buf []byte
	var r reassembler
	small, big := appendOf(1, 3, 100), appendOf(1, 40, 40<<10) // big: 1.6 MB, four chunks
	other := appendOf(7, 1, 10)

	payloads, used, err := encodeRaft(small, 1, buf)
	if err != nil || len(payloads) != 1 || payloads[0][0] != wireWhole {
		t.Fatalf("small message: %d payloads, %v", len(payloads), err)
	}
	buf = used
	got, err := r.add(payloads[0])
	if err != nil || !proto.Equal(got, small) {
		t.Fatalf("small message came out as %v (%v)", got, err)
	}

	chunks, used, err := encodeRaft(big, 2, buf)
	if err != nil || len(chunks) != 4 || used != nil {
		t.Fatalf("big message: %d payloads, buffer %v, %v", len(chunks), used != nil, err)
	}
	for i, ch := range chunks {
		if ch[0] != wireChunk {
			t.Fatalf("chunk %d has kind %d", i, ch[0])
		}
		if i == 2 {
			// Another sender's message, encoded into the reused buffer
			// while the chunks are in flight: they must not share it.
			p, _, err := encodeRaft(other, 3, buf)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := r.add(p[0]); err != nil || !proto.Equal(got, other) {
				t.Fatalf("interleaved message came out as %v (%v)", got, err)
			}
		}
		got, err := r.add(ch)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if (got != nil) != (i == len(chunks)-1) {
			t.Fatalf("chunk %d of %d gave a message: %v", i, len(chunks), got != nil)
		}
		if got != nil && !proto.Equal(got, big) {
			t.Fatal("the chunked message came out different")
		}
	}

	// A whole message is encoded into the buffer it was given when it fits.
	p, used, err := encodeRaft(small, 4, buf)
	if err != nil || &p[0][0] != &buf[:1][0] || &used[0] != &buf[:1][0] {
		t.Fatalf("a message that fits was not encoded into the buffer given (%v)", err)
	}

	// Out-of-order and corrupt chunks are refused, not misassembled.
	if _, err := r.add(chunks[1]); err == nil {
		t.Fatal("a chunk without its first was accepted")
	}
	if _, err := r.add([]byte{wireChunk, 1, 2}); err == nil {
		t.Fatal("a short chunk was accepted")
	}
	if _, err := r.add([]byte{9}); err == nil {
		t.Fatal("an unknown payload kind was accepted")
	}
}

func TestFetchWireRoundTrip(t *testing.T) {
	req := fetchReq{from: 1, snapIndex: 2, logID: 3, seq: 4, to: 5}
	if got, err := decodeFetch(encodeFetch(req)); err != nil || got != req {
		t.Fatalf("decodeFetch(encodeFetch(%+v)) = %+v, %v", req, got, err)
	}
	for _, bad := range [][]byte{nil, {wireFetch}, append(encodeFetch(req), 0)} {
		if _, err := decodeFetch(bad); err == nil {
			t.Errorf("decodeFetch(% x) succeeded", bad)
		}
	}

	for _, size := range []int{0, 10, chunkBytesMax} {
		resp := fetchResp{from: 7, snapIndex: 8, logID: 9, seq: 10, records: [][]byte{[]byte("one"), bytes.Repeat([]byte{'x'}, size), {}}}
		payloads := encodeRecords(resp, 42)
		if size == chunkBytesMax && len(payloads) < 2 {
			t.Fatalf("%d bytes of records in %d payload(s), want chunks", size, len(payloads))
		}
		var r reassembler
		var got *fetchResp
		for i, p := range payloads {
			if len(p) > chunkBytesMax {
				t.Fatalf("payload %d is %d bytes", i, len(p))
			}
			g, err := r.addRecords(p)
			if err != nil {
				t.Fatal(err)
			}
			if (g != nil) != (i == len(payloads)-1) {
				t.Fatalf("payload %d of %d: complete %v", i, len(payloads), g != nil)
			}
			got = g
		}
		if got.from != 7 || got.snapIndex != 8 || got.logID != 9 || got.seq != 10 || got.gone || len(got.records) != 3 ||
			string(got.records[0]) != "one" || len(got.records[1]) != size || len(got.records[2]) != 0 {
			t.Fatalf("round trip of %d bytes: %+v", size, got)
		}
	}
	gone, err := decodeRecords(encodeRecords(fetchResp{from: 1, gone: true}, 1)[0])
	if err != nil || !gone.gone || len(gone.records) != 0 {
		t.Fatalf("gone: %+v, %v", gone, err)
	}

	good := encodeRecords(fetchResp{records: [][]byte{[]byte("abc")}}, 1)[0]
	for name, bad := range map[string][]byte{
		"short":         good[:recordsHeader-1],
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"huge count":    append(append([]byte{}, good[:34]...), 0xff, 0xff, 0xff, 0xff),
		"wrong kind":    append([]byte{wireFetch}, good[1:]...),
		"record length": append(append(append([]byte{}, good[:recordsHeader]...), 0, 0, 0, 9), "abc"...),
	} {
		if _, err := decodeRecords(bad); err == nil {
			t.Errorf("%s: decodeRecords succeeded", name)
		}
	}
}
