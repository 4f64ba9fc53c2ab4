package storage

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"slices"
	"testing"
)

func mustWriteFile(t *testing.T, fsys FS, name string, data []byte, sync bool) File {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func readOrNil(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	b, err := ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMemFSCrashDropsUnsynced(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	if err := m.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	f := mustWriteFile(t, m, "/d/a", []byte("synced"), true)
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("-unsynced")); err != nil {
		t.Fatal(err)
	}
	// A synced file whose name was never made durable disappears.
	mustWriteFile(t, m, "/d/b", []byte("lost"), true)
	if got := readOrNil(t, m, "/d/a"); string(got) != "synced-unsynced" {
		t.Fatalf("before crash: got %q", got)
	}
	m.Crash()
	if got, want := string(readOrNil(t, m, "/d/a")), "synced"; got != want {
		t.Errorf("after crash /d/a: got %q, want %q", got, want)
	}
	if got := readOrNil(t, m, "/d/b"); got != nil {
		t.Errorf("after crash /d/b: got %q, want it gone", got)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("write through a handle from before the crash: got nil error")
	}
}

func TestMemFSUnsyncedDirIsLost(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	if err := m.MkdirAll("/d/e"); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/d"); err != nil { // e is durable in d, d is not in /
		t.Fatal(err)
	}
	mustWriteFile(t, m, "/d/e/f", []byte("x"), true)
	if err := m.SyncDir("/d/e"); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	if names, err := m.List("/"); err != nil || len(names) != 0 {
		t.Fatalf("after crash List(/): got %v, %v, want nothing", names, err)
	}
}

func TestMemFSRenameDurability(t *testing.T) {
	for _, syncDir := range []bool{false, true} {
		m := NewMemFS(MemFSOptions{})
		mustWriteFile(t, m, "/old", []byte("v1"), true)
		if err := m.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		mustWriteFile(t, m, "/tmp", []byte("v2"), true)
		if err := m.Rename("/tmp", "/old"); err != nil {
			t.Fatal(err)
		}
		if syncDir {
			if err := m.SyncDir("/"); err != nil {
				t.Fatal(err)
			}
		}
		m.Crash()
		want := map[bool]string{false: "v1", true: "v2"}[syncDir]
		if got := string(readOrNil(t, m, "/old")); got != want {
			t.Errorf("syncDir=%v: got %q, want %q", syncDir, got, want)
		}
		names, err := m.List("/")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names, []string{"old"}) {
			t.Errorf("syncDir=%v: List(/) = %v, want [old]", syncDir, names)
		}
	}
}

func TestMemFSRemoveDurability(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	mustWriteFile(t, m, "/a", []byte("a"), true)
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("/a"); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	if got := string(readOrNil(t, m, "/a")); got != "a" {
		t.Errorf("remove without SyncDir: got %q, want the file back", got)
	}
	if err := m.Remove("/a"); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	if got := readOrNil(t, m, "/a"); got != nil {
		t.Errorf("remove with SyncDir: got %q, want it gone", got)
	}
}

// TestMemFSTornWrites checks that with a Rand, a crash keeps a prefix of the
// unsynced writes in order, the last kept one possibly torn, and that the
// same seed gives the same result.
func TestMemFSTornWrites(t *testing.T) {
	full := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	results := map[string]bool{}
	for seed := range uint64(40) {
		run := func() []byte {
			m := NewMemFS(MemFSOptions{Rand: rand.New(rand.NewPCG(seed, 1))})
			f := mustWriteFile(t, m, "/f", full[:6], true)
			if err := m.SyncDir("/"); err != nil {
				t.Fatal(err)
			}
			for off := 6; off < len(full); off += 10 {
				if _, err := f.Write(full[off:min(off+10, len(full))]); err != nil {
					t.Fatal(err)
				}
			}
			m.Crash()
			return readOrNil(t, m, "/f")
		}
		got := run()
		if !bytes.HasPrefix(full, got) || len(got) < 6 {
			t.Fatalf("seed %d: got %q, want a prefix of %q at least 6 bytes long", seed, got, full)
		}
		if again := run(); !bytes.Equal(got, again) {
			t.Fatalf("seed %d: not deterministic: %q then %q", seed, got, again)
		}
		results[string(got)] = true
	}
	if len(results) < 5 {
		t.Errorf("40 seeds gave only %d distinct crash results", len(results))
	}
}

