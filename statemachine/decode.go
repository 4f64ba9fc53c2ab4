package statemachine

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Every publish is decoded twice on its way (the leader decodes the client's
// PubMsg, every follower the Publish command that carries it), and
// proto.Unmarshal was a fifth of a follower's CPU. The decoders below take
// the common shape of those messages by hand and hand anything else (an
// unknown or repeated field, a wire type that does not match, invalid UTF-8)
// to proto.Unmarshal, so that what they return is always what
// proto.Unmarshal would (FuzzDecodePubMsg and FuzzDecodeCommand hold them to
// it). Bytes fields alias the input, which callers never change.

// DecodePubMsg decodes a client's PubMsg.
func DecodePubMsg(b []byte) (*pb.PubMsg, error) {
	m := &pb.PubMsg{}
	if err := DecodePubMsgInto(m, b, nil); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodePubMsgInto decodes a client's PubMsg into the empty m, which the
// caller may take from a slab. prev, when set, is the message decoded before
// it: a client ID and subject equal to prev's share its strings, two
// allocations fewer per message of a publisher's stream. On error m holds
// nothing to use.
func DecodePubMsgInto(m *pb.PubMsg, b []byte, prev *pb.PubMsg) error {
	if decodePubMsgFast(b, m, prev) {
		return nil
	}
	proto.Reset(m)
	return proto.Unmarshal(b, m)
}

// decodePubMsgFast decodes b into the empty m and reports whether it could.
// prev, when set, is the message decoded before m in the same batch: equal
// client IDs and subjects share its strings.
func decodePubMsgFast(b []byte, m, prev *pb.PubMsg) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case 1:
			if m.ClientID != "" || !utf8.Valid(v) {
				return false
			}
			if prev != nil && prev.ClientID == string(v) {
				m.ClientID = prev.ClientID
			} else {
				m.ClientID = string(v)
			}
		case 2:
			if m.Guid != "" || !utf8.Valid(v) {
				return false
			}
			m.Guid = string(v)
		case 3:
			if m.Subject != "" || !utf8.Valid(v) {
				return false
			}
			if prev != nil && prev.Subject == string(v) {
				m.Subject = prev.Subject
			} else {
				m.Subject = string(v)
			}
		case 4:
			if m.Reply != "" || !utf8.Valid(v) {
				return false
			}
			m.Reply = string(v)
		case 5:
			if m.Data != nil {
				return false
			}
			m.Data = v[:len(v):len(v)]
		case 6:
			if m.ConnID != nil {
				return false
			}
			m.ConnID = v[:len(v):len(v)]
		case 10:
			if m.Sha256 != nil {
				return false
			}
			m.Sha256 = v[:len(v):len(v)]
		default:
			return false
		}
	}
	return true
}

// decodeCommandFast decodes a command that is a Publish or an Acks alone:
// nowNanos, one op field, and replyTo. It reports false for any other
// command.
func decodeCommandFast(b []byte) (*pb.Command, bool) {
	cmd := &pb.Command{}
	var op []byte
	var opNum protowire.Number
	seenNow, seenReply := false, false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType && !seenNow:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			b, seenNow = b[n:], true
			cmd.NowNanos = int64(v)
		case (num == 4 || num == 7) && typ == protowire.BytesType && op == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			b, op, opNum = b[n:], v, num
		case num == 20 && typ == protowire.BytesType && !seenReply:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return nil, false
			}
			b, seenReply = b[n:], true
			cmd.ReplyTo = string(v)
		default:
			return nil, false
		}
	}
	switch {
	case op == nil:
		return nil, false
	case opNum == 4:
		p, ok := decodePublishBody(op)
		if !ok {
			return nil, false
		}
		cmd.Op = &pb.Command_Publish{Publish: p}
	default:
		a, ok := decodeAcksBody(op)
		if !ok {
			return nil, false
		}
		cmd.Op = &pb.Command_Acks{Acks: a}
	}
	return cmd, true
}

// decodeAcksBody decodes an Acks message; its AckFroms and Acks share two
// allocations.
func decodeAcksBody(b []byte) (*pb.Acks, bool) {
	n := 0
	for rest := b; len(rest) > 0; n++ {
		num, typ, k := protowire.ConsumeTag(rest)
		if k < 0 || num != 1 || typ != protowire.BytesType {
			return nil, false
		}
		rest = rest[k:]
		if _, k = protowire.ConsumeBytes(rest); k < 0 {
			return nil, false
		}
		rest = rest[k:]
	}
	out := &pb.Acks{}
	if n == 0 {
		return out, true
	}
	out.Acks = make([]*pb.AckFrom, n)
	froms := make([]pb.AckFrom, n)
	acks := make([]pb.Ack, n)
	for i := range n {
		_, _, k := protowire.ConsumeTag(b)
		b = b[k:]
		v, k := protowire.ConsumeBytes(b)
		b = b[k:]
		f := &froms[i]
		var ackBytes []byte
		for len(v) > 0 {
			num, typ, k := protowire.ConsumeTag(v)
			if k < 0 || typ != protowire.BytesType {
				return nil, false
			}
			v = v[k:]
			w, k := protowire.ConsumeBytes(v)
			if k < 0 {
				return nil, false
			}
			v = v[k:]
			switch {
			case num == 1 && f.AckInbox == "" && utf8.Valid(w):
				if i > 0 && froms[i-1].AckInbox == string(w) {
					f.AckInbox = froms[i-1].AckInbox
				} else {
					f.AckInbox = string(w)
				}
			case num == 2 && ackBytes == nil:
				ackBytes = w
			default:
				return nil, false
			}
		}
		if ackBytes != nil {
			var prev *pb.Ack
			if i > 0 {
				prev = &acks[i-1]
			}
			if !decodeAckFast(ackBytes, &acks[i], prev) {
				return nil, false
			}
			f.Ack = &acks[i]
		}
		out.Acks[i] = f
	}
	return out, true
}

