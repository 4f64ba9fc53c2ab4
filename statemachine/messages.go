package statemachine

import (
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MessageLog keeps the bodies of the channels' messages. The state machine
// decides which sequences a channel holds and what each record is; the log
// stores them, keyed by the channel's log name (a new name for every
// channel created, so that a channel deleted and created again never meets
// its old messages). storage.MsgStore is one.
//
// The state machine never asks the log to forget a message: limits move a
// channel's first sequence, and the owner of the log removes what lies
// below it once a snapshot no longer needs it (Retention). Until then a
// replica that restarts from an older snapshot and applies the log again
// finds every message it needs. Put must therefore be idempotent: putting
// a stored sequence with the same record, or a sequence below the log's
// first, changes nothing.
//
// A log that fails (an I/O error, a missing message) leaves the state
// machine unable to go on: Apply panics with a *LogFailure, which the
// caller recovers to stop the replica.
type MessageLog interface {
	// Put stores record at seq and keeps no reference to it: the state
	// machine encodes every record into the same buffer.
	Put(log string, seq uint64, timestampNanos int64, record []byte) error
	// Get returns the record at seq. The caller may append to it, and
	// never changes it otherwise.
	Get(log string, seq uint64) ([]byte, error)
	// Stat returns the timestamp and record length at seq.
	Stat(log string, seq uint64) (timestampNanos int64, size int, err error)
	// SeqAtOrAfter returns the first stored seq whose timestamp is at or
	// after timestampNanos.
	SeqAtOrAfter(log string, timestampNanos int64) (uint64, bool)
	// TrimBefore drops the messages below seq; a seq above the last makes
	// the log continue there. Only a restore from a snapshot received
	// from another replica calls it.
	TrimBefore(log string, seq uint64) error
}

// LogFailure is the panic value of an Apply or Snapshot whose message log
// failed. The state is then unusable: the replica must stop and restart
// from its storage.
type LogFailure struct{ Err error }

func (f *LogFailure) Error() string { return "statemachine: message log: " + f.Err.Error() }
func (f *LogFailure) Unwrap() error { return f.Err }

func logFailure(format string, args ...any) {
	panic(&LogFailure{Err: fmt.Errorf(format, args...)})
}

// Retention is how much of one channel's log the state still needs.
type Retention struct {
	Log   string
	First uint64 // messages below it may be removed
	Last  uint64
}

// Retention lists, by log name, the logs the state refers to and the first
// sequence each still needs. A log not listed belongs to a deleted channel.
// The owner of a persistent log applies it after saving a snapshot of this
// state, never before: a restart from an older snapshot needs more.
func (s *State) Retention() []Retention {
	out := make([]Retention, 0, len(s.channels))
	for _, ch := range s.channels {
		out = append(out, Retention{Log: ch.log, First: ch.first, Last: ch.last})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Log < out[j].Log })
	return out
}

// logName is the message log name of the channel with that ID.
func logName(id uint64) string { return strconv.FormatUint(id, 10) }

// encodeRecord is a message as the log stores it: the MsgProto of its first
// delivery. Its length is what it counts against MaxBytes.
// It is encoded by hand, byte for byte as proto.Marshal would (a test
// holds it to that), because every publish goes through it.
func encodeRecord(b []byte, seq uint64, subject, reply string, data []byte, ts int64) []byte {
	n := 0
	if seq != 0 {
		n += 1 + protowire.SizeVarint(seq)
	}
	if subject != "" {
		n += 1 + protowire.SizeBytes(len(subject))
	}
	if reply != "" {
		n += 1 + protowire.SizeBytes(len(reply))
	}
	if len(data) > 0 {
		n += 1 + protowire.SizeBytes(len(data))
	}
	if ts != 0 {
		n += 1 + protowire.SizeVarint(uint64(ts))
	}
	b = slices.Grow(b, n)
	if seq != 0 {
		b = protowire.AppendVarint(append(b, 1<<3|byte(protowire.VarintType)), seq)
	}
	if subject != "" {
		b = protowire.AppendString(append(b, 2<<3|byte(protowire.BytesType)), subject)
	}
	if reply != "" {
		b = protowire.AppendString(append(b, 3<<3|byte(protowire.BytesType)), reply)
	}
	if len(data) > 0 {
		b = protowire.AppendBytes(append(b, 4<<3|byte(protowire.BytesType)), data)
	}
	if ts != 0 {
		b = protowire.AppendVarint(append(b, 5<<3|byte(protowire.VarintType)), uint64(ts))
	}
	return b
}

func (s *State) putMsg(ch *channel, seq uint64, ts int64, rec []byte) {
	if err := s.msgs.Put(ch.log, seq, ts, rec); err != nil {
		logFailure("put %s seq %d (channel %q): %w", ch.log, seq, ch.name, err)
	}
}

func (s *State) getMsg(ch *channel, seq uint64) []byte {
	rec, err := s.msgs.Get(ch.log, seq)
	if err != nil {
		logFailure("get %s seq %d (channel %q): %w", ch.log, seq, ch.name, err)
	}
	return rec
}

func (s *State) statMsg(ch *channel, seq uint64) (ts int64, size int64) {
	t, n, err := s.msgs.Stat(ch.log, seq)
	if err != nil {
		logFailure("stat %s seq %d (channel %q): %w", ch.log, seq, ch.name, err)
	}
	return t, int64(n)
}

// Wire is the delivery as sent to the subscriber: the stored record with
// the redelivery fields appended (protobuf merges them in).
func (d Delivery) Wire() []byte {
	b := d.Record
	if d.Redelivered {
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if d.RedeliveryCount > 0 {
		b = protowire.AppendTag(b, 7, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d.RedeliveryCount))
	}
	return b
}

