package node

import (
	"sync"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// slowStorage is a log whose every write takes a while, as an fsync does,
// and counts the writes that carry entries.
type slowStorage struct {
	*MemStorage
	delay time.Duration
	mu    sync.Mutex
	saves int
}

func (s *slowStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, mustSync bool) error {
	if len(ents) > 0 {
		s.mu.Lock()
		s.saves++
		s.mu.Unlock()
		time.Sleep(s.delay) // the disk, not a wait for an event
	}
	return s.MemStorage.Save(hs, ents, mustSync)
}

// TestShellBatchesWhileSaving: the publishes that arrive while the core
// writes its log go into the next write together, so 2,000 publishes from
// one client take a handful of 50 ms writes. A shell that handed them over
// as its NATS callbacks returned (one blocked behind the write) took a
// write for every few publishes, and each fsync then served a few
// messages.
func TestShellBatchesWhileSaving(t *testing.T) {
	ns, err := transport.StartEmbedded(transport.EmbeddedOptions{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	conn, err := transport.DialNATS(transport.NATSOptions{URL: ns.ClientURL(), Name: "stanza-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	st := &slowStorage{MemStorage: NewMemStorage(), delay: 50 * time.Millisecond}
	srv, err := StartServer(Config{ClusterID: "test-cluster", NodeName: "a", Limits: statemachine.DefaultLimits(),
		TickNanos: int64(10 * time.Millisecond)}, st, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	sc := connect(t, &testServer{url: ns.ClientURL()}, "batcher", stan.MaxPubAcksInflight(4096))
	st.mu.Lock()
	before := st.saves
	st.mu.Unlock()

	const n = 2000
	acked := make(chan error, n)
	for i := range n {
		if _, err := sc.PublishAsync("foo", []byte{byte(i)}, func(_ string, err error) { acked <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case err := <-acked:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("publishes not acknowledged within 30s")
		}
	}
	st.mu.Lock()
	saves := st.saves - before
	st.mu.Unlock()
	if saves > 40 {
		t.Fatalf("%d publishes took %d log writes: the shell does not batch what arrives during a write", n, saves)
	}
	t.Logf("%d publishes in %d log writes", n, saves)
}
