package storage

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// memMsgStore is the MsgStore of NewMemMsgStore.
type memMsgStore struct {
	mu       sync.Mutex
	channels map[string]*memChannel
	closed   bool
}

// memChannel holds the messages first..last: refs[i] is seq first+i. The
// records are copied into blocks, large byte slices, so that the store
// holds a few pointers per channel instead of one per message (the
// collector has nothing to scan in a million messages) and a Put allocates
// only when a block fills.
type memChannel struct {
	first, last uint64
	lastTs      int64 // timestamp of last, kept when every message is trimmed
	refs        []memRef
	blocks      [][]byte // blocks[i] is block number firstBlock+i
	firstBlock  uint32
}

// memRef is where one record is: block number, offset and length.
type memRef struct {
	ts       int64
	block    uint32
	off, len uint32
}

// Block sizes: a channel's first block is small, each next one twice the
// last, up to memBlockBytesMax (a record larger than a block gets a block
// of its own size).
const (
	memBlockBytesMin = 4 << 10
	memBlockBytesMax = 1 << 20
)

func (ch *memChannel) record(seq uint64) []byte {
	r := ch.refs[seq-ch.first]
	b := ch.blocks[r.block-ch.firstBlock]
	return b[r.off : r.off+r.len : r.off+r.len]
}

// add copies record into the current block, or a new one.
func (ch *memChannel) add(ts int64, record []byte) {
	n := len(ch.blocks)
	if n == 0 || cap(ch.blocks[n-1])-len(ch.blocks[n-1]) < len(record) {
		size := memBlockBytesMin
		if n > 0 {
			size = min(2*cap(ch.blocks[n-1]), memBlockBytesMax)
		}
		ch.blocks = append(ch.blocks, make([]byte, 0, max(size, len(record))))
		n++
	}
	b := ch.blocks[n-1]
	ch.refs = append(ch.refs, memRef{ts: ts, block: ch.firstBlock + uint32(n-1), off: uint32(len(b)), len: uint32(len(record))})
	ch.blocks[n-1] = append(b, record...)
}

// trim drops the records below seq, and every block that held only those.
func (ch *memChannel) trim(seq uint64) {
	n := min(seq-ch.first, uint64(len(ch.refs)))
	ch.refs = ch.refs[n:]
	if len(ch.refs) < cap(ch.refs)/4 && cap(ch.refs) > 1024 {
		ch.refs = slices.Clone(ch.refs) // let the trimmed prefix go
	}
	keep := uint32(len(ch.blocks)) // with no record left, keep the last block only
	if len(ch.refs) > 0 {
		keep = ch.refs[0].block - ch.firstBlock
	} else if keep > 0 {
		keep--
	}
	if keep > 0 {
		clear(ch.blocks[:keep])
		ch.blocks = ch.blocks[keep:]
		ch.firstBlock += keep
	}
}

// NewMemMsgStore returns a MsgStore that keeps everything in memory. Sync
// does nothing and nothing survives Close.
func NewMemMsgStore() MsgStore {
	return &memMsgStore{channels: map[string]*memChannel{}}
}

var errMsgStoreClosed = errors.New("message store closed")

// Put implements MsgStore.
func (s *memMsgStore) Put(channel string, seq uint64, timestampNanos int64, record []byte) error {
	if err := checkPut(channel, seq, record); err != nil {
		return fmt.Errorf("put %s/%d: %w", channel, seq, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("put %s/%d: %w", channel, seq, errMsgStoreClosed)
	}
	ch := s.channels[channel]
	if ch == nil {
		ch = &memChannel{}
	}
	existing, err := checkSeq(ch.first, ch.last, seq)
	if errors.Is(err, errPutNoop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("put %s/%d: %w", channel, seq, err)
	}
	if existing {
		if !bytes.Equal(ch.record(seq), record) {
			return fmt.Errorf("put %s/%d: %w", channel, seq, ErrConflict)
		}
		return nil
	}
	if ch.first == 0 {
		ch.first = seq
		s.channels[channel] = ch
	}
	ch.last = seq
	ch.lastTs = max(ch.lastTs, timestampNanos)
	ch.add(ch.lastTs, record)
	if uint64(len(ch.refs)) != ch.last-ch.first+1 {
		panic(fmt.Sprintf("storage: mem channel %s holds %d messages for seqs %d to %d", channel, len(ch.refs), ch.first, ch.last))
	}
	return nil
}

// Get implements MsgStore.
func (s *memMsgStore) Get(channel string, seq uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.holding("get", channel, seq)
	if err != nil {
		return nil, err
	}
	return ch.record(seq), nil
}

// DropSegmentsBefore implements MsgStore: in memory, dropping is cheap.
func (s *memMsgStore) DropSegmentsBefore(channel string, seq uint64) error {
	s.mu.Lock()
	ch := s.channels[channel]
	if ch != nil {
		seq = min(seq, ch.last+1)
	}
	s.mu.Unlock()
	return s.TrimBefore(channel, seq)
}

// holding returns the channel holding seq, or the error of op: the store
// is closed, or ErrNotFound. The caller holds s.mu.
func (s *memMsgStore) holding(op, channel string, seq uint64) (*memChannel, error) {
	if s.closed {
		return nil, fmt.Errorf("%s %s/%d: %w", op, channel, seq, errMsgStoreClosed)
	}
	ch := s.channels[channel]
	if ch == nil || seq < ch.first || seq > ch.last {
		return nil, fmt.Errorf("%s %s/%d: %w", op, channel, seq, ErrNotFound)
	}
	return ch, nil
}

// Stat implements MsgStore.
func (s *memMsgStore) Stat(channel string, seq uint64) (int64, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.holding("stat", channel, seq)
	if err != nil {
		return 0, 0, err
	}
	r := ch.refs[seq-ch.first]
	return r.ts, int(r.len), nil
}

// FirstLast implements MsgStore.
func (s *memMsgStore) FirstLast(channel string) (first, last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.channels[channel]; ch != nil {
		return ch.first, ch.last
	}
	return 0, 0
}

// SeqAtOrAfter implements MsgStore.
func (s *memMsgStore) SeqAtOrAfter(channel string, timestampNanos int64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channel]
	if ch == nil {
		return 0, false
	}
	i := sort.Search(len(ch.refs), func(i int) bool { return ch.refs[i].ts >= timestampNanos })
	if i == len(ch.refs) {
		return 0, false
	}
	return ch.first + uint64(i), true
}

// TrimBefore implements MsgStore.
func (s *memMsgStore) TrimBefore(channel string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("trim %s before %d: %w", channel, seq, errMsgStoreClosed)
	}
	ch := s.channels[channel]
	if ch == nil || seq <= ch.first {
		return nil
	}
	ch.trim(seq)
	ch.first = seq
	ch.last = max(ch.last, seq-1)
	return nil
}

// DeleteChannel implements MsgStore.
func (s *memMsgStore) DeleteChannel(channel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("delete channel %s: %w", channel, errMsgStoreClosed)
	}
	delete(s.channels, channel)
	return nil
}

// Channels implements MsgStore.
func (s *memMsgStore) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.channels))
	for name := range s.channels {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Sync implements MsgStore: memory needs no sync.
func (s *memMsgStore) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sync: %w", errMsgStoreClosed)
	}
	return nil
}

// Close implements MsgStore.
func (s *memMsgStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("close: %w", errMsgStoreClosed)
	}
	s.closed = true
	s.channels = nil
	return nil
}
