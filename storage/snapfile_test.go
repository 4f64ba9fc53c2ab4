package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func snapMeta(index, term uint64) *raftpb.SnapshotMetadata {
	return &raftpb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}
}

func TestSnapshotStore(t *testing.T) {
	eachFS(t, func(t *testing.T, tfs testFS) {
		dir := filepath.Join(tfs.dir, "snap")
		s, err := OpenSnapshotStore(tfs.fsys, dir, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.LoadNewest(); !errors.Is(err, ErrNoSnapshot) {
			t.Fatalf("empty store: got %v, want ErrNoSnapshot", err)
		}
		for i := uint64(1); i <= 4; i++ {
			if err := s.Save(snapMeta(i*10, i), []byte(fmt.Sprintf("data%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		names, err := tfs.fsys.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{snapshotName(30, 3), snapshotName(40, 4)}; !slices.Equal(names, want) {
			t.Errorf("files: got %v, want %v", names, want)
		}
		snap, err := s.LoadNewest()
		if err != nil {
			t.Fatal(err)
		}
		if snap.GetMetadata().GetIndex() != 40 || string(snap.GetData()) != "data4" || !slices.Equal(snap.GetMetadata().GetConfState().GetVoters(), []uint64{1, 2, 3}) {
			t.Errorf("newest: got %v", snap)
		}
	})
}

// TestSnapshotStoreBroken damages the newest snapshot in several ways and
// checks that it is set aside and the previous one used.
func TestSnapshotStoreBroken(t *testing.T) {
	damages := map[string]func(t *testing.T, m *MemFS, name string){
		"flipped bit": func(t *testing.T, m *MemFS, name string) {
			if err := m.FlipBit(name, 30, 1); err != nil {
				t.Fatal(err)
			}
		},
		"truncated": func(t *testing.T, m *MemFS, name string) {
			f, err := m.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(20); err != nil {
				t.Fatal(err)
			}
		},
		"renamed": func(t *testing.T, m *MemFS, name string) {
			if err := m.Rename(name, filepath.Join(filepath.Dir(name), snapshotName(99, 9))); err != nil {
				t.Fatal(err)
			}
		},
	}
	for _, what := range slices.Sorted(func(yield func(string) bool) {
		for k := range damages {
			if !yield(k) {
				return
			}
		}
	}) {
		t.Run(what, func(t *testing.T) {
			m := NewMemFS(MemFSOptions{})
			s, err := OpenSnapshotStore(m, "/snap", 3)
			if err != nil {
				t.Fatal(err)
			}
			for i := uint64(1); i <= 2; i++ {
				if err := s.Save(snapMeta(i, 1), []byte(fmt.Sprintf("data%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			damages[what](t, m, "/snap/"+snapshotName(2, 1))
			snap, err := s.LoadNewest()
			if err != nil {
				t.Fatal(err)
			}
			if got := snap.GetMetadata().GetIndex(); got != 1 {
				t.Errorf("got snapshot %d, want 1", got)
			}
			names, err := m.List("/snap")
			if err != nil {
				t.Fatal(err)
			}
			if len(names) != 2 || !strings.HasSuffix(names[1], brokenSuffix) {
				t.Errorf("files: %v, want snapshot 1 and one .broken", names)
			}
		})
	}
}

// TestSnapshotStoreCrash crashes a MemFS right after Save and checks the
// snapshot survives, and that a crash during Save leaves the old one.
func TestSnapshotStoreCrash(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	s, err := OpenSnapshotStore(m, "/a/snap", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(snapMeta(5, 1), []byte("five")); err != nil {
		t.Fatal(err)
	}
	m.InjectFault(OpSync, "/a/snap/"+snapshotName(6, 1), nil)
	if err := s.Save(snapMeta(6, 1), []byte("six")); err == nil {
		t.Fatal("save with a sync fault: got nil error")
	}
	m.ClearFaults()
	m.Crash()
	snap, err := s.LoadNewest()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(snap.GetData()); got != "five" {
		t.Errorf("after crash: got %q, want five", got)
	}
	if err := s.Save(snapMeta(7, 1), []byte("seven")); err != nil {
		t.Fatal(err)
	}
	names, err := m.List("/a/snap")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{snapshotName(7, 1)}; !slices.Equal(names, want) {
		t.Errorf("files: got %v, want %v (old and temporary files removed)", names, want)
	}
}

// FuzzSnapshotRead feeds arbitrary bytes as a snapshot file: decoding must
// return an error or a snapshot, never panic.
func FuzzSnapshotRead(f *testing.F) {
	valid := encodeSnapshot(snapMeta(7, 2), []byte("payload"))
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add([]byte(snapshotMagic))
	f.Add(encodeSnapshot(snapMeta(0, 0), nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := decodeSnapshot("fuzz.snap", data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := decodeSnapshot("fuzz.snap", encodeSnapshot(snap.GetMetadata(), snap.GetData()))
		if err != nil || again.GetMetadata().GetIndex() != snap.GetMetadata().GetIndex() || string(again.GetData()) != string(snap.GetData()) {
			t.Fatalf("round trip: %v, %v", again, err)
		}
	})
}
