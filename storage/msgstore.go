package storage

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of a MsgStore, for callers to branch on with errors.Is.
var (
	// ErrNotFound is returned by Get for a seq below the first or above the
	// last of a channel, or for an unknown channel.
	ErrNotFound = errors.New("storage: message not found")
	// ErrConflict is returned by Put for a seq that is stored with
	// different bytes.
	ErrConflict = errors.New("storage: message conflicts with the stored one")
	// ErrGap is returned by Put for a seq that does not follow the last seq
	// of a channel.
	ErrGap = errors.New("storage: message seq does not follow the last one")
)

// MsgStore holds the messages of channels: opaque records keyed by channel
// and seq, each with a timestamp. NewMemMsgStore keeps them in memory,
// OpenFileMsgStore in segment files (see the package documentation for the
// format). A MsgStore is safe for concurrent use.
//
// The seqs of a channel are contiguous from first to last. A channel starts
// at the seq of its first Put and is created by it. TrimBefore moves first
// up and may leave a channel with every message trimmed, first = last+1,
// whose next Put must still be last+1.
//
// Timestamps are stored non-decreasing per channel: a timestamp below the
// previous one of the channel is stored as that one. SeqAtOrAfter can then
// binary search, and a clock that steps back never hides messages.
type MsgStore interface {
	// Put stores record at seq in channel. Putting an existing seq with
	// identical bytes is a no-op, so that re-applying raft entries after a
	// restart is harmless, and so is putting a seq below first (trimmed).
	// Different bytes at an existing seq return ErrConflict. Otherwise seq
	// must be last+1, or any seq >= 1 for a channel without messages that
	// was never trimmed (the channel then starts there), else ErrGap. Put
	// keeps no reference to record: the caller may reuse it.
	Put(channel string, seq uint64, timestampNanos int64, record []byte) error
	// Get returns the record at seq, or ErrNotFound below first, above last
	// or for an unknown channel. The caller must not change it (the memory
	// store returns a view of its own copy); appending to it copies it.
	Get(channel string, seq uint64) ([]byte, error)
	// Stat returns the timestamp and the record length of the message at
	// seq without reading the record, or ErrNotFound like Get.
	Stat(channel string, seq uint64) (timestampNanos int64, size int, err error)
	// FirstLast returns the first and last seq of channel: 0, 0 for an
	// unknown channel, last+1, last once every message was trimmed.
	FirstLast(channel string) (first, last uint64)
	// SeqAtOrAfter returns the first seq whose timestamp is at or after
	// timestampNanos, and false if there is none.
	SeqAtOrAfter(channel string, timestampNanos int64) (uint64, bool)
	// TrimBefore drops every message below seq. seq may be above last+1:
	// the channel then continues at seq. Trimming an unknown channel does
	// nothing.
	TrimBefore(channel string, seq uint64) error
	// DropSegmentsBefore frees the space of messages below seq where that
	// is cheap, and only there: the file store removes its sealed segments
	// whose messages are all below seq, and records nothing else, so that
	// a call costs a directory sync when it removes a segment and nothing
	// otherwise. Messages below seq may stay readable; first moves up to
	// the first message kept. The memory store drops every message below
	// seq. Unlike TrimBefore, it never moves first past a kept message.
	DropSegmentsBefore(channel string, seq uint64) error
	// DeleteChannel drops channel and all its messages; deleting an unknown
	// channel does nothing.
	DeleteChannel(channel string) error
	// Channels returns the names of the channels, sorted.
	Channels() []string
	// Sync makes every Put so far durable, with one fsync per file written
	// since the last Sync. TrimBefore and DeleteChannel are durable when
	// they return.
	Sync() error
	// Close releases the store. It does not sync.
	Close() error
}

// channelDirBytesMax bounds the encoded directory name of a channel (see
// encodeChannel) to what a file name may have: a channel name of lower-case
// letters, digits, '.', '-' and '_' may have 253 bytes, one of other bytes
// only 84.
const channelDirBytesMax = 255

// checkChannel validates a channel name: not empty, no wildcard, bounded.
func checkChannel(channel string) error {
	switch {
	case channel == "":
		return errors.New("empty channel name")
	case strings.ContainsAny(channel, "*>"):
		return fmt.Errorf("channel name %q contains a wildcard", channel)
	case encodedChannelBytes(channel) > channelDirBytesMax:
		return fmt.Errorf("channel name %q encodes to %d bytes, over %d", channel, encodedChannelBytes(channel), channelDirBytesMax)
	}
	return nil
}

// checkPut validates the arguments of Put that do not depend on the state.
func checkPut(channel string, seq uint64, record []byte) error {
	if err := checkChannel(channel); err != nil {
		return err
	}
	if seq == 0 {
		return errors.New("seq 0 is invalid")
	}
	if len(record) > msgDataBytesMax {
		return fmt.Errorf("record of %d bytes exceeds %d", len(record), msgDataBytesMax)
	}
	return nil
}

// checkSeq decides a Put of seq in a channel holding first..last (0, 0: it
// never held a message): nil if seq comes next, existing if seq is stored
// and the caller must compare the bytes, errPutNoop if seq was trimmed, or
// an error wrapping ErrGap.
func checkSeq(first, last, seq uint64) (existing bool, err error) {
	switch {
	case first == 0 && last == 0:
		return false, nil
	case seq < first:
		return false, errPutNoop
	case seq <= last:
		return true, nil
	case seq == last+1:
		return false, nil
	}
	return false, fmt.Errorf("%w: seq %d after last %d", ErrGap, seq, last)
}

// errPutNoop tells Put that seq was trimmed: nothing to do.
var errPutNoop = errors.New("put of a trimmed seq")

// channelDirPrefix starts the directory name of every channel.
const channelDirPrefix = "c-"

// encodeChannel returns the directory name of a channel: the prefix, then
// the name with every byte but a-z, 0-9, '.', '-' and '_' written as '%' and
// two lower-case hex digits. Upper case is escaped too, so that names that
// differ only in case stay apart on case-insensitive file systems.
func encodeChannel(channel string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.WriteString(channelDirPrefix)
	for i := 0; i < len(channel); i++ {
		c := channel[i]
		if plainChannelByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// plainChannelByte reports whether encodeChannel keeps c as it is.
func plainChannelByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
}

// encodedChannelBytes returns len(encodeChannel(channel)).
func encodedChannelBytes(channel string) int {
	n := len(channelDirPrefix)
	for i := 0; i < len(channel); i++ {
		if plainChannelByte(channel[i]) {
			n++
		} else {
			n += 3
		}
	}
	return n
}

// decodeChannel reverses encodeChannel. It reports false for a name that
// encodeChannel does not produce.
func decodeChannel(dirName string) (string, bool) {
	rest, ok := strings.CutPrefix(dirName, channelDirPrefix)
	if !ok {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		if rest[i] != '%' {
			b.WriteByte(rest[i])
			continue
		}
		if i+2 >= len(rest) {
			return "", false
		}
		hi, lo := unhex(rest[i+1]), unhex(rest[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	channel := b.String()
	if checkChannel(channel) != nil || encodeChannel(channel) != dirName {
		return "", false
	}
	return channel, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
