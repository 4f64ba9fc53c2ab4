package node

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/storage"
	"github.com/stanza-io/stanza/transport"
)

// TestFileStoreKeepsMessagesOnDisk: with the FILE store, messages live in
// <dir>/msgs and snapshots hold none; limits trim the store after a
// snapshot; a restart serves the kept messages from disk.
func TestFileStoreKeepsMessagesOnDisk(t *testing.T) {
	dir := t.TempDir()
	mutate := func(c *Config) {
		c.SnapshotEntries = 25
		c.Limits.MaxMsgs = 100
	}
	ns, err := transport.StartEmbedded(transport.EmbeddedOptions{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	// Small message segments, so that limits free whole ones.
	ts := &testServer{url: ns.ClientURL(), nats: ns, fopt: FileStorageOptions{Msgs: storage.FileMsgStoreOptions{SegmentBytesMax: 16 << 10}}}
	ts.start(t, dir, mutate)
	sc := connect(t, ts, "pub")
	const n = 600
	payload := make([]byte, 512)
	for i := 0; i < n; i++ {
		copy(payload, fmt.Sprintf("m%04d", i))
		if err := sc.Publish("orders", payload); err != nil {
			t.Fatal(err)
		}
	}
	// The newest snapshot is far smaller than the messages it covers.
	snaps, err := os.ReadDir(filepath.Join(dir, "snap"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no snapshot files: %v", err)
	}
	for _, e := range snaps {
		if info, err := e.Info(); err == nil && info.Size() > 8<<10 {
			t.Errorf("snapshot %s has %d bytes: it should hold no messages", e.Name(), info.Size())
		}
	}
	// The messages are in the store, trimmed to about the limit.
	var first, last uint64
	ts.srv.Do(func(c *Core) {
		info, _ := c.State().Channel("orders")
		if info.First != n-100+1 || info.Last != n {
			t.Errorf("channel holds %d..%d, want %d..%d", info.First, info.Last, n-100+1, n)
		}
		first, last = ts.fst.Messages().FirstLast("1")
	})
	if last != n || first <= 1 || first > n-100+1 {
		t.Fatalf("message store holds %d..%d, want ..%d with old segments removed (retention after a snapshot)", first, last, n)
	}
	segs, _ := os.ReadDir(filepath.Join(dir, "msgs", "c-1"))
	if len(segs) > 2*((100*600)/(16<<10)+3) {
		t.Errorf("%d files in the channel directory: old segments were not removed", len(segs))
	}
	if _, err := os.Stat(filepath.Join(dir, "msgs", "c-1")); err != nil {
		t.Fatalf("no channel directory in the message store: %v", err)
	}
	sc.Close()

	ts.stop()
	ts.start(t, dir, mutate)
	sc2 := connect(t, ts, "sub")
	got := make(chan *stan.Msg, n)
	if _, err := sc2.Subscribe("orders", func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable()); err != nil {
		t.Fatal(err)
	}
	for i := n - 100; i < n; i++ {
		select {
		case m := <-got:
			want := fmt.Sprintf("m%04d", i)
			if m.Sequence != uint64(i+1) || string(m.Data[:5]) != want || len(m.Data) != len(payload) {
				t.Fatalf("after restart got seq %d %q, want seq %d %q", m.Sequence, m.Data[:5], i+1, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("after restart: seq %d never came", i+1)
		}
	}
}
