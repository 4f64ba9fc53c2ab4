package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// msgStoreEnv is a message store under test: memory, or file on MemFS or
// OSFS. reopen syncs, closes and opens a file store again, and returns a
// memory store as it is.
type msgStoreEnv struct {
	name string
	file bool
	fsys FS
	mem  *MemFS // the FS of a file store on MemFS
	dir  string
	opts FileMsgStoreOptions
}

func (e *msgStoreEnv) open(t testing.TB) MsgStore {
	t.Helper()
	if !e.file {
		return NewMemMsgStore()
	}
	s, err := OpenFileMsgStore(e.fsys, e.dir, e.opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (e *msgStoreEnv) reopen(t testing.TB, s MsgStore) MsgStore {
	t.Helper()
	if !e.file {
		return s
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return e.open(t)
}

// eachMsgStore runs fn against the memory store and the file store on
// MemFS and on OSFS.
func eachMsgStore(t *testing.T, opts FileMsgStoreOptions, fn func(t *testing.T, e *msgStoreEnv)) {
	t.Run("mem", func(t *testing.T) {
		fn(t, &msgStoreEnv{name: "mem"})
	})
	t.Run("file-memfs", func(t *testing.T) {
		m := NewMemFS(MemFSOptions{})
		fn(t, &msgStoreEnv{name: "file-memfs", file: true, fsys: m, mem: m, dir: "/msgs", opts: opts})
	})
	t.Run("file-osfs", func(t *testing.T) {
		fn(t, &msgStoreEnv{name: "file-osfs", file: true, fsys: OSFS{}, dir: filepath.Join(t.TempDir(), "msgs"), opts: opts})
	})
}

func msg(channel string, seq uint64) []byte {
	return []byte(fmt.Sprintf("%s#%d", channel, seq))
}

func mustPut(t testing.TB, s MsgStore, channel string, seq uint64, ts int64, data []byte) {
	t.Helper()
	if err := s.Put(channel, seq, ts, data); err != nil {
		t.Fatalf("put %s/%d: %v", channel, seq, err)
	}
}

// putRange puts msg(channel, seq) for seq in first..last with timestamp
// 10*seq.
func putRange(t testing.TB, s MsgStore, channel string, first, last uint64) {
	t.Helper()
	for seq := first; seq <= last; seq++ {
		mustPut(t, s, channel, seq, int64(10*seq), msg(channel, seq))
	}
}

// dumpMsgStore renders everything a store shows, as canonical text.
func dumpMsgStore(t testing.TB, s MsgStore) string {
	t.Helper()
	var b strings.Builder
	for _, ch := range s.Channels() {
		first, last := s.FirstLast(ch)
		fmt.Fprintf(&b, "%s [%d,%d]\n", ch, first, last)
		for seq := first; seq <= last && first > 0; seq++ {
			data, err := s.Get(ch, seq)
			fmt.Fprintf(&b, "  %d %q %v\n", seq, data, err)
		}
	}
	return b.String()
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func wantFirstLast(t *testing.T, s MsgStore, channel string, first, last uint64) {
	t.Helper()
	if f, l := s.FirstLast(channel); f != first || l != last {
		t.Errorf("first last of %s: got %d,%d, want %d,%d", channel, f, l, first, last)
	}
}

func TestMsgStorePutGet(t *testing.T) {
	eachMsgStore(t, FileMsgStoreOptions{}, func(t *testing.T, e *msgStoreEnv) {
		s := e.open(t)
		putRange(t, s, "foo", 1, 10)
		putRange(t, s, "bar.baz", 5, 7)
		putRange(t, s, "Upper.%.x", 1, 1)
		mustPut(t, s, "empty", 3, 0, nil)
		for range 2 {
			if got, want := s.Channels(), []string{"Upper.%.x", "bar.baz", "empty", "foo"}; !slices.Equal(got, want) {
				t.Errorf("channels: got %q, want %q", got, want)
			}
			wantFirstLast(t, s, "foo", 1, 10)
			wantFirstLast(t, s, "bar.baz", 5, 7)
			wantFirstLast(t, s, "unknown", 0, 0)
			for seq := uint64(1); seq <= 10; seq++ {
				got, err := s.Get("foo", seq)
				if err != nil || !bytes.Equal(got, msg("foo", seq)) {
					t.Errorf("get foo/%d: got %q, %v", seq, got, err)
				}
			}
			if got, err := s.Get("empty", 3); err != nil || len(got) != 0 {
				t.Errorf("get empty/3: got %q, %v", got, err)
			}
			for _, tt := range []struct {
				channel string
				seq     uint64
			}{{"foo", 0}, {"foo", 11}, {"bar.baz", 4}, {"bar.baz", 8}, {"unknown", 1}} {
				_, err := s.Get(tt.channel, tt.seq)
				wantErr(t, fmt.Sprintf("get %s/%d", tt.channel, tt.seq), err, ErrNotFound)
			}
			s = e.reopen(t, s)
		}
		// The store keeps no reference to what Put was given, and
		// appending to what Get returns (a delivery's redelivery fields)
		// never changes the record: its capacity ends at its length.
		data := make([]byte, 0, 64)
		data = append(data, "original"...)
		mustPut(t, s, "foo", 11, 110, data)
		data[0] = 'X'
		got, _ := s.Get("foo", 11)
		_ = append(got, "-1"...)
		again, _ := s.Get("foo", 11)
		if _ = append(again, "-2"...); string(got) != "original" || string(again) != "original" || cap(got) != len(got) {
			t.Errorf("get foo/11 after appending: got %q and %q (cap %d)", got, again, cap(got))
		}
	})
}

func TestMsgStorePutRules(t *testing.T) {
	eachMsgStore(t, FileMsgStoreOptions{}, func(t *testing.T, e *msgStoreEnv) {
		s := e.open(t)
		putRange(t, s, "foo", 3, 5)
		for range 2 {
			// Re-putting identical bytes is a no-op, whatever the timestamp.
			for seq := uint64(3); seq <= 5; seq++ {
				if err := s.Put("foo", seq, 999, msg("foo", seq)); err != nil {
					t.Errorf("re-put foo/%d: %v", seq, err)
				}
			}
			wantErr(t, "put different bytes", s.Put("foo", 4, 40, []byte("other")), ErrConflict)
			wantErr(t, "put after a gap", s.Put("foo", 7, 70, msg("foo", 7)), ErrGap)
			wantErr(t, "put on a new channel, then a gap", s.Put("new", 2, 0, nil), nil)
			wantErr(t, "put on a new channel, then a gap", s.Put("new", 4, 0, nil), ErrGap)
			wantFirstLast(t, s, "foo", 3, 5)
			s = e.reopen(t, s)
			if err := s.DeleteChannel("new"); err != nil {
				t.Fatal(err)
			}
		}
		for _, tt := range []struct {
			channel string
			seq     uint64
		}{{"foo", 0}, {"", 1}, {"a.*", 1}, {"a.>", 1}, {strings.Repeat("x", 300), 1}, {strings.Repeat("X", 90), 1}} {
			if err := s.Put(tt.channel, tt.seq, 0, nil); err == nil || errors.Is(err, ErrGap) {
				t.Errorf("put %q/%d: got %v, want a validation error", tt.channel, tt.seq, err)
			}
		}
		long := strings.Repeat("x", 253)
		mustPut(t, s, long, 1, 0, []byte("long"))
		s = e.reopen(t, s)
		if got, err := s.Get(long, 1); err != nil || string(got) != "long" {
			t.Errorf("get of the longest channel name: got %q, %v", got, err)
		}
		if err := s.Put("big", 1, 0, make([]byte, msgDataBytesMax+1)); err == nil {
			t.Error("put of an oversized record: got nil error")
		}
	})
}

func TestMsgStoreTrim(t *testing.T) {
	eachMsgStore(t, FileMsgStoreOptions{SegmentBytesMax: 100}, func(t *testing.T, e *msgStoreEnv) {
		s := e.open(t)
		putRange(t, s, "foo", 1, 20)
		steps := []struct {
			trim        uint64
			first, last uint64
		}{
			{0, 1, 20},
			{1, 1, 20},
			{8, 8, 20},
			{5, 8, 20}, // below first: nothing
			{20, 20, 20},
			{21, 21, 20}, // everything trimmed
			{30, 30, 29}, // beyond last: the channel continues at 30
		}
		for _, st := range steps {
			if err := s.TrimBefore("foo", st.trim); err != nil {
				t.Fatalf("trim before %d: %v", st.trim, err)
			}
			for range 2 {
				wantFirstLast(t, s, "foo", st.first, st.last)
				_, err := s.Get("foo", st.first-1)
				wantErr(t, fmt.Sprintf("after trim %d: get %d", st.trim, st.first-1), err, ErrNotFound)
				if st.first <= st.last {
					if got, err := s.Get("foo", st.first); err != nil || !bytes.Equal(got, msg("foo", st.first)) {
						t.Errorf("after trim %d: get %d: got %q, %v", st.trim, st.first, got, err)
					}
				}
				// A trimmed seq is a no-op, even with other bytes.
				if err := s.Put("foo", 1, 0, []byte("gone")); err != nil && st.first > 1 {
					t.Errorf("after trim %d: put of trimmed seq 1: %v", st.trim, err)
				}
				s = e.reopen(t, s)
			}
		}
		if e.file {
			names, err := e.fsys.List(filepath.Join(e.dir, encodeChannel("foo")))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, []string{"meta"}) {
				t.Errorf("files left after trimming everything: %q", names)
			}
		}
		wantErr(t, "put 31 after trim to 30", s.Put("foo", 31, 0, nil), ErrGap)
		putRange(t, s, "foo", 30, 40)
		s = e.reopen(t, s)
		wantFirstLast(t, s, "foo", 30, 40)
		if err := s.TrimBefore("unknown", 5); err != nil {
			t.Errorf("trim of an unknown channel: %v", err)
		}
		if got := s.Channels(); !slices.Equal(got, []string{"foo"}) {
			t.Errorf("channels: got %q", got)
		}
	})
}

func TestMsgStoreDeleteChannel(t *testing.T) {
	eachMsgStore(t, FileMsgStoreOptions{SegmentBytesMax: 100}, func(t *testing.T, e *msgStoreEnv) {
		s := e.open(t)
		putRange(t, s, "foo", 1, 20)
		putRange(t, s, "bar", 1, 2)
		if err := s.TrimBefore("foo", 5); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteChannel("foo"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteChannel("unknown"); err != nil {
			t.Errorf("delete of an unknown channel: %v", err)
		}
		for range 2 {
			if got := s.Channels(); !slices.Equal(got, []string{"bar"}) {
				t.Errorf("channels: got %q", got)
			}
			wantFirstLast(t, s, "foo", 0, 0)
			_, err := s.Get("foo", 5)
			wantErr(t, "get of a deleted channel", err, ErrNotFound)
			s = e.reopen(t, s)
		}
		// A deleted channel starts over anywhere.
		putRange(t, s, "foo", 3, 4)
		s = e.reopen(t, s)
		wantFirstLast(t, s, "foo", 3, 4)
		if e.file {
			names, err := e.fsys.List(e.dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"LOCK", encodeChannel("bar"), encodeChannel("foo")}; !slices.Equal(names, want) {
				t.Errorf("store directory: got %q, want %q", names, want)
			}
		}
	})
}

func TestMsgStoreSeqAtOrAfter(t *testing.T) {
	eachMsgStore(t, FileMsgStoreOptions{SegmentBytesMax: 120}, func(t *testing.T, e *msgStoreEnv) {
		s := e.open(t)
		// Timestamps by seq: a clock that steps back (seq 6) and repeats.
		timestamps := []int64{100, 200, 200, 300, 500, 400, 500, 800, 900, 900}
		for i, ts := range timestamps {
			mustPut(t, s, "foo", uint64(i+1), ts, msg("foo", uint64(i+1)))
		}
		tests := []struct {
			ts   int64
			seq  uint64
			ok   bool
			trim uint64
		}{
			{ts: 0, seq: 1, ok: true},
			{ts: 100, seq: 1, ok: true},
			{ts: 101, seq: 2, ok: true},
			{ts: 200, seq: 2, ok: true},
			{ts: 450, seq: 5, ok: true},
			{ts: 500, seq: 5, ok: true}, // seq 6 is stored at 500
			{ts: 501, seq: 8, ok: true},
			{ts: 900, seq: 9, ok: true},
			{ts: 901, seq: 0, ok: false},
			{ts: 0, seq: 4, ok: true, trim: 4},
			{ts: 300, seq: 4, ok: true, trim: 4},
			{ts: 850, seq: 9, ok: true, trim: 4},
			{ts: 0, seq: 0, ok: false, trim: 11},
		}
		for _, tt := range tests {
			if tt.trim > 0 {
				if err := s.TrimBefore("foo", tt.trim); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				if seq, ok := s.SeqAtOrAfter("foo", tt.ts); seq != tt.seq || ok != tt.ok {
					t.Errorf("seq at or after %d (trim %d): got %d,%v, want %d,%v", tt.ts, tt.trim, seq, ok, tt.seq, tt.ok)
				}
				s = e.reopen(t, s)
			}
		}
		if seq, ok := s.SeqAtOrAfter("unknown", 0); seq != 0 || ok {
			t.Errorf("seq at or after in an unknown channel: got %d,%v", seq, ok)
		}
		// Timestamps stay non-decreasing over a trim of everything and a
		// reopen.
		mustPut(t, s, "foo", 11, 50, nil)
		if seq, ok := s.SeqAtOrAfter("foo", 900); seq != 11 || !ok {
			t.Errorf("seq at or after 900 with a clock stepped back: got %d,%v, want 11,true", seq, ok)
		}
	})
}

// TestMsgStoreRandomOps applies the same random operations to a memory
// store and to file stores with tiny segments, reopening the file stores
// now and then, and compares every result.
func TestMsgStoreRandomOps(t *testing.T) {
	for _, tfs := range []struct {
		name string
		fsys func(t *testing.T) (FS, string)
	}{
		{"memfs", func(t *testing.T) (FS, string) { return NewMemFS(MemFSOptions{}), "/msgs" }},
		{"osfs", func(t *testing.T) (FS, string) { return OSFS{}, t.TempDir() }},
	} {
		t.Run(tfs.name, func(t *testing.T) {
			for seed := range uint64(4) {
				rng := rand.New(rand.NewPCG(seed, 7))
				fsys, dir := tfs.fsys(t)
				e := &msgStoreEnv{file: true, fsys: fsys, dir: dir, opts: FileMsgStoreOptions{SegmentBytesMax: int64(50 + rng.IntN(300)), OpenSegmentsMax: 1 + rng.IntN(4)}}
				model := NewMemMsgStore()
				s := e.open(t)
				channels := []string{"a", "b.c", "D"}
				for step := range 1500 {
					ch := channels[rng.IntN(len(channels))]
					first, last := model.FirstLast(ch)
					what := ""
					var gotErr, wantErr error
					switch r := rng.IntN(100); {
					case r < 55:
						seq := last + 1
						switch rng.IntN(10) {
						case 0:
							seq = last + 2
						case 1, 2:
							seq = max(1, first+uint64(rng.IntN(int(last-first+2))))
						}
						data := make([]byte, rng.IntN(60))
						for i := range data {
							data[i] = byte(rng.IntN(4))
						}
						ts := int64(step) - int64(rng.IntN(20))
						what = fmt.Sprintf("put %s/%d %x ts %d", ch, seq, data, ts)
						wantErr = model.Put(ch, seq, ts, data)
						gotErr = s.Put(ch, seq, ts, data)
					case r < 75:
						seq := first + uint64(rng.IntN(int(last-first+3)))
						what = fmt.Sprintf("get %s/%d", ch, seq)
						want, err1 := model.Get(ch, seq)
						got, err2 := s.Get(ch, seq)
						wantErr, gotErr = err1, err2
						if !bytes.Equal(got, want) {
							t.Fatalf("seed %d step %d: %s: got %x, want %x", seed, step, what, got, want)
						}
						wts, wsize, err3 := model.Stat(ch, seq)
						gts, gsize, err4 := s.Stat(ch, seq)
						if gts != wts || gsize != wsize || errClass(err3) != errClass(err4) || err1 == nil && gsize != len(got) {
							t.Fatalf("seed %d step %d: stat %s/%d: got %d,%d,%v, want %d,%d,%v", seed, step, ch, seq, gts, gsize, err4, wts, wsize, err3)
						}
					case r < 85:
						ts := int64(rng.IntN(step + 10))
						want, wantOK := model.SeqAtOrAfter(ch, ts)
						got, gotOK := s.SeqAtOrAfter(ch, ts)
						if got != want || gotOK != wantOK {
							t.Fatalf("seed %d step %d: seq at or after %s %d: got %d,%v, want %d,%v", seed, step, ch, ts, got, gotOK, want, wantOK)
						}
					case r < 93:
						seq := first + uint64(rng.IntN(int(last-first)/2+3))
						what = fmt.Sprintf("trim %s before %d", ch, seq)
						wantErr = model.TrimBefore(ch, seq)
						gotErr = s.TrimBefore(ch, seq)
					case r < 95:
						what = "delete " + ch
						wantErr = model.DeleteChannel(ch)
						gotErr = s.DeleteChannel(ch)
					default:
						what = "reopen"
						s = e.reopen(t, s)
					}
					if errClass(gotErr) != errClass(wantErr) {
						t.Fatalf("seed %d step %d: %s: got %v, want %v", seed, step, what, gotErr, wantErr)
					}
					f, l := s.FirstLast(ch)
					if mf, ml := model.FirstLast(ch); f != mf || l != ml {
						t.Fatalf("seed %d step %d: after %s: first last %d,%d, want %d,%d", seed, step, what, f, l, mf, ml)
					}
				}
				if got, want := dumpMsgStore(t, e.reopen(t, s)), dumpMsgStore(t, model); got != want {
					t.Fatalf("seed %d: final state:\n%s\nwant:\n%s", seed, got, want)
				}
			}
		})
	}
}

// errClass names the sentinel an error wraps, for comparing stores.
func errClass(err error) string {
	for _, s := range []error{ErrNotFound, ErrConflict, ErrGap, ErrCorrupt} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "other"
	}
	return "nil"
}

// TestMsgStoreFileSegments checks that a channel spreads over many segment
// files with an index each, that a Get of an old seq reads only what it
// needs, and that the files stay few open.
func TestMsgStoreFileSegments(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	e := &msgStoreEnv{file: true, fsys: m, mem: m, dir: "/msgs", opts: FileMsgStoreOptions{SegmentBytesMax: 200, OpenSegmentsMax: 2}}
	s := e.open(t)
	putRange(t, s, "foo", 1, 100)
	s = e.reopen(t, s)
	names, err := m.List("/msgs/" + encodeChannel("foo"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 || len(names)%2 != 0 {
		t.Fatalf("got %d files, want many segment and index pairs: %q", len(names), names)
	}
	fstore := s.(*fileMsgStore)
	for seq := uint64(1); seq <= 100; seq++ {
		if got, err := s.Get("foo", seq); err != nil || !bytes.Equal(got, msg("foo", seq)) {
			t.Fatalf("get %d: got %q, %v", seq, got, err)
		}
		if n := fstore.openSegs.Len(); n > 2 {
			t.Fatalf("%d sealed segments open, want at most 2", n)
		}
	}
	// Reads go through the index: with the segment files unreadable but the
	// index fine, a Get fails with the read error, not a scan.
	m.InjectFault(OpRead, "/msgs/"+encodeChannel("foo")+"/"+segName(1), nil)
	if _, err := s.Get("foo", 1); !errors.Is(err, ErrInjected) {
		t.Errorf("get with an unreadable segment: got %v, want ErrInjected", err)
	}
	m.ClearFaults()
}

// TestMsgStoreCrash writes, syncs, writes more and crashes MemFS with torn
// writes, over and over: after each crash everything synced is there, every
// message after it is either whole or absent, and puts continue from the
// recovered last.
func TestMsgStoreCrash(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			m := NewMemFS(MemFSOptions{Rand: rand.New(rand.NewPCG(seed, 12))})
			opts := FileMsgStoreOptions{SegmentBytesMax: int64(100 + rng.IntN(400))}
			open := func() MsgStore {
				s, err := OpenFileMsgStore(m, "/msgs", opts)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				return s
			}
			channels := []string{"a", "b.c"}
			// put holds every message ever put; synced the last seq synced
			// and first the trim point per channel.
			put := map[string]map[uint64][]byte{}
			synced := map[string]uint64{}
			first := map[string]uint64{}
			data := func(ch string, seq uint64, round int) []byte {
				return bytes.Repeat([]byte(fmt.Sprintf("%s/%d/r%d;", ch, seq, round)), 1+rng.IntN(4))
			}
			s := open()
			for round := range 6 {
				for _, ch := range channels {
					if put[ch] == nil {
						put[ch] = map[uint64][]byte{}
					}
				}
				// Put, sync, put more; some trims in between.
				for phase := range 2 {
					for range 10 + rng.IntN(30) {
						ch := channels[rng.IntN(len(channels))]
						_, last := s.FirstLast(ch)
						seq := last + 1
						if last == 0 {
							seq = 1
						}
						d := data(ch, seq, round)
						mustPut(t, s, ch, seq, int64(seq), d)
						put[ch][seq] = d
						if rng.IntN(15) == 0 {
							f, l := s.FirstLast(ch)
							trim := f + uint64(rng.IntN(int(l-f+2)))
							if err := s.TrimBefore(ch, trim); err != nil {
								t.Fatal(err)
							}
							first[ch] = max(first[ch], trim)
						}
					}
					if phase == 0 {
						if err := s.Sync(); err != nil {
							t.Fatal(err)
						}
						for _, ch := range channels {
							_, synced[ch] = s.FirstLast(ch)
						}
					}
				}
				m.Crash()
				s = open()
				for _, ch := range channels {
					f, l := s.FirstLast(ch)
					if want := max(first[ch], 1); f != want && !(f == 0 && synced[ch] == 0 && first[ch] == 0) {
						t.Fatalf("round %d: %s: first %d, want %d", round, ch, f, want)
					}
					if l < synced[ch] {
						t.Fatalf("round %d: %s: last %d, but %d was synced", round, ch, l, synced[ch])
					}
					for seq := f; seq <= l && f > 0; seq++ {
						got, err := s.Get(ch, seq)
						if err != nil {
							t.Fatalf("round %d: get %s/%d: %v", round, ch, seq, err)
						}
						if want, ok := put[ch][seq]; ok && !bytes.Equal(got, want) {
							t.Fatalf("round %d: get %s/%d: got %q, want %q", round, ch, seq, got, want)
						} else if !ok && seq >= first[ch] {
							t.Fatalf("round %d: get %s/%d: got %q, never put", round, ch, seq, got)
						}
					}
					// Forget what the crash lost: those seqs are put again
					// with other bytes.
					for seq := range put[ch] {
						if seq > l {
							delete(put[ch], seq)
						}
					}
					synced[ch] = l
				}
			}
			s.Close()
		})
	}
}

// msgCorruptionSetup writes a channel over several segments, syncs and
// closes the store, and returns the channel directory and segment names.
func msgCorruptionSetup(t *testing.T) (*MemFS, string, []uint64) {
	t.Helper()
	m := NewMemFS(MemFSOptions{})
	s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{SegmentBytesMax: 300})
	if err != nil {
		t.Fatal(err)
	}
	putRange(t, s, "foo", 1, 40)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	var firsts []uint64
	for _, g := range s.(*fileMsgStore).channels["foo"].segs {
		firsts = append(firsts, g.firstSeq)
	}
	if len(firsts) < 3 {
		t.Fatalf("got %d segments, want at least 3", len(firsts))
	}
	s.Close()
	return m, "/msgs/" + encodeChannel("foo"), firsts
}

// recordOffsetOf returns the offset of the record of seq in the segment
// starting at first, from its index.
func recordOffsetOf(t *testing.T, m *MemFS, dir string, first, seq uint64) int64 {
	t.Helper()
	idx, err := ReadFile(m, filepath.Join(dir, indexName(first)))
	if err != nil {
		t.Fatal(err)
	}
	return int64(binary.LittleEndian.Uint64(idx[(seq-first)*indexEntryBytes:]))
}

func TestMsgStoreCorruption(t *testing.T) {
	// A damaged record in the middle of a segment is found by the Get of
	// its seq: open reads only the tail of the last segment.
	for _, which := range []string{"sealed", "last"} {
		t.Run("middle record of the "+which+" segment", func(t *testing.T) {
			m, dir, firsts := msgCorruptionSetup(t)
			segFirst := firsts[1]
			if which == "last" {
				segFirst = firsts[len(firsts)-1]
			}
			seq := segFirst + 1
			off := recordOffsetOf(t, m, dir, segFirst, seq)
			if err := m.FlipBit(filepath.Join(dir, segName(segFirst)), off+recordHeaderBytes+msgHeaderBytes+1, 3); err != nil {
				t.Fatal(err)
			}
			s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{SegmentBytesMax: 300})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			_, err = s.Get("foo", seq)
			wantErr(t, "get of the damaged record", err, ErrCorrupt)
			if err != nil && !strings.Contains(err.Error(), segName(segFirst)) {
				t.Errorf("error %q does not name the segment", err)
			}
			wantErr(t, "re-put of the damaged record", s.Put("foo", seq, 0, msg("foo", seq)), ErrCorrupt)
			if got, err := s.Get("foo", seq+1); err != nil || !bytes.Equal(got, msg("foo", seq+1)) {
				t.Errorf("get of the next record: got %q, %v", got, err)
			}
		})
	}
	t.Run("index entry", func(t *testing.T) {
		m, dir, firsts := msgCorruptionSetup(t)
		if err := m.FlipBit(filepath.Join(dir, indexName(firsts[1])), indexEntryBytes+9, 0); err != nil {
			t.Fatal(err)
		}
		s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		_, err = s.Get("foo", firsts[1]+1)
		wantErr(t, "get through a damaged index entry", err, ErrCorrupt)
	})
	// Damage that open reads is reported by open.
	tests := []struct {
		name   string
		damage func(t *testing.T, m *MemFS, dir string, firsts []uint64)
	}{
		{"middle record of the tail the index does not cover", func(t *testing.T, m *MemFS, dir string, firsts []uint64) {
			last := firsts[len(firsts)-1]
			off := recordOffsetOf(t, m, dir, last, last+1)
			f, err := m.Open(filepath.Join(dir, indexName(last)))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := m.FlipBit(filepath.Join(dir, segName(last)), off+recordHeaderBytes+2, 1); err != nil {
				t.Fatal(err)
			}
		}},
		{"first index entry of a sealed segment", func(t *testing.T, m *MemFS, dir string, firsts []uint64) {
			if err := m.FlipBit(filepath.Join(dir, indexName(firsts[1])), 3, 1); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing segment", func(t *testing.T, m *MemFS, dir string, firsts []uint64) {
			for _, name := range []string{segName(firsts[1]), indexName(firsts[1])} {
				if err := m.Remove(filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"missing index of a sealed segment", func(t *testing.T, m *MemFS, dir string, firsts []uint64) {
			if err := m.Remove(filepath.Join(dir, indexName(firsts[0]))); err != nil {
				t.Fatal(err)
			}
		}},
		{"meta file", func(t *testing.T, m *MemFS, dir string, firsts []uint64) {
			mustWriteFile(t, m, filepath.Join(dir, channelMeta), appendRecord(nil, recChannelMeta, make([]byte, 16)), true).Close()
			if err := m.FlipBit(filepath.Join(dir, channelMeta), 20, 1); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, dir, firsts := msgCorruptionSetup(t)
			tt.damage(t, m, dir, firsts)
			s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{})
			if err == nil {
				s.Close()
			}
			wantErr(t, "open", err, ErrCorrupt)
		})
	}
}

// TestMsgStoreTornTail cuts the last segment and its index at every byte of
// the last records: open keeps every whole record and rebuilds the index.
func TestMsgStoreTornTail(t *testing.T) {
	m, dir, firsts := msgCorruptionSetup(t)
	last := firsts[len(firsts)-1]
	segPath, idxPath := filepath.Join(dir, segName(last)), filepath.Join(dir, indexName(last))
	seg, err := ReadFile(m, segPath)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := ReadFile(m, idxPath)
	if err != nil {
		t.Fatal(err)
	}
	lastRecOff := recordOffsetOf(t, m, dir, last, 40)
	var cuts []int64
	for cut := lastRecOff - 30; cut < int64(len(seg)); cut += 3 {
		cuts = append(cuts, cut)
	}
	for _, cut := range append(cuts, int64(len(seg))) {
		for _, idxBytes := range []int{0, len(idx) - 7, len(idx)} {
			mustWriteFile(t, m, segPath, seg[:cut], true).Close()
			mustWriteFile(t, m, idxPath, idx[:idxBytes], true).Close()
			s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{SegmentBytesMax: 300})
			if err != nil {
				t.Fatalf("cut at %d, index %d bytes: open: %v", cut, idxBytes, err)
			}
			wantLast := uint64(39)
			if cut == int64(len(seg)) {
				wantLast = 40
			}
			if cut < lastRecOff {
				wantLast = 38
			}
			if _, l := s.FirstLast("foo"); l != wantLast {
				t.Fatalf("cut at %d, index %d bytes: last %d, want %d", cut, idxBytes, l, wantLast)
			}
			for seq := last; seq <= wantLast; seq++ {
				if got, err := s.Get("foo", seq); err != nil || !bytes.Equal(got, msg("foo", seq)) {
					t.Fatalf("cut at %d, index %d bytes: get %d: got %q, %v", cut, idxBytes, seq, got, err)
				}
			}
			if seq, ok := s.SeqAtOrAfter("foo", 10*int64(wantLast)); seq != wantLast || !ok {
				t.Fatalf("cut at %d: seq at or after: got %d,%v, want %d", cut, seq, ok, wantLast)
			}
			putRange(t, s, "foo", wantLast+1, 40)
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			s.Close()
			seg, _ = ReadFile(m, segPath)
			idx, _ = ReadFile(m, idxPath)
		}
	}
}

// TestMsgStoreWriteFaultIsSticky checks that after a failed write the store
// refuses writes, and that what was synced before survives a crash.
func TestMsgStoreWriteFaultIsSticky(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	putRange(t, s, "foo", 1, 5)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	m.InjectFault(OpSync, "/msgs", nil)
	putRange(t, s, "foo", 6, 6)
	wantErr(t, "sync with a fault", s.Sync(), ErrInjected)
	m.ClearFaults()
	wantErr(t, "put after a failed sync", s.Put("foo", 7, 0, nil), ErrInjected)
	m.Crash()
	s, err = OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantFirstLast(t, s, "foo", 1, 5)
}

func TestMsgStoreLockExcludesSecondOpen(t *testing.T) {
	m := NewMemFS(MemFSOptions{})
	s, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := OpenFileMsgStore(m, "/msgs", FileMsgStoreOptions{}); err == nil {
		s2.Close()
		t.Fatal("second open: got nil error")
	}
}

func TestChannelNameEncoding(t *testing.T) {
	for _, ch := range []string{"foo", "foo.bar", "Foo", "a%b", "..", "ü", "a b/c\\d\x00"} {
		enc := encodeChannel(ch)
		if got, ok := decodeChannel(enc); !ok || got != ch {
			t.Errorf("decode(encode(%q) = %q) = %q, %v", ch, enc, got, ok)
		}
		if len(enc) != encodedChannelBytes(ch) || strings.ContainsAny(enc[len(channelDirPrefix):], "/\\ ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Errorf("encode(%q) = %q", ch, enc)
		}
	}
	for _, name := range []string{"c-", "c-%4", "c-%zz", "c-%61", "c-A", "d-foo", "c-a*"} {
		if got, ok := decodeChannel(name); ok {
			t.Errorf("decode(%q) = %q, want failure", name, got)
		}
	}
}

// TestMsgStoreInterruptedTrimAndDelete stops a trim and a deletion midway
// with a fault, crashes and checks that open finishes them.
func TestMsgStoreInterruptedTrimAndDelete(t *testing.T) {
	opts := FileMsgStoreOptions{SegmentBytesMax: 100}
	setup := func(t *testing.T) (*MemFS, MsgStore, string) {
		m := NewMemFS(MemFSOptions{})
		s, err := OpenFileMsgStore(m, "/msgs", opts)
		if err != nil {
			t.Fatal(err)
		}
		putRange(t, s, "foo", 1, 30)
		putRange(t, s, "bar", 1, 3)
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		return m, s, "/msgs/" + encodeChannel("foo")
	}
	reopen := func(t *testing.T, m *MemFS) MsgStore {
		m.ClearFaults()
		m.Crash()
		s, err := OpenFileMsgStore(m, "/msgs", opts)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("trim", func(t *testing.T) {
		m, s, dir := setup(t)
		segs := s.(*fileMsgStore).channels["foo"].segs
		m.InjectFault(OpWrite, filepath.Join(dir, segName(segs[2].firstSeq)), nil)
		wantErr(t, "trim with a fault", s.TrimBefore("foo", 25), ErrInjected)
		s = reopen(t, m)
		wantFirstLast(t, s, "foo", 25, 30)
		names, err := m.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range segs[:3] {
			if slices.Contains(names, segName(g.firstSeq)) || slices.Contains(names, indexName(g.firstSeq)) {
				t.Errorf("segment %d left after the trim: %q", g.firstSeq, names)
			}
		}
		if got, err := s.Get("foo", 25); err != nil || !bytes.Equal(got, msg("foo", 25)) {
			t.Errorf("get 25: got %q, %v", got, err)
		}
	})
	t.Run("delete after the marker", func(t *testing.T) {
		m, s, dir := setup(t)
		segs := s.(*fileMsgStore).channels["foo"].segs
		m.InjectFault(OpWrite, filepath.Join(dir, segName(segs[2].firstSeq)), nil)
		wantErr(t, "delete with a fault", s.DeleteChannel("foo"), ErrInjected)
		s = reopen(t, m)
		if got := s.Channels(); !slices.Equal(got, []string{"bar"}) {
			t.Errorf("channels: got %q, want [bar]", got)
		}
		if _, err := m.List(dir); !errors.Is(err, ErrNotExist) {
			t.Errorf("channel directory after open: %v, want it gone", err)
		}
	})
	t.Run("delete before the marker", func(t *testing.T) {
		m, s, dir := setup(t)
		m.InjectFault(OpSync, filepath.Join(dir, channelMeta+".tmp"), nil)
		wantErr(t, "delete with a fault", s.DeleteChannel("foo"), ErrInjected)
		s = reopen(t, m)
		wantFirstLast(t, s, "foo", 1, 30)
	})
	t.Run("unsynced new channel", func(t *testing.T) {
		m, s, _ := setup(t)
		putRange(t, s, "new", 5, 6)
		s = reopen(t, m)
		if got := s.Channels(); !slices.Equal(got, []string{"bar", "foo"}) {
			t.Errorf("channels: got %q, want [bar foo]", got)
		}
		names, err := m.List("/msgs")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(names, encodeChannel("new")) {
			t.Errorf("directory of the unsynced channel left: %q", names)
		}
		putRange(t, s, "new", 9, 9)
		wantFirstLast(t, s, "new", 9, 9)
	})
}

// TestMsgStoreDropSegmentsBefore: only whole sealed segments go, what is
// kept reads back (across a reopen and a crash), first never passes a kept
// message, and appending goes on.
func TestMsgStoreDropSegmentsBefore(t *testing.T) {
	eachMsgStore(t, FileMsgStoreOptions{SegmentBytesMax: 200}, func(t *testing.T, e *msgStoreEnv) {
		s := e.open(t)
		putRange(t, s, "foo", 1, 100)
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		check := func(s MsgStore, wantLast uint64) uint64 {
			t.Helper()
			first, last := s.FirstLast("foo")
			if last != wantLast || first > 60 || first < 1 {
				t.Fatalf("first last %d,%d after dropping below 60, want first <= 60 and last %d", first, last, wantLast)
			}
			for seq := first; seq <= last; seq++ {
				if got, err := s.Get("foo", seq); err != nil || string(got) != string(msg("foo", seq)) {
					t.Fatalf("get %d: %q %v", seq, got, err)
				}
			}
			return first
		}
		if err := s.DropSegmentsBefore("foo", 60); err != nil {
			t.Fatal(err)
		}
		first := check(s, 100)
		if e.file && first == 1 {
			t.Fatal("no segment was dropped")
		}
		if !e.file && first != 60 {
			t.Fatalf("memory store first %d, want 60", first)
		}
		// Dropping beyond the last keeps the active segment (file) or
		// keeps first at last+1 at most (memory).
		if err := s.DropSegmentsBefore("foo", 1000); err != nil {
			t.Fatal(err)
		}
		if f, l := s.FirstLast("foo"); l != 100 || f > 101 || e.file && f > 100 {
			t.Fatalf("after dropping everything: first last %d,%d", f, l)
		}
		putRange(t, s, "foo", 101, 110)
		s = e.reopen(t, s)
		if f, l := s.FirstLast("foo"); l != 110 || f > 101 {
			t.Fatalf("after reopen: first last %d,%d", f, l)
		}
		if e.mem != nil {
			putRange(t, s, "foo", 111, 120)
			e.mem.Crash()
			s = e.open(t)
			if _, l := s.FirstLast("foo"); l < 110 {
				t.Fatalf("a crash lost synced messages: last %d", l)
			}
		}
	})
}

// TestMsgStoreReadAheadBudget: reads go on, exactly sized, once the
// read-ahead windows have used their whole budget, and closing segments
// gives the budget back.
func TestMsgStoreReadAheadBudget(t *testing.T) {
	s, err := OpenFileMsgStore(NewMemFS(MemFSOptions{}), "/msgs", FileMsgStoreOptions{SegmentBytesMax: 300, OpenSegmentsMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putRange(t, s, "foo", 1, 60)
	fs := s.(*fileMsgStore)
	fs.windowBytes = readAheadTotalMax // as if other segments held it all
	for seq := uint64(1); seq <= 60; seq++ {
		if got, err := s.Get("foo", seq); err != nil || string(got) != string(msg("foo", seq)) {
			t.Fatalf("get %d over budget: %q %v", seq, got, err)
		}
	}
	if fs.windowBytes != readAheadTotalMax {
		t.Fatalf("reads over budget allocated windows: %d bytes", fs.windowBytes)
	}
	fs.windowBytes = 0
	for seq := uint64(1); seq <= 60; seq++ {
		if _, err := s.Get("foo", seq); err != nil {
			t.Fatal(err)
		}
	}
	if fs.windowBytes <= 0 || fs.windowBytes > 4*readAheadBytes {
		t.Fatalf("windows hold %d bytes with one sealed segment open and the active one", fs.windowBytes)
	}
}

// TestMemMsgStoreBlocks: the memory store copies records into blocks, a
// record larger than a block gets one of its own, and a trim frees the
// blocks that held only trimmed records.
func TestMemMsgStoreBlocks(t *testing.T) {
	s := NewMemMsgStore().(*memMsgStore)
	var want [][]byte
	for seq := uint64(1); seq <= 3000; seq++ {
		size := 100 + int(seq%7)*50
		if seq%1000 == 0 {
			size = 2 * memBlockBytesMax // its own block
		}
		rec := bytes.Repeat([]byte{byte(seq)}, size)
		mustPut(t, s, "foo", seq, int64(seq), rec)
		want = append(want, rec)
	}
	check := func(first uint64) {
		t.Helper()
		for seq := first; seq <= 3000; seq++ {
			got, err := s.Get("foo", seq)
			if err != nil || !bytes.Equal(got, want[seq-1]) {
				t.Fatalf("get foo/%d: %d bytes, %v", seq, len(got), err)
			}
			if ts, n, err := s.Stat("foo", seq); err != nil || ts != int64(seq) || n != len(want[seq-1]) {
				t.Fatalf("stat foo/%d: %d, %d, %v", seq, ts, n, err)
			}
		}
	}
	check(1)
	ch := s.channels["foo"]
	blocks := len(ch.blocks)
	if blocks < 5 {
		t.Fatalf("%d blocks for 3000 records and 3 large ones", blocks)
	}
	if err := s.TrimBefore("foo", 2001); err != nil {
		t.Fatal(err)
	}
	check(2001)
	if len(ch.blocks) >= blocks || ch.blocks[0] == nil {
		t.Fatalf("after the trim %d blocks of %d are held", len(ch.blocks), blocks)
	}
	// Everything trimmed: only the last block stays, and puts go on.
	if err := s.TrimBefore("foo", 3001); err != nil {
		t.Fatal(err)
	}
	if len(ch.blocks) != 1 || len(ch.refs) != 0 {
		t.Fatalf("all trimmed: %d blocks, %d records held", len(ch.blocks), len(ch.refs))
	}
	mustPut(t, s, "foo", 3001, 3001, []byte("next"))
	if got, err := s.Get("foo", 3001); err != nil || string(got) != "next" {
		t.Fatalf("get foo/3001 = %q, %v", got, err)
	}
}