// Message decodes the delivery.
func (d Delivery) Message() *pb.MsgProto {
	m := &pb.MsgProto{}
	if err := proto.Unmarshal(d.Wire(), m); err != nil {
		panic(fmt.Sprintf("statemachine: stored message does not decode: %v", err))
	}
	return m
}

// memLog is the MessageLog a State uses when its Config names none: it
// lives and dies with the State, which trims it as limits remove messages.
type memLog struct {
	logs map[string]*memLogChannel
}

type memLogChannel struct {
	first uint64 // seq of recs[0]
	recs  [][]byte
	ts    []int64
}

func newMemLog() *memLog { return &memLog{logs: map[string]*memLogChannel{}} }

func (l *memLog) channel(log string, seq uint64) (*memLogChannel, int, error) {
	c := l.logs[log]
	if c == nil || seq < c.first || seq >= c.first+uint64(len(c.recs)) {
		return nil, 0, fmt.Errorf("%s seq %d: %w", log, seq, ErrNoMessage)
	}
	return c, int(seq - c.first), nil
}

func (l *memLog) Put(log string, seq uint64, ts int64, record []byte) error {
	c := l.logs[log]
	if c == nil {
		c = &memLogChannel{first: seq}
		l.logs[log] = c
	}
	next := c.first + uint64(len(c.recs))
	switch {
	case seq < c.first:
		return nil
	case seq < next:
		if !slices.Equal(c.recs[seq-c.first], record) {
			return fmt.Errorf("%s seq %d: a different record is stored", log, seq)
		}
		return nil
	case seq > next:
		return fmt.Errorf("%s seq %d: a gap after %d", log, seq, next-1)
	}
	c.recs = append(c.recs, slices.Clone(record))
	c.ts = append(c.ts, ts)
	return nil
}

func (l *memLog) Get(log string, seq uint64) ([]byte, error) {
	c, i, err := l.channel(log, seq)
	if err != nil {
		return nil, err
	}
	return slices.Clip(c.recs[i]), nil
}

func (l *memLog) Stat(log string, seq uint64) (int64, int, error) {
	c, i, err := l.channel(log, seq)
	if err != nil {
		return 0, 0, err
	}
	return c.ts[i], len(c.recs[i]), nil
}

func (l *memLog) SeqAtOrAfter(log string, ts int64) (uint64, bool) {
	c := l.logs[log]
	if c == nil {
		return 0, false
	}
	i := sort.Search(len(c.ts), func(i int) bool { return c.ts[i] >= ts })
	if i == len(c.ts) {
		return 0, false
	}
	return c.first + uint64(i), true
}

func (l *memLog) TrimBefore(log string, seq uint64) error {
	c := l.logs[log]
	if c == nil {
		l.logs[log] = &memLogChannel{first: seq}
		return nil
	}
	if seq <= c.first {
		return nil
	}
	n := min(seq-c.first, uint64(len(c.recs)))
	c.recs, c.ts = c.recs[n:], c.ts[n:]
	if cap(c.recs) > 64 && len(c.recs) < cap(c.recs)/4 {
		c.recs, c.ts = slices.Clone(c.recs), slices.Clone(c.ts) // let the trimmed prefix be collected
	}
	c.first = seq
	return nil
}

func (l *memLog) drop(log string) { delete(l.logs, log) }

// SnapshotNeed is a range of one channel's messages that a replica must
// put in its message log before it can restore a snapshot taken by
// Snapshot, which carries no messages.
type SnapshotNeed struct {
	Log      string // the message log's name
	LogID    uint64
	From, To uint64 // From..To, inclusive
}

// SnapshotNeeds lists what a replica lacks to restore the snapshot data:
// for each channel holding messages, those after the last seq the
// replica's log holds (lastOf; 0 for none), from the channel's first. A
// replica's own messages of a log are the committed ones, the same as
// every replica's; what it lacks is only ever the end of a log.
func SnapshotNeeds(data []byte, lastOf func(log string) uint64) ([]SnapshotNeed, error) {
	snap := &pb.Snapshot{}
	if err := proto.Unmarshal(data, snap); err != nil {
		return nil, fmt.Errorf("statemachine: decode snapshot: %w", err)
	}
	var needs []SnapshotNeed
	for _, cs := range snap.GetChannels() {
		if len(cs.GetRecords()) > 0 || cs.GetFirst() == 0 || cs.GetFirst() > cs.GetLast() {
			continue
		}
		name := logName(cs.GetLogID())
		from := max(cs.GetFirst(), lastOf(name)+1)
		if from <= cs.GetLast() {
			needs = append(needs, SnapshotNeed{Log: name, LogID: cs.GetLogID(), From: from, To: cs.GetLast()})
		}
	}
	return needs, nil
}

// LogName is the message log's name of a channel's log ID.
func LogName(id uint64) string { return logName(id) }

// PutFetched puts into log records fetched from another replica for
// seqs from, from+1, ...: each must be the message stored at its seq
// (a record as the state machine writes them). A seq the log holds must
// hold the same bytes (MessageLog.Put compares them).
func PutFetched(log MessageLog, name string, from uint64, records [][]byte) error {
	for i, rec := range records {
		seq := from + uint64(i)
		m := &pb.MsgProto{}
		if err := proto.Unmarshal(rec, m); err != nil || m.GetSequence() != seq || m.GetRedelivered() || m.GetRedeliveryCount() != 0 {
			return fmt.Errorf("statemachine: fetched message of log %s at seq %d is not one", name, seq)
		}
		if err := log.Put(name, seq, m.GetTimestamp(), rec); err != nil {
			return fmt.Errorf("statemachine: fetched message of log %s at seq %d: %w", name, seq, err)
		}
	}
	return nil
}
