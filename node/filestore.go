package node

import (
	"errors"
	"fmt"
	"path"

	"github.com/stanza-io/stanza/storage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// FileStorage keeps the raft log in a write-ahead log and the state
// machine's snapshots in snapshot files, under one directory:
//
//	<dir>/wal/    segments of the raft log (storage.WAL)
//	<dir>/snap/   snapshot files (storage.SnapshotStore)
//	<dir>/msgs/   the channels' messages (storage.OpenFileMsgStore)
type FileStorage struct {
	*storage.WAL
	snaps *storage.SnapshotStore
	msgs  storage.MsgStore
	sync  bool
}

// FileStorageOptions tune a FileStorage.
type FileStorageOptions struct {
	// NoSync makes Save never fsync (nats-streaming-server's
	// cluster_sync=false): faster, and a power loss of a quorum can lose
	// acknowledged messages.
	NoSync bool
	// SegmentBytesMax bounds a log segment (0: the WAL's default).
	SegmentBytesMax int64
	// Preallocate reserves each log segment's space when it is created, so
	// that a sync records no new file size (storage.WALOptions).
	Preallocate bool
	// Msgs tunes the message store.
	Msgs storage.FileMsgStoreOptions
}

// OpenFileStorage opens (or creates) the log in dir.
func OpenFileStorage(fsys storage.FS, dir string, opts FileStorageOptions) (*FileStorage, error) {
	if err := storage.MkdirAllSync(fsys, dir); err != nil {
		return nil, fmt.Errorf("node: storage directory %s: %w", dir, err)
	}
	wal, err := storage.OpenWAL(fsys, path.Join(dir, "wal"), storage.WALOptions{SegmentBytesMax: opts.SegmentBytesMax, Preallocate: opts.Preallocate})
	if err != nil {
		return nil, fmt.Errorf("node: open log: %w", err)
	}
	snaps, err := storage.OpenSnapshotStore(fsys, path.Join(dir, "snap"), 2)
	if err != nil {
		wal.Close()
		return nil, fmt.Errorf("node: open snapshots: %w", err)
	}
	msgs, err := storage.OpenFileMsgStore(fsys, path.Join(dir, "msgs"), opts.Msgs)
	if err != nil {
		wal.Close()
		return nil, fmt.Errorf("node: open message store: %w", err)
	}
	fs := &FileStorage{WAL: wal, snaps: snaps, msgs: msgs, sync: !opts.NoSync}
	if err := fs.loadSnapshot(); err != nil {
		fs.Close()
		return nil, err
	}
	return fs, nil
}

// Messages implements Storage.
func (f *FileStorage) Messages() storage.MsgStore { return f.msgs }

// Close closes the log and the message store.
func (f *FileStorage) Close() error {
	err := f.WAL.Close()
	if merr := f.msgs.Close(); err == nil {
		err = merr
	}
	return err
}

// loadSnapshot gives the log the data of its snapshot. The snapshot file is
// written before the log records it, so after a crash the newest file may
// be ahead of the log: the log then takes it.
func (f *FileStorage) loadSnapshot() error {
	walSnap, err := f.WAL.Snapshot()
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	walIndex := walSnap.GetMetadata().GetIndex()
	newest, err := f.snaps.LoadNewest()
	switch {
	case errors.Is(err, storage.ErrNoSnapshot):
		if walIndex > 0 {
			return fmt.Errorf("node: the log starts at snapshot %d but no snapshot file is readable: %w", walIndex, storage.ErrCorrupt)
		}
		return nil
	case err != nil:
		return fmt.Errorf("node: load snapshot: %w", err)
	}
	idx := newest.GetMetadata().GetIndex()
	switch {
	case idx == walIndex:
		return f.WAL.SetSnapshotData(idx, newest.GetData())
	case idx < walIndex:
		return fmt.Errorf("node: newest snapshot file is at %d, the log needs %d: %w", idx, walIndex, storage.ErrCorrupt)
	}
	last, _ := f.WAL.LastIndex()
	if idx <= last {
		_, err = f.WAL.CreateSnapshot(idx, newest.GetMetadata().GetConfState(), newest.GetData())
		return err
	}
	return f.WAL.ApplySnapshot(newest)
}

// InitialState implements raft.Storage. A hard state's commit index is
// written without a sync (raft does not ask for one), so after a crash the
// log may record a commit below its snapshot; raft refuses to start on that
// ("state.commit is out of range"). A snapshot only ever holds committed
// entries, so its index is committed: the commit is raised to it.
func (f *FileStorage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	hs, cs, err := f.WAL.InitialState()
	if err != nil || hs == nil {
		return hs, cs, err
	}
	snap, err := f.WAL.Snapshot()
	if err != nil {
		return nil, nil, fmt.Errorf("node: %w", err)
	}
	if idx := snap.GetMetadata().GetIndex(); hs.GetCommit() < idx {
		hs.Commit = &idx
	}
	return hs, cs, nil
}

// Save implements Storage.
func (f *FileStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, mustSync bool) error {
	if (hs == nil || raft.IsEmptyHardState(hs)) && len(ents) == 0 {
		return nil
	}
	return f.WAL.Save(hs, ents, mustSync && f.sync)
}

// ApplySnapshot implements Storage: the file first, then the log.
func (f *FileStorage) ApplySnapshot(snap *raftpb.Snapshot) error {
	if err := f.snaps.Save(snap.GetMetadata(), snap.GetData()); err != nil {
		return err
	}
	return f.WAL.ApplySnapshot(snap)
}

// CreateSnapshot implements Storage: the file first, then the log, then
// compaction.
func (f *FileStorage) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte, compactIndex uint64) error {
	term, err := f.WAL.Term(index)
	if err != nil {
		return fmt.Errorf("node: snapshot at %d: %w", index, err)
	}
	meta := &raftpb.SnapshotMetadata{Index: &index, Term: &term, ConfState: cs}
	if err := f.snaps.Save(meta, data); err != nil {
		return err
	}
	if _, err := f.WAL.CreateSnapshot(index, cs, data); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return err
	}
	first, _ := f.WAL.FirstIndex()
	if compactIndex > first {
		if err := f.WAL.Compact(compactIndex); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
	}
	return nil
}
