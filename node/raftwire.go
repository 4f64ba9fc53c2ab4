package node

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Raft messages travel as NATS messages of at most chunkBytesMax bytes (NATS
// servers refuse payloads over their max_payload, 1 MiB by default). A
// message that fits goes whole; a bigger one (a snapshot, a large append)
// is cut into chunks:
//
//	whole:  0x00 | raftpb.Message
//	chunk:  0x01 | from u64 | msgID u64 | index u32 | count u32 | bytes
//
// Chunks of one message arrive in order (one publisher, one subscriber); a
// missing chunk drops the message, and raft retries.
//
// The same subjects carry the messages a replica fetches before it
// restores a snapshot (which carries none, see Core.beginCatchUp):
//
//	fetch:    0x02 | from u64 | snapshot index u64 | log ID u64 | seq u64 | to u64
//	records:  0x03 | from u64 | snapshot index u64 | log ID u64 | seq u64 | gone u8 | count u32 | (len u32 | record)...
//
// and records too big for one payload go as chunks of kind 0x04, framed as
// 0x01's, that make up a 0x03 payload's bytes after its kind byte.
const (
	chunkBytesMax     = 512 * 1024
	wireWhole         = 0x00
	wireChunk         = 0x01
	wireFetch         = 0x02
	wireRecords       = 0x03
	wireRecordsChunk  = 0x04
	chunkHeader       = 1 + 8 + 8 + 4 + 4
	fetchBytes        = 1 + 5*8
	recordsHeader     = 1 + 4*8 + 1 + 4
	fetchRecordsBytes = 256 * 1024 // what one answer to a fetch carries at most, besides its first record
)

// encodeRaft cuts a raft message into wire payloads. A message that goes
// whole is encoded into buf when it fits (buf's contents are overwritten)
// and returned with the buffer it used, to be used again once the payload
// has been sent; chunks are always new.
func encodeRaft(m *raftpb.Message, msgID uint64, buf []byte) (payloads [][]byte, used []byte, err error) {
	// Marshalled after the frame byte: an append of a large batch is not
	// copied again to put the byte in front.
	// Size caches the sizes Marshal would compute again.
	size := proto.Size(m)
	if cap(buf) < 1+size {
		buf = make([]byte, 0, 1+size)
	}
	framed, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf[:1], m)
	if err != nil {
		return nil, buf, fmt.Errorf("node: encode raft message: %w", err)
	}
	framed[0] = wireWhole
	if len(framed) <= chunkBytesMax {
		return [][]byte{framed}, framed, nil
	}
	return chunk(wireChunk, m.GetFrom(), msgID, framed[1:]), nil, nil
}

// chunk cuts data into payloads of kind (wireChunk or wireRecordsChunk).
func chunk(kind byte, from, msgID uint64, data []byte) [][]byte {
	per := chunkBytesMax - chunkHeader
	count := (len(data) + per - 1) / per
	out := make([][]byte, 0, count)
	for i := 0; i < count; i++ {
		part := data[i*per : min((i+1)*per, len(data))]
		b := make([]byte, chunkHeader, chunkHeader+len(part))
		b[0] = kind
		binary.BigEndian.PutUint64(b[1:], from)
		binary.BigEndian.PutUint64(b[9:], msgID)
		binary.BigEndian.PutUint32(b[17:], uint32(i))
		binary.BigEndian.PutUint32(b[21:], uint32(count))
		out = append(out, append(b, part...))
	}
	return out
}

// fetchReq asks another replica for the messages of one log from seq to
// to, for the restore of the snapshot at snapIndex.
type fetchReq struct{ from, snapIndex, logID, seq, to uint64 }

func encodeFetch(r fetchReq) []byte {
	b := make([]byte, fetchBytes)
	b[0] = wireFetch
	for i, v := range []uint64{r.from, r.snapIndex, r.logID, r.seq, r.to} {
		binary.BigEndian.PutUint64(b[1+8*i:], v)
	}
	return b
}

