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

// memChannel holds the messages first..last: msgs[i] and timestamps[i]
// belong to seq first+i.
type memChannel struct {
	first, last uint64
	lastTs      int64 // timestamp of last, kept when every message is trimmed
	msgs        [][]byte
	timestamps  []int64
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
		if !bytes.Equal(ch.msgs[seq-ch.first], record) {
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
	ch.msgs = append(ch.msgs, record[:len(record):len(record)])
	ch.timestamps = append(ch.timestamps, ch.lastTs)
	if uint64(len(ch.msgs)) != ch.last-ch.first+1 {
		panic(fmt.Sprintf("storage: mem channel %s holds %d messages for seqs %d to %d", channel, len(ch.msgs), ch.first, ch.last))
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
	return ch.msgs[seq-ch.first], nil
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
	return ch.timestamps[seq-ch.first], len(ch.msgs[seq-ch.first]), nil
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
	i := sort.Search(len(ch.timestamps), func(i int) bool { return ch.timestamps[i] >= timestampNanos })
	if i == len(ch.timestamps) {
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
	n := min(seq-ch.first, uint64(len(ch.msgs)))
	// Clear the dropped references so that the collector frees them; the
	// next growth of the slices copies only what is left.
	clear(ch.msgs[:n])
	ch.msgs, ch.timestamps = ch.msgs[n:], ch.timestamps[n:]
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
