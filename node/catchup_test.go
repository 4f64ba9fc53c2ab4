package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/storage"
	"github.com/stanza-io/stanza/transport"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// restartable is a replica whose directory outlives it.
type restartable struct {
	name, dir string
	srv       *Server
	conn      transport.Conn
	st        *FileStorage
	log       *lockedBuffer
}

func (r *restartable) start(t *testing.T, ns *transport.Embedded, peers []string) {
	t.Helper()
	conn, err := transport.DialNATS(transport.NATSOptions{URL: ns.ClientURL(), Name: r.name})
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenFileStorage(storage.OSFS{}, r.dir, FileStorageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.log = &lockedBuffer{}
	cfg := Config{ClusterID: "test-cluster", NodeName: r.name, Peers: peers, Limits: statemachine.DefaultLimits(),
		TickNanos: int64(20 * time.Millisecond), SnapshotEntries: 20, TrailingEntries: 5,
		Logger: slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	srv, err := StartServer(cfg, st, conn)
	if err != nil {
		t.Fatal(err)
	}
	r.srv, r.conn, r.st = srv, conn, st
}

func (r *restartable) stop() {
	if r.srv != nil {
		r.srv.Shutdown()
		r.conn.Close()
		r.st.Close()
		r.srv = nil
	}
}

// TestClusterFollowerFetchesSnapshotMessages: a follower that was down
// while the others snapshotted and compacted their logs past it catches up
// from a snapshot that carries no messages: it fetches what its log lacks
// in pieces, large messages (chunked answers) included, and ends with the
// leader's messages, byte for byte.
func TestClusterFollowerFetchesSnapshotMessages(t *testing.T) {
	ns := startSharedNATS(t)
	names := []string{"a", "b", "c"}
	reps := map[string]*restartable{}
	for _, n := range names {
		reps[n] = &restartable{name: n, dir: t.TempDir()}
		reps[n].start(t, ns, names)
		t.Cleanup(reps[n].stop)
	}
	sc := connect(t, &testServer{url: ns.ClientURL()}, "pub", stan.PubAckWait(2*time.Second))
	payload := func(i int) []byte {
		if i%40 == 7 {
			// Above one wire chunk (512 KiB): its answer comes in chunks.
			return bytes.Repeat([]byte{byte('a' + i%26)}, 600*1024)
		}
		return []byte(fmt.Sprintf("m%d-%s", i, strings.Repeat("x", 2000)))
	}
	publish := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			deadline := time.Now().Add(15 * time.Second)
			for sc.Publish("log", payload(i)) != nil {
				if time.Now().After(deadline) {
					t.Fatalf("publish %d: no PubAck", i)
				}
			}
		}
	}
	publish(1, 50)

	leaderOf := func() *restartable {
		for _, n := range names {
			r := reps[n]
			if r.srv == nil {
				continue
			}
			var serving bool
			if err := r.srv.Do(func(c *Core) { serving = c.Serving() }); err == nil && serving {
				return r
			}
		}
		return nil
	}
	leader := leaderOf()
	if leader == nil {
		t.Fatal("no replica serves")
	}
	var follower *restartable
	for _, n := range names {
		if reps[n] != leader {
			follower = reps[n]
			break
		}
	}
	follower.stop()
	// Far past the follower: many snapshots (every 20 entries), 5 entries
	// kept behind each.
	publish(51, 400)

	follower.start(t, ns, names)
	lastOf := func(r *restartable) (last uint64, applied uint64) {
		r.srv.Do(func(c *Core) {
			if ch, ok := c.State().Channel("log"); ok {
				last = ch.Last
			}
			applied = c.Applied()
		})
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		fl, fa := lastOf(follower)
		ll, la := lastOf(leader)
		if fl == 400 && fa >= la && ll == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower has %d messages (applied %d) against the leader's %d (applied %d) after 30s", fl, fa, ll, la)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(follower.log.String(), "fetching the messages of a snapshot") {
		t.Fatalf("the follower caught up without fetching a snapshot's messages:\n%s", follower.log)
	}
	var logID string
	follower.srv.Do(func(c *Core) {
		if r := c.State().Retention(); len(r) == 1 {
			logID = r[0].Log
		}
	})
	if logID == "" {
		t.Fatal("the follower has no single channel log")
	}
	for seq := uint64(1); seq <= 400; seq++ {
		want, err := leader.st.Messages().Get(logID, seq)
		if err != nil {
			t.Fatalf("leader: seq %d: %v", seq, err)
		}
		got, err := follower.st.Messages().Get(logID, seq)
		if err != nil {
			t.Fatalf("follower: seq %d: %v", seq, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seq %d differs on the follower", seq)
		}
	}
}

// TestCatchUpMonitoring: serverz's raft section and the metrics show a
// follower's fetch while it runs.
func TestCatchUpMonitoring(t *testing.T) {
	bus := newBenchBus(t, 3)
	var f *Core
	for _, c := range bus.cores {
		if c != bus.leader() {
			f = c
		}
	}
	if z := raftz(f); z.CatchUp != nil || f.catchUpPending() != 0 {
		t.Fatalf("no fetch under way, got %+v, %d pending", z.CatchUp, f.catchUpPending())
	}
	snap := &raftpb.Message{From: proto.Uint64(7), Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(42)}}}
	f.catching = &catchUp{snap: snap, next: 15, needs: []statemachine.SnapshotNeed{{Log: "3", LogID: 3, From: 10, To: 20}, {Log: "4", LogID: 4, From: 1, To: 2}}}
	want := CatchUpz{SnapshotIndex: 42, From: "7", Logs: 2, Log: "3", NextSeq: 15, LastSeq: 20}
	if z := raftz(f); z.CatchUp == nil || *z.CatchUp != want {
		t.Fatalf("catch_up = %+v, want %+v", z.CatchUp, want)
	}
	if n := f.catchUpPending(); n != 6 {
		t.Fatalf("pending = %d, want 6", n)
	}
}
