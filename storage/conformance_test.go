package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// confOp is one write applied to both a raft.MemoryStorage and a WAL.
type confOp struct {
	kind     string // save, compact, create, apply
	hs       *raftpb.HardState
	entries  []*raftpb.Entry
	index    uint64
	snap     *raftpb.Snapshot
	cs       *raftpb.ConfState
	mustSync bool
}

func (op confOp) String() string {
	switch op.kind {
	case "save":
		first, last := uint64(0), uint64(0)
		if len(op.entries) > 0 {
			first, last = op.entries[0].GetIndex(), op.entries[len(op.entries)-1].GetIndex()
		}
		return fmt.Sprintf("save hs=%v entries=[%d,%d] sync=%v", op.hs != nil, first, last, op.mustSync)
	case "apply":
		return fmt.Sprintf("apply snapshot %d/%d", op.snap.GetMetadata().GetIndex(), op.snap.GetMetadata().GetTerm())
	default:
		return fmt.Sprintf("%s %d", op.kind, op.index)
	}
}

// applyMem applies op to ms like the WAL should, returning the error.
func applyMem(ms *raft.MemoryStorage, op confOp) error {
	switch op.kind {
	case "save":
		if err := ms.Append(op.entries); err != nil {
			return err
		}
		if !raft.IsEmptyHardState(op.hs) {
			return ms.SetHardState(op.hs)
		}
		return nil
	case "compact":
		return ms.Compact(op.index)
	case "create":
		_, err := ms.CreateSnapshot(op.index, op.cs, []byte(fmt.Sprintf("data@%d", op.index)))
		return err
	case "apply":
		return ms.ApplySnapshot(op.snap)
	}
	panic(op.kind)
}

func applyWAL(w *WAL, op confOp) error {
	switch op.kind {
	case "save":
		return w.Save(op.hs, op.entries, op.mustSync)
	case "compact":
		return w.Compact(op.index)
	case "create":
		_, err := w.CreateSnapshot(op.index, op.cs, []byte(fmt.Sprintf("data@%d", op.index)))
		return err
	case "apply":
		return w.ApplySnapshot(op.snap)
	}
	panic(op.kind)
}

// randomOp draws a valid write for the state of ms (one raft could issue
// or one the storages must reject the same way).
func randomOp(rng *rand.Rand, ms *raft.MemoryStorage, term *uint64) confOp {
	first, _ := ms.FirstIndex()
	last, _ := ms.LastIndex()
	snap, _ := ms.Snapshot()
	switch r := rng.IntN(100); {
	case r < 70:
		if rng.IntN(4) == 0 {
			*term++
		}
		start := max(1, first-min(first, 2)) + uint64(rng.IntN(int(last+2-max(1, first-min(first, 2)))))
		n := uint64(rng.IntN(6))
		var es []*raftpb.Entry
		for i := start; i < start+n; i++ {
			data := make([]byte, rng.IntN(40))
			for j := range data {
				data[j] = byte(rng.IntN(256))
			}
			es = append(es, &raftpb.Entry{Index: new(i), Term: new(*term), Type: new(raftpb.EntryNormal), Data: data})
		}
		var hs *raftpb.HardState
		if rng.IntN(2) == 0 {
			hs = hardState(*term, uint64(rng.IntN(3)), uint64(rng.IntN(int(last+1))))
		}
		return confOp{kind: "save", hs: hs, entries: es, mustSync: rng.IntN(3) != 0}
	case r < 82:
		return confOp{kind: "compact", index: first - 1 + uint64(rng.IntN(int(last-first+2)))}
	case r < 92:
		// MemoryStorage cannot snapshot a compacted index.
		lo := max(snap.GetMetadata().GetIndex(), first-1)
		if lo > last {
			return confOp{kind: "compact", index: first - 1}
		}
		var cs *raftpb.ConfState
		if rng.IntN(2) == 0 {
			cs = &raftpb.ConfState{Voters: []uint64{1, uint64(2 + rng.IntN(3))}}
		}
		return confOp{kind: "create", index: lo + uint64(rng.IntN(int(last-lo+1))), cs: cs}
	default:
		index := last - min(last, 3) + uint64(rng.IntN(10))
		*term++
		return confOp{kind: "apply", snap: &raftpb.Snapshot{
			Data: []byte(fmt.Sprintf("snap@%d", index)),
			Metadata: &raftpb.SnapshotMetadata{
				Index:     new(index),
				Term:      new(*term),
				ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
			},
		}}
	}
}

// replayMem rebuilds a MemoryStorage from ops.
func replayMem(t *testing.T, ops []confOp) *raft.MemoryStorage {
	t.Helper()
	ms := raft.NewMemoryStorage()
	for _, op := range ops {
		if err := applyMem(ms, op); err != nil {
			t.Fatalf("replay %v: %v", op, err)
		}
	}
	return ms
}

