// Package linearizability checks histories of a stanza cluster against
// porcupine models.
//
// The channel-log model: each channel is a log whose state is its tail (the
// last sequence). A publish whose sequence is known (from the final log)
// must take the next sequence; a read (a delivery of a sequence to a
// subscriber) requires that sequence to exist already. Histories are
// partitioned by channel, so each partition is checked on its own and the
// state stays one number: porcupine's search hardly branches.
//
// A publish whose outcome the client never learned (timeout, crash) is
// indefinite: if its message is in the final log it happened, at some
// point after its call, so it returns at infinity; if not, it had no
// effect and is left out.
package linearizability

import (
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is an operation's kind.
type Kind int

const (
	// Publish appends Payload; Seq is the sequence it got.
	Publish Kind = iota
	// Read observed Payload at Seq (a delivery).
	Read
)

// Op is one operation of a history.
type Op struct {
	Client  int
	Kind    Kind
	Channel string
	Seq     uint64
	Payload string
	Call    int64
	Return  int64 // math.MaxInt64 when the caller never learned the outcome
}

type input struct {
	kind    Kind
	seq     uint64
	payload string
}

// ChannelLog is the porcupine model of per-channel logs.
var ChannelLog = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range history {
			ch := op.Metadata.(string)
			by[ch] = append(by[ch], op)
		}
		keys := make([]string, 0, len(by))
		for k := range by {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return uint64(0) },
	Step: func(state, in, _ any) (bool, any) {
		tail := state.(uint64)
		op := in.(input)
		switch op.kind {
		case Publish:
			return op.seq == tail+1, op.seq
		default:
			return op.seq <= tail, tail
		}
	},
	Hash: func(state any) uint64 { return state.(uint64) },
	DescribeOperation: func(in, _ any) string {
		op := in.(input)
		if op.kind == Publish {
			return fmt.Sprintf("publish %q -> seq %d", op.payload, op.seq)
		}
		return fmt.Sprintf("deliver seq %d %q", op.seq, op.payload)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("tail %d", state.(uint64)) },
}

// Result of a check.
type Result struct {
	Verdict porcupine.CheckResult
	info    porcupine.LinearizationInfo
	ops     int
}

// Ok reports whether the history is linearizable (Unknown, a timeout, is
// not a failure: it is reported as such).
func (r Result) Ok() bool { return r.Verdict != porcupine.Illegal }

// Ops is the number of operations checked.
func (r Result) Ops() int { return r.ops }

// Visualize writes porcupine's interactive HTML view of the history.
func (r Result) Visualize(w io.Writer) error { return porcupine.Visualize(ChannelLog, r.info, w) }

// Check checks a history against the channel-log model.
func Check(history []Op, timeout time.Duration) Result {
	ops := make([]porcupine.Operation, 0, len(history))
	for _, h := range history {
		ret := h.Return
		if ret == 0 {
			ret = math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{ClientId: h.Client, Input: input{kind: h.Kind, seq: h.Seq, payload: h.Payload},
			Call: h.Call, Return: ret, Metadata: h.Channel})
	}
	verdict, info := porcupine.CheckOperationsVerbose(ChannelLog, ops, timeout)
	return Result{Verdict: verdict, info: info, ops: len(ops)}
}