// DecodeAck decodes a subscriber's Ack.
func DecodeAck(b []byte) (*pb.Ack, error) {
	a := &pb.Ack{}
	if decodeAckFast(b, a, nil) {
		return a, nil
	}
	a = &pb.Ack{}
	if err := proto.Unmarshal(b, a); err != nil {
		return nil, err
	}
	return a, nil
}

// decodeAckFast decodes b into the empty a, sharing the subject of prev
// when equal, and reports whether it could.
func decodeAckFast(b []byte, a, prev *pb.Ack) bool {
	seenSubject, seenSeq := false, false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType && !seenSubject:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			b, seenSubject = b[n:], true
			if prev != nil && prev.Subject == string(v) {
				a.Subject = prev.Subject
			} else {
				a.Subject = string(v)
			}
		case num == 2 && typ == protowire.VarintType && !seenSeq:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b, seenSeq = b[n:], true
			a.Sequence = v
		default:
			return false
		}
	}
	return true
}

// decodePublishBody decodes a Publish message: its PubMsgs share one
// allocation.
func decodePublishBody(b []byte) (*pb.Publish, bool) {
	nMsgs, nSubjects := 0, 0
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || typ != protowire.BytesType {
			return nil, false
		}
		switch num {
		case 1:
			nMsgs++
		case 2:
			nSubjects++
		default:
			return nil, false
		}
		rest = rest[n:]
		_, n = protowire.ConsumeBytes(rest)
		if n < 0 {
			return nil, false
		}
		rest = rest[n:]
	}
	p := &pb.Publish{}
	if nMsgs > 0 {
		p.Msgs = make([]*pb.PubMsg, 0, nMsgs)
	}
	if nSubjects > 0 {
		p.AckSubjects = make([]string, 0, nSubjects)
	}
	slab := make([]pb.PubMsg, nMsgs)
	var prev *pb.PubMsg
	for len(b) > 0 {
		num, _, n := protowire.ConsumeTag(b)
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		if num == 1 {
			m := &slab[len(p.Msgs)]
			if !decodePubMsgFast(v, m, prev) {
				return nil, false
			}
			p.Msgs = append(p.Msgs, m)
			prev = m
			continue
		}
		if !utf8.Valid(v) {
			return nil, false
		}
		if k := len(p.AckSubjects); k > 0 && p.AckSubjects[k-1] == string(v) {
			p.AckSubjects = append(p.AckSubjects, p.AckSubjects[k-1])
		} else {
			p.AckSubjects = append(p.AckSubjects, string(v))
		}
	}
	return p, true
}

// ErrNewerCommand is wrapped by DecodeCommand's error for a command with a
// top-level field this version does not know: a later version that changes
// what commands mean adds such a field (a new operation, or a field saying
// how to read the others), and a replica that applied the command without
// it would silently differ from the others. Inside an operation unknown
// fields are kept, as proto keeps them: the protocol messages there are the
// clients' own.
var ErrNewerCommand = errors.New("statemachine: command of a later version")

// DecodeCommand decodes a command from raft entry data. It refuses bytes
// that are not a command (no version writes those: every replica of one
// version refuses them alike) and, wrapping ErrNewerCommand, a command with
// a top-level field this version does not know.
func DecodeCommand(data []byte) (*pb.Command, error) {
	if cmd, ok := decodeCommandFast(data); ok {
		return cmd, nil
	}
	cmd := &pb.Command{}
	if err := proto.Unmarshal(data, cmd); err != nil {
		return nil, fmt.Errorf("statemachine: decode command: %w", err)
	}
	if u := cmd.ProtoReflect().GetUnknown(); len(u) > 0 {
		num, _, _ := protowire.ConsumeTag(u)
		return nil, fmt.Errorf("%w: field %d is unknown to this version", ErrNewerCommand, num)
	}
	if cmd.Op == nil {
		return nil, fmt.Errorf("statemachine: decode command: no operation")
	}
	return cmd, nil
}