// TestWALConformance runs random writes against raft.MemoryStorage and a WAL
// with tiny segments, compares everything raft.Storage shows after each one,
// and reopens the WAL now and then to check it comes back the same.
func TestWALConformance(t *testing.T) {
	eachFS(t, func(t *testing.T, tfs testFS) {
		for seed := range uint64(8) {
			rng := rand.New(rand.NewPCG(seed, 7))
			opts := WALOptions{SegmentBytesMax: int64(200 + rng.IntN(400)), Preallocate: seed%2 == 1}
			dir := fmt.Sprintf("%s/%d", tfs.dir, seed)
			w, err := OpenWAL(tfs.fsys, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			ms := raft.NewMemoryStorage()
			var term uint64 = 1
			for step := range 300 {
				op := randomOp(rng, ms, &term)
				errMem := applyMem(ms, op)
				errWAL := applyWAL(w, op)
				if !errors.Is(errWAL, errMem) {
					t.Fatalf("seed %d step %d %v: wal error %v, memory storage error %v", seed, step, op, errWAL, errMem)
				}
				if got, want := describe(w), describe(ms); got != want {
					t.Fatalf("seed %d step %d %v:\nwal:\n%s\nmemory storage:\n%s", seed, step, op, got, want)
				}
				checkEntries(t, rng, w, ms)
				if rng.IntN(25) == 0 {
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					if w, err = OpenWAL(tfs.fsys, dir, opts); err != nil {
						t.Fatalf("seed %d step %d: reopen: %v", seed, step, err)
					}
					if got, want := describe(w), describe(ms); got != want {
						t.Fatalf("seed %d step %d after reopen:\nwal:\n%s\nmemory storage:\n%s", seed, step, got, want)
					}
					snap, _ := ms.Snapshot()
					if err := w.SetSnapshotData(snap.GetMetadata().GetIndex(), snap.GetData()); err != nil {
						t.Fatal(err)
					}
				}
				gotSnap, _ := w.Snapshot()
				wantSnap, _ := ms.Snapshot()
				if !proto.Equal(gotSnap, wantSnap) {
					t.Fatalf("seed %d step %d: snapshot %v, want %v", seed, step, gotSnap, wantSnap)
				}
			}
			w.Close()
		}
	})
}

// checkEntries compares Entries on random ranges, with random size limits.
func checkEntries(t *testing.T, rng *rand.Rand, w *WAL, ms *raft.MemoryStorage) {
	t.Helper()
	first, _ := ms.FirstIndex()
	last, _ := ms.LastIndex()
	for range 3 {
		lo := first - 1 + uint64(rng.IntN(int(last-first+2)))
		hi := lo + uint64(rng.IntN(int(last+2-lo)))
		maxSize := uint64(rng.IntN(200))
		got, errGot := w.Entries(lo, hi, maxSize)
		want, errWant := ms.Entries(lo, hi, maxSize)
		if !errors.Is(errGot, errWant) || len(got) != len(want) {
			t.Fatalf("Entries(%d, %d, %d): got %d entries, %v, want %d, %v", lo, hi, maxSize, len(got), errGot, len(want), errWant)
		}
		for i := range got {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("Entries(%d, %d, %d)[%d]: got %v, want %v", lo, hi, maxSize, i, got[i], want[i])
			}
		}
	}
}

// TestWALCrashConformance is TestWALConformance with crashes of a MemFS
// instead of clean reopens. After a crash the WAL must equal a replay of a
// prefix of the writes that contains at least every write up to the last
// synced one: nothing synced lost, nothing unsynced half there. With a Rand,
// the MemFS keeps some unsynced writes and tears one.
func TestWALCrashConformance(t *testing.T) {
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 11))
		var memOpts MemFSOptions
		if seed%2 == 1 {
			memOpts.Rand = rand.New(rand.NewPCG(seed, 12))
		}
		m := NewMemFS(memOpts)
		opts := WALOptions{SegmentBytesMax: int64(200 + rng.IntN(400)), Preallocate: seed%4 >= 2}
		w, err := OpenWAL(m, "/data/wal", opts)
		if err != nil {
			t.Fatal(err)
		}
		ms := raft.NewMemoryStorage()
		var ops []confOp
		synced := 0 // ops[:synced] are durable
		var term uint64 = 1
		crashes := 0
		for step := range 200 {
			op := randomOp(rng, ms, &term)
			errMem := applyMem(ms, op)
			errWAL := applyWAL(w, op)
			if !errors.Is(errWAL, errMem) {
				t.Fatalf("seed %d step %d %v: wal error %v, memory storage error %v", seed, step, op, errWAL, errMem)
			}
			if errMem == nil {
				ops = append(ops, op)
				if op.kind != "save" || op.mustSync {
					synced = len(ops)
				}
			}
			if rng.IntN(15) != 0 {
				continue
			}
			crashes++
			m.Crash()
			if w, err = OpenWAL(m, "/data/wal", opts); err != nil {
				t.Fatalf("seed %d step %d: reopen after crash: %v", seed, step, err)
			}
			got := describe(w)
			matched := -1
			for k := len(ops); k >= synced; k-- {
				candidate := replayMem(t, ops[:k])
				if describe(candidate) == got {
					matched, ms = k, candidate
					break
				}
			}
			if matched < 0 {
				t.Fatalf("seed %d step %d: after crash the wal matches no prefix of the %d writes with at least %d:\n%s\nwant at least:\n%s",
					seed, step, len(ops), synced, got, describe(replayMem(t, ops[:synced])))
			}
			ops = ops[:matched]
			synced = matched
			snap, _ := ms.Snapshot()
			if err := w.SetSnapshotData(snap.GetMetadata().GetIndex(), snap.GetData()); err != nil {
				t.Fatal(err)
			}
		}
		if crashes == 0 {
			t.Fatalf("seed %d: no crash", seed)
		}
		w.Close()
	}
}
