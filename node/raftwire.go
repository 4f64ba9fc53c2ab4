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
const (
	chunkBytesMax = 512 * 1024
	wireWhole     = 0x00
	wireChunk     = 0x01
	chunkHeader   = 1 + 8 + 8 + 4 + 4
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
	data := framed[1:]
	per := chunkBytesMax - chunkHeader
	count := (len(data) + per - 1) / per
	out := make([][]byte, 0, count)
	for i := 0; i < count; i++ {
		part := data[i*per : min((i+1)*per, len(data))]
		b := make([]byte, chunkHeader, chunkHeader+len(part))
		b[0] = wireChunk
		binary.BigEndian.PutUint64(b[1:], m.GetFrom())
		binary.BigEndian.PutUint64(b[9:], msgID)
		binary.BigEndian.PutUint32(b[17:], uint32(i))
		binary.BigEndian.PutUint32(b[21:], uint32(count))
		out = append(out, append(b, part...))
	}
	return out, nil, nil
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
		m := &raftpb.Message{}
		if err := proto.Unmarshal(p.data, m); err != nil {
			return nil, fmt.Errorf("node: decode chunked raft message: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("node: unknown raft payload kind %d", payload[0])
}