func TestMemFSFaults(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	if err := m.MkdirAll("/wal"); err != nil {
		t.Fatal(err)
	}
	f := mustWriteFile(t, m, "/wal/a", []byte("abc"), false)
	boom := errors.New("boom")
	m.InjectFault(OpSync, "/wal", boom)
	if err := f.Sync(); !errors.Is(err, boom) {
		t.Errorf("sync: got %v, want boom", err)
	}
	if err := m.SyncDir("/wal"); !errors.Is(err, boom) {
		t.Errorf("syncdir: got %v, want boom", err)
	}
	if _, err := f.Write([]byte("d")); err != nil {
		t.Errorf("write with only a sync fault: %v", err)
	}
	m.InjectFault(OpRead, "/wal/a", nil)
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrInjected) {
		t.Errorf("read: got %v, want ErrInjected", err)
	}
	m.InjectFault(OpWrite, "/w", nil)
	if _, err := m.Create("/wal/b"); !errors.Is(err, ErrInjected) {
		t.Errorf("create: got %v, want ErrInjected", err)
	}
	m.ClearFaults()
	if err := f.Sync(); err != nil {
		t.Errorf("sync after ClearFaults: %v", err)
	}
}

func TestMemFSFlipBitDurable(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	mustWriteFile(t, m, "/a", []byte("abc"), true)
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	if err := m.FlipBit("/a", 1, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := string(readOrNil(t, m, "/a")), "acc"; got != want {
		t.Errorf("before crash: got %q, want %q", got, want)
	}
	m.Crash()
	if got, want := string(readOrNil(t, m, "/a")), "acc"; got != want {
		t.Errorf("after crash: got %q, want %q", got, want)
	}
	if err := m.FlipBit("/a", 3, 0); err == nil {
		t.Error("flip past the end: got nil error")
	}
}

func TestFSLock(t *testing.T) {
	for name, fsys := range map[string]FS{"mem": NewMemFS(MemFSOptions{}), "os": OSFS{}} {
		dir := "/"
		if name == "os" {
			dir = t.TempDir()
		}
		lockName := dir + "/LOCK"
		l, err := fsys.Lock(lockName)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if l2, err := fsys.Lock(lockName); err == nil {
			l2.Close()
			t.Errorf("%s: second lock: got nil error", name)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = fsys.Lock(lockName)
		if err != nil {
			t.Fatalf("%s: lock after unlock: %v", name, err)
		}
		l.Close()
	}
}

func TestFSFileOps(t *testing.T) {
	for name, fsys := range map[string]FS{"mem": NewMemFS(MemFSOptions{}), "os": OSFS{}} {
		t.Run(name, func(t *testing.T) {
			dir := "/x"
			if name == "os" {
				dir = t.TempDir()
			}
			if err := fsys.MkdirAll(dir + "/sub"); err != nil {
				t.Fatal(err)
			}
			f := mustWriteFile(t, fsys, dir+"/b", []byte("hello"), true)
			if _, err := f.WriteAt([]byte("J"), 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(8); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("!")); err != nil {
				t.Fatal(err)
			}
			if size, err := f.Size(); err != nil || size != 9 {
				t.Errorf("size: got %d, %v, want 9", size, err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if got, want := readOrNil(t, fsys, dir+"/b"), []byte("Jello\x00\x00\x00!"); !bytes.Equal(got, want) {
				t.Errorf("content: got %q, want %q", got, want)
			}
			if err := WriteFileSync(fsys, dir+"/a", []byte("v")); err != nil {
				t.Fatal(err)
			}
			names, err := fsys.List(dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"a", "b", "sub"}; !slices.Equal(names, want) {
				t.Errorf("List: got %v, want %v", names, want)
			}
			if _, err := fsys.Open(dir + "/missing"); !errors.Is(err, ErrNotExist) {
				t.Errorf("open missing: got %v, want ErrNotExist", err)
			}
			if err := fsys.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := fsys.List(dir); !errors.Is(err, ErrNotExist) {
				t.Errorf("List after RemoveAll: got %v, want ErrNotExist", err)
			}
		})
	}
}
