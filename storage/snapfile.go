package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrNoSnapshot is returned by SnapshotStore.LoadNewest when the directory
// holds no valid snapshot.
var ErrNoSnapshot = errors.New("storage: no snapshot")

const (
	snapshotMagic       = "STZSNAP1"
	snapshotHeaderBytes = 24
	snapshotCRCBytes    = 4
	snapshotSuffix      = ".snap"
	brokenSuffix        = ".broken"
	tmpSuffix           = ".tmp"
)

// SnapshotRetainDefault is the number of snapshots a SnapshotStore keeps
// when given 0.
const SnapshotRetainDefault = 2

// SnapshotStore keeps snapshot files in one directory: the newest
// retainCount valid ones, plus any found broken, renamed aside.
type SnapshotStore struct {
	fsys        FS
	dir         string
	retainCount int
}

// OpenSnapshotStore returns the store of snapshots in dir, creating dir if
// needed. It keeps the newest retainCount snapshots (SnapshotRetainDefault
// if 0); at least 1.
func OpenSnapshotStore(fsys FS, dir string, retainCount int) (*SnapshotStore, error) {
	if retainCount <= 0 {
		retainCount = SnapshotRetainDefault
	}
	if err := MkdirAllSync(fsys, dir); err != nil {
		return nil, fmt.Errorf("open snapshot store %s: %w", dir, err)
	}
	return &SnapshotStore{fsys: fsys, dir: dir, retainCount: retainCount}, nil
}

func snapshotName(index, term uint64) string {
	return fmt.Sprintf("%016x-%016x%s", index, term, snapshotSuffix)
}

// encodeSnapshot returns the file contents for meta and data.
func encodeSnapshot(meta *raftpb.SnapshotMetadata, data []byte) []byte {
	m := marshal(meta)
	b := make([]byte, snapshotHeaderBytes, snapshotHeaderBytes+len(m)+len(data)+snapshotCRCBytes)
	copy(b, snapshotMagic)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(m)))
	binary.LittleEndian.PutUint64(b[16:], uint64(len(data)))
	b = append(b, m...)
	b = append(b, data...)
	return binary.LittleEndian.AppendUint32(b, crc32c(b))
}

// decodeSnapshot decodes a snapshot file. Any damage returns an error
// wrapping ErrCorrupt.
func decodeSnapshot(name string, b []byte) (*raftpb.Snapshot, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, name, fmt.Sprintf(format, args...))
	}
	if len(b) < snapshotHeaderBytes+snapshotCRCBytes {
		return nil, bad("%d bytes is too short", len(b))
	}
	body := b[:len(b)-snapshotCRCBytes]
	if got, want := crc32c(body), binary.LittleEndian.Uint32(b[len(body):]); got != want {
		return nil, bad("checksum %08x, want %08x", got, want)
	}
	if string(b[:8]) != snapshotMagic {
		return nil, bad("bad magic %q", b[:8])
	}
	metaBytes := uint64(binary.LittleEndian.Uint32(b[8:]))
	dataBytes := binary.LittleEndian.Uint64(b[16:])
	if binary.LittleEndian.Uint32(b[12:]) != 0 {
		return nil, bad("reserved bytes are not zero")
	}
	rest := uint64(len(body) - snapshotHeaderBytes)
	if metaBytes > rest || dataBytes != rest-metaBytes {
		return nil, bad("sizes %d + %d do not match the %d bytes of the file", metaBytes, dataBytes, rest)
	}
	meta := &raftpb.SnapshotMetadata{}
	if err := proto.Unmarshal(body[snapshotHeaderBytes:snapshotHeaderBytes+metaBytes], meta); err != nil {
		return nil, bad("metadata: %v", err)
	}
	data := body[snapshotHeaderBytes+metaBytes:]
	if len(data) == 0 {
		data = nil
	}
	return raftpb.EnsureSnapshot(&raftpb.Snapshot{Metadata: meta, Data: data}), nil
}

// Save writes a snapshot durably: to a temporary file, synced, renamed to
// its final name and the directory synced. Then it removes the snapshots
// beyond the retention count.
func (s *SnapshotStore) Save(meta *raftpb.SnapshotMetadata, data []byte) error {
	index, term := meta.GetIndex(), meta.GetTerm()
	name := filepath.Join(s.dir, snapshotName(index, term))
	if err := WriteFileSync(s.fsys, name, encodeSnapshot(meta, data)); err != nil {
		return fmt.Errorf("save snapshot %d: %w", index, err)
	}
	if err := s.removeOld(); err != nil {
		return fmt.Errorf("save snapshot %d: %w", index, err)
	}
	return nil
}

// snapshotNames returns the names of the snapshot files, newest first.
func (s *SnapshotStore) snapshotNames() ([]string, []string, error) {
	names, err := s.fsys.List(s.dir)
	if err != nil {
		return nil, nil, err
	}
	var snaps, tmps []string
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, snapshotSuffix):
			snaps = append(snaps, name)
		case strings.HasSuffix(name, snapshotSuffix+tmpSuffix):
			tmps = append(tmps, name)
		}
	}
	slices.Reverse(snaps)
	return snaps, tmps, nil
}

// removeOld removes the snapshots beyond the retention count and leftover
// temporary files.
func (s *SnapshotStore) removeOld() error {
	snaps, tmps, err := s.snapshotNames()
	if err != nil {
		return err
	}
	var remove []string
	if len(snaps) > s.retainCount {
		remove = append(remove, snaps[s.retainCount:]...)
	}
	remove = append(remove, tmps...)
	if len(remove) == 0 {
		return nil
	}
	for _, name := range remove {
		if err := s.fsys.Remove(filepath.Join(s.dir, name)); err != nil {
			return err
		}
	}
	return s.fsys.SyncDir(s.dir)
}

// LoadNewest returns the newest valid snapshot. A damaged snapshot is
// renamed aside with the suffix ".broken" and the one before it tried. It
// returns ErrNoSnapshot if none is left.
func (s *SnapshotStore) LoadNewest() (*raftpb.Snapshot, error) {
	snaps, _, err := s.snapshotNames()
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	for _, name := range snaps {
		path := filepath.Join(s.dir, name)
		b, err := ReadFile(s.fsys, path)
		if err != nil {
			return nil, fmt.Errorf("load snapshot: %w", err)
		}
		snap, err := decodeSnapshot(name, b)
		if err == nil && snapshotName(snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()) != name {
			err = fmt.Errorf("%w: %s: holds snapshot %d/%d", ErrCorrupt, name, snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm())
		}
		if err == nil {
			return snap, nil
		}
		if err := s.fsys.Rename(path, path+brokenSuffix); err != nil {
			return nil, fmt.Errorf("load snapshot: set aside %s: %w", name, err)
		}
		if err := s.fsys.SyncDir(s.dir); err != nil {
			return nil, fmt.Errorf("load snapshot: set aside %s: %w", name, err)
		}
	}
	return nil, ErrNoSnapshot
}
