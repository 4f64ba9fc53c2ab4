package node

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"github.com/stanza-io/stanza/transport"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
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

// handBus is a transport.Conn the test delivers on by hand: deliver calls
// the callback of the subscription that matches, on the test's goroutine,
// as a NATS subscription's goroutine would.
type handBus struct {
	mu   sync.Mutex
	subs map[string]func(transport.Msg)
	out  chan transport.Msg // what the server published
}

type handSub struct {
	b       *handBus
	subject string
}

func (s handSub) Unsubscribe() error {
	s.b.mu.Lock()
	delete(s.b.subs, s.subject)
	s.b.mu.Unlock()
	return nil
}

func newHandBus() *handBus {
	return &handBus{subs: map[string]func(transport.Msg){}, out: make(chan transport.Msg, 1024)}
}

func (b *handBus) Publish(subject, reply string, data []byte) error {
	select {
	case b.out <- transport.Msg{Subject: subject, Reply: reply, Data: append([]byte(nil), data...)}:
	default:
	}
	return nil
}

func (b *handBus) Subscribe(subject string, fn func(transport.Msg)) (transport.Subscription, error) {
	b.mu.Lock()
	b.subs[subject] = fn
	b.mu.Unlock()
	return handSub{b, subject}, nil
}

func (b *handBus) Flush() error           { return nil }
func (b *handBus) Barrier(f func()) error { f(); return nil }
func (b *handBus) Close()                 {}

func (b *handBus) deliver(t *testing.T, m transport.Msg) {
	t.Helper()
	b.mu.Lock()
	fn := b.subs[m.Subject]
	b.mu.Unlock()
	if fn == nil {
		t.Fatalf("nothing subscribed to %s", m.Subject)
	}
	fn(m)
}

// reply waits for the server's publish on subject.
func (b *handBus) reply(t *testing.T, subject string, within time.Duration) transport.Msg {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-b.out:
			if m.Subject == subject {
				return m
			}
		case <-deadline:
			t.Fatalf("no publish on %s within %v", subject, within)
		}
	}
}

func startHandServer(t *testing.T, st Storage) (*Server, *handBus) {
	t.Helper()
	bus := newHandBus()
	srv, err := StartServer(Config{ClusterID: "test-cluster", NodeName: "a", Limits: statemachine.DefaultLimits(),
		TickNanos: int64(10 * time.Millisecond)}, st, bus)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	deadline := time.Now().Add(5 * time.Second)
	for serving := false; !serving; {
		if time.Now().After(deadline) {
			t.Fatal("the replica did not start serving")
		}
		time.Sleep(5 * time.Millisecond)
		if err := srv.Do(func(c *Core) { serving = c.Serving() }); err != nil {
			t.Fatal(err)
		}
	}
	return srv, bus
}

// TestShellTakesWhatWasLeftBehind: a message delivered with More set (its
// subscription said more were queued behind it) waits for them to run the
// core; when none comes (the subscription went away meanwhile), the
// server's own goroutine still takes it, at the next tick.
func TestShellTakesWhatWasLeftBehind(t *testing.T) {
	_, bus := startHandServer(t, NewMemStorage())
	subj := SubjectsFor("_STAN.discover", "test-cluster")
	req := marshal(t, &pb.ConnectRequest{ClientID: "me", HeartbeatInbox: "me.hb", Protocol: 1, ConnID: []byte("c1")})
	bus.deliver(t, transport.Msg{Subject: subj.Discover, Reply: "me.connect", Data: req, More: true})
	var cr pb.ConnectResponse
	if err := proto.Unmarshal(bus.reply(t, "me.connect", 5*time.Second).Data, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Error != "" || cr.PubPrefix == "" {
		t.Fatalf("connect answered %+v", &cr)
	}
}

// failAfter is a log that fails every write with entries once armed.
type failAfter struct {
	*MemStorage
	mu    sync.Mutex
	armed bool
}

func (f *failAfter) Save(hs *raftpb.HardState, ents []*raftpb.Entry, mustSync bool) error {
	f.mu.Lock()
	armed := f.armed
	f.mu.Unlock()
	if armed && len(ents) > 0 {
		return errors.New("disk gone")
	}
	return f.MemStorage.Save(hs, ents, mustSync)
}

// TestShellStopsWhenACallbackRunFails: the core that fails while a NATS
// callback runs it stops the server as it would on the server's own
// goroutine: Done closes, Err says why, Do refuses, and nothing runs the
// core again.
func TestShellStopsWhenACallbackRunFails(t *testing.T) {
	st := &failAfter{MemStorage: NewMemStorage()}
	srv, bus := startHandServer(t, st)
	st.mu.Lock()
	st.armed = true
	st.mu.Unlock()
	subj := SubjectsFor("_STAN.discover", "test-cluster")
	req := marshal(t, &pb.ConnectRequest{ClientID: "me", HeartbeatInbox: "me.hb", Protocol: 1, ConnID: []byte("c1")})
	bus.deliver(t, transport.Msg{Subject: subj.Discover, Reply: "me.connect", Data: req})
	select {
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop after its log failed")
	}
	if err := srv.Err(); !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("Err() = %v, want the failed save", err)
	}
	if err := srv.Do(func(*Core) { t.Error("Do ran on a stopped server") }); err == nil {
		t.Fatal("Do on a stopped server returned nil")
	}
	// A later message is dropped, not run through the failed core.
	bus.deliver(t, transport.Msg{Subject: subj.Discover, Reply: "me.connect2", Data: req})
	select {
	case m := <-bus.out:
		if m.Subject == "me.connect2" {
			t.Fatalf("a stopped server answered %s", m.Subject)
		}
	case <-time.After(50 * time.Millisecond):
	}
}
