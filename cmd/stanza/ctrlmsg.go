package main

import "google.golang.org/protobuf/encoding/protowire"

// nats-streaming-server's CtrlMsg (spb): 1 MsgType enum, 2 ServerID string,
// 3 Data bytes. Servers send each other these on the FT and partitioning
// subjects; stanza encodes them by hand, as it needs no more.
const (
	ctrlMsgFTHeartbeat  = 3
	ctrlMsgPartitioning = 4
)

func encodeCtrlMsg(typ uint64, serverID string, data []byte) []byte {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, typ)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, serverID)
	if len(data) > 0 {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, data)
	}
	return b
}

// decodeCtrlMsg decodes a CtrlMsg; ok is false for bytes that are not one.
func decodeCtrlMsg(b []byte) (typ uint64, serverID string, data []byte, ok bool) {
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, "", nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && wt == protowire.VarintType:
			typ, n = protowire.ConsumeVarint(b)
		case num == 2 && wt == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			serverID = string(v)
		case num == 3 && wt == protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, wt, b)
		}
		if n < 0 {
			return 0, "", nil, false
		}
		b = b[n:]
	}
	return typ, serverID, data, true
}
