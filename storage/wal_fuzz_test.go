package storage

import (
	"testing"
)

// FuzzWALRead feeds arbitrary bytes as the only segment of a WAL: opening it
// must return an error or a usable WAL, never panic.
func FuzzWALRead(f *testing.F) {
	m := NewMemFS(MemFSOptions{})
	w, err := OpenWAL(m, "/wal", WALOptions{})
	if err != nil {
		f.Fatal(err)
	}
	if err := w.Save(hardState(2, 1, 3), ents(1, 4, 2), true); err != nil {
		f.Fatal(err)
	}
	if err := w.Compact(2); err != nil {
		f.Fatal(err)
	}
	segName := w.Segments()[0]
	w.Close()
	valid, err := ReadFile(m, "/wal/"+segName)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-5])
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Add(appendRecord(nil, recBatch, []byte{0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := NewMemFS(MemFSOptions{})
		if err := m.MkdirAll("/wal"); err != nil {
			t.Fatal(err)
		}
		mustWriteFile(t, m, "/wal/"+segName, data, true).Close()
		w, err := OpenWAL(m, "/wal", WALOptions{})
		if err != nil {
			return
		}
		defer w.Close()
		first, _ := w.FirstIndex()
		last, _ := w.LastIndex()
		if last+1 < first {
			t.Fatalf("first %d last %d", first, last)
		}
		if _, err := w.Entries(first, last+1, 1<<20); err != nil && last >= first {
			t.Fatalf("entries: %v", err)
		}
		if err := w.Save(nil, ents(last+1, last+2, 9), true); err != nil {
			t.Fatalf("save after open: %v", err)
		}
	})
}
