package node

import (
	"github.com/stanza-io/stanza/storage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Storage is a replica's raft log: raft reads it through raft.Storage, the
// core writes it. Implementations must make everything passed to Save with
// mustSync durable before Save returns.
type Storage interface {
	raft.Storage
	// Save appends entries (replacing any conflicting suffix) and records
	// the hard state; with mustSync, one fsync covers the whole batch.
	Save(hs *raftpb.HardState, ents []*raftpb.Entry, mustSync bool) error
	// ApplySnapshot replaces the log with a snapshot received from the
	// leader.
	ApplySnapshot(snap *raftpb.Snapshot) error
	// CreateSnapshot records a snapshot of the state machine at index and
	// compacts the log up to compactIndex (<= index).
	CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte, compactIndex uint64) error
	// Messages is the channels' message store. The core syncs it before
	// each snapshot and trims it after (statemachine.MessageLog tells why).
	Messages() storage.MsgStore
}

// MemStorage keeps the log in memory (the MEMORY store): fast, and lost
// when the process ends.
type MemStorage struct {
	*raft.MemoryStorage
	msgs storage.MsgStore
}

// NewMemStorage returns an empty in-memory log and message store.
func NewMemStorage() *MemStorage {
	return &MemStorage{MemoryStorage: raft.NewMemoryStorage(), msgs: storage.NewMemMsgStore()}
}

// Messages implements Storage.
func (m *MemStorage) Messages() storage.MsgStore { return m.msgs }

// Save implements Storage.
func (m *MemStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, _ bool) error {
	if hs != nil && !raft.IsEmptyHardState(hs) {
		if err := m.SetHardState(hs); err != nil {
			return err
		}
	}
	if len(ents) > 0 {
		return m.Append(ents)
	}
	return nil
}

// ApplySnapshot implements Storage.
func (m *MemStorage) ApplySnapshot(snap *raftpb.Snapshot) error {
	return m.MemoryStorage.ApplySnapshot(snap)
}

// CreateSnapshot implements Storage.
func (m *MemStorage) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte, compactIndex uint64) error {
	if _, err := m.MemoryStorage.CreateSnapshot(index, cs, data); err != nil {
		return err
	}
	if compactIndex > 0 {
		return m.Compact(compactIndex)
	}
	return nil
}