func decodeFetch(b []byte) (fetchReq, error) {
	if len(b) != fetchBytes || b[0] != wireFetch {
		return fetchReq{}, fmt.Errorf("node: bad fetch request (%d bytes)", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	return fetchReq{from: u(0), snapIndex: u(1), logID: u(2), seq: u(3), to: u(4)}, nil
}

// fetchResp answers a fetchReq: the records from seq on, or gone when the
// replica asked no longer holds seq.
type fetchResp struct {
	from, snapIndex, logID, seq uint64
	gone                        bool
	records                     [][]byte
}

func encodeRecords(r fetchResp, msgID uint64) [][]byte {
	n := recordsHeader
	for _, rec := range r.records {
		n += 4 + len(rec)
	}
	b := make([]byte, recordsHeader, n)
	b[0] = wireRecords
	for i, v := range []uint64{r.from, r.snapIndex, r.logID, r.seq} {
		binary.BigEndian.PutUint64(b[1+8*i:], v)
	}
	if r.gone {
		b[33] = 1
	}
	binary.BigEndian.PutUint32(b[34:], uint32(len(r.records)))
	for _, rec := range r.records {
		b = binary.BigEndian.AppendUint32(b, uint32(len(rec)))
		b = append(b, rec...)
	}
	if len(b) <= chunkBytesMax {
		return [][]byte{b}
	}
	return chunk(wireRecordsChunk, r.from, msgID, b[1:])
}

func decodeRecords(b []byte) (*fetchResp, error) {
	if len(b) < 1 || b[0] != wireRecords {
		return nil, fmt.Errorf("node: bad fetched records (%d bytes)", len(b))
	}
	return decodeRecordsBody(b[1:])
}

// decodeRecordsBody decodes a wireRecords payload after its kind byte (a
// chunked answer's reassembled bytes).
func decodeRecordsBody(b []byte) (*fetchResp, error) {
	if len(b) < recordsHeader-1 {
		return nil, fmt.Errorf("node: bad fetched records (%d bytes)", len(b)+1)
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[8*i:]) }
	r := &fetchResp{from: u(0), snapIndex: u(1), logID: u(2), seq: u(3), gone: b[32] == 1}
	count := binary.BigEndian.Uint32(b[33:])
	rest := b[recordsHeader-1:]
	if uint64(count) > uint64(len(rest))/4 {
		return nil, fmt.Errorf("node: fetched records: %d records in %d bytes", count, len(rest))
	}
	r.records = make([][]byte, 0, count)
	for range count {
		if len(rest) < 4 || uint64(binary.BigEndian.Uint32(rest)) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("node: fetched records: truncated")
		}
		n := binary.BigEndian.Uint32(rest)
		r.records = append(r.records, rest[4:4+n])
		rest = rest[4+n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("node: fetched records: %d bytes after the last", len(rest))
	}
	return r, nil
}

// reassembler rebuilds chunked raft messages, one in progress per sender.
type reassembler struct {
	partial map[uint64]*partialMsg
}

type partialMsg struct {
	msgID uint64
	next  uint32
	count uint32
	data  []byte
}

// maxChunkedBytes bounds a reassembled message (a snapshot of the whole
// state): a corrupt header cannot make us allocate without limit.
const maxChunkedBytes = 8 << 30

// add takes one payload and returns a whole message when one is complete.
func (r *reassembler) add(payload []byte) (*raftpb.Message, error) {
	if len(payload) == 0 {
		return nil, fmt.Errorf("node: empty raft payload")
	}
	switch payload[0] {
	case wireWhole:
		m := &raftpb.Message{}
		if err := proto.Unmarshal(payload[1:], m); err != nil {
			return nil, fmt.Errorf("node: decode raft message: %w", err)
		}
		return m, nil
	case wireChunk:
		data, err := r.chunk(payload)
		if data == nil || err != nil {
			return nil, err
		}
		m := &raftpb.Message{}
		if err := proto.Unmarshal(data, m); err != nil {
			return nil, fmt.Errorf("node: decode chunked raft message: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("node: unknown raft payload kind %d", payload[0])
}

// addRecords takes one payload of fetched records (wireRecords or
// wireRecordsChunk) and returns them when they are complete.
func (r *reassembler) addRecords(payload []byte) (*fetchResp, error) {
	if len(payload) > 0 && payload[0] == wireRecordsChunk {
		data, err := r.chunk(payload)
		if data == nil || err != nil {
			return nil, err
		}
		return decodeRecordsBody(data)
	}
	return decodeRecords(payload)
}

// chunk adds one chunk payload and returns the message's bytes once its
// last chunk is in.
func (r *reassembler) chunk(payload []byte) ([]byte, error) {
	if len(payload) < chunkHeader {
		return nil, fmt.Errorf("node: short raft chunk (%d bytes)", len(payload))
	}
	from := binary.BigEndian.Uint64(payload[1:])
	id := binary.BigEndian.Uint64(payload[9:])
	idx := binary.BigEndian.Uint32(payload[17:])
	count := binary.BigEndian.Uint32(payload[21:])
	if count == 0 || idx >= count || uint64(count)*chunkBytesMax > maxChunkedBytes {
		return nil, fmt.Errorf("node: bad raft chunk %d of %d", idx, count)
	}
	if r.partial == nil {
		r.partial = map[uint64]*partialMsg{}
	}
	p := r.partial[from]
	if idx == 0 {
		p = &partialMsg{msgID: id, count: count}
		r.partial[from] = p
	}
	if p == nil || p.msgID != id || p.next != idx || p.count != count {
		delete(r.partial, from)
		return nil, fmt.Errorf("node: raft chunk %d of message %d from %x out of order", idx, id, from)
	}
	p.data = append(p.data, payload[chunkHeader:]...)
	p.next++
	if p.next < p.count {
		return nil, nil
	}
	delete(r.partial, from)
	return p.data, nil
}
