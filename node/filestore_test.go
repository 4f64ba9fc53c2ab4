package node

import (
	"testing"

	"github.com/stanza-io/stanza/storage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// TestFileStorageCommitNeverBelowSnapshot: raft writes a commit-only hard
// state without a sync, and a snapshot file is synced before the log
// records it, so a crash can leave a log whose recorded commit is below
// its snapshot (found by seed 5378). The storage must still start raft:
// the snapshot's index is committed.
func TestFileStorageCommitNeverBelowSnapshot(t *testing.T) {
	fsys := storage.NewMemFS(storage.MemFSOptions{})
	st, err := OpenFileStorage(fsys, "/data", FileStorageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, &raftpb.Entry{Index: new(i), Term: new(uint64(1)), Type: new(raftpb.EntryNormal)})
	}
	if err := st.Save(&raftpb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(uint64(3))}, ents, true); err != nil {
		t.Fatal(err)
	}
	// The commit moves to 10 in a write raft does not ask to sync.
	if err := st.Save(&raftpb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(uint64(10))}, nil, false); err != nil {
		t.Fatal(err)
	}
	// CreateSnapshot writes the snapshot file first, then records it in the
	// log (which syncs the log). The crash comes between the two.
	cs := &raftpb.ConfState{Voters: []uint64{1}}
	if err := st.snaps.Save(&raftpb.SnapshotMetadata{Index: new(uint64(8)), Term: new(uint64(1)), ConfState: cs}, []byte("state at 8")); err != nil {
		t.Fatal(err)
	}
	fsys.Crash()

	st, err = OpenFileStorage(fsys, "/data", FileStorageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs, _, err := st.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := st.Snapshot()
	if got, want := snap.GetMetadata().GetIndex(), uint64(8); got != want {
		t.Fatalf("snapshot at %d after the crash, want %d", got, want)
	}
	if hs.GetCommit() < 8 {
		t.Fatalf("commit %d below the snapshot at 8", hs.GetCommit())
	}
	// raft starts on it (it panicked: "state.commit 3 is out of range [8, 10]").
	if _, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: st, Applied: 8,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16}); err != nil {
		t.Fatal(err)
	}
}
