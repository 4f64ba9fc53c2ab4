package statemachine

import (
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
	if decodePubMsgFast(b, m, nil) {
		return m, nil
	}
	m = &pb.PubMsg{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
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

// decodePublishFast decodes a command that is a Publish alone: nowNanos,
// one publish field, and replyTo. It reports false for any other command.
func decodePublishFast(b []byte) (*pb.Command, bool) {
	cmd := &pb.Command{}
	var pub []byte
	seen := [3]bool{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType && !seen[0]:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			b, seen[0] = b[n:], true
			cmd.NowNanos = int64(v)
		case num == 4 && typ == protowire.BytesType && pub == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			b, pub = b[n:], v
		case num == 20 && typ == protowire.BytesType && !seen[2]:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return nil, false
			}
			b, seen[2] = b[n:], true
			cmd.ReplyTo = string(v)
		default:
			return nil, false
		}
	}
	if pub == nil {
		return nil, false
	}
	p, ok := decodePublishBody(pub)
	if !ok {
		return nil, false
	}
	cmd.Op = &pb.Command_Publish{Publish: p}
	return cmd, true
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

// DecodeCommand decodes a command from raft entry data.
func DecodeCommand(data []byte) (*pb.Command, error) {
	if cmd, ok := decodePublishFast(data); ok {
		return cmd, nil
	}
	cmd := &pb.Command{}
	if err := proto.Unmarshal(data, cmd); err != nil {
		return nil, fmt.Errorf("statemachine: decode command: %w", err)
	}
	if cmd.Op == nil {
		return nil, fmt.Errorf("statemachine: decode command: no operation")
	}
	return cmd, nil
}
