package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/storage"
	"github.com/stanza-io/stanza/transport"
)

func TestFTHeartbeatRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 123, time.UTC)
	id, got, ok := decodeFTHeartbeat(encodeFTHeartbeat("srv-1", at))
	if !ok || id != "srv-1" || !got.Equal(at) {
		t.Fatalf("decode(encode) = %q %v %v, want srv-1 %v true", id, got, ok, at)
	}
	// nats-streaming-server's other control messages, and garbage, are no
	// heartbeats.
	partitioning := encodeFTHeartbeat("srv-1", at)
	partitioning[1] = 4
	for name, b := range map[string][]byte{"empty": nil, "garbage": {0xff, 0xff, 0xff}, "partitioning": partitioning,
		"no server ID": encodeFTHeartbeat("", at), "truncated": encodeFTHeartbeat("srv-1", at)[:10]} {
		if id, _, ok := decodeFTHeartbeat(b); ok {
			t.Errorf("%s: decoded as a heartbeat of %q", name, id)
		}
	}
}

func TestFTJitterStaysWithinTenPercent(t *testing.T) {
	for range 1000 {
		if d := jitter(time.Second); d < 900*time.Millisecond || d > 1100*time.Millisecond {
			t.Fatalf("jitter(1s) = %v", d)
		}
	}
}

func TestConfigFTGroup(t *testing.T) {
	got, err := ParseOptions([]string{"-c", writeConfig(t, "streaming { store: file, dir: /d, ft_group_name: g }")})
	if err != nil {
		t.Fatal(err)
	}
	if got.FTGroup != "g" {
		t.Fatalf("FTGroup = %q, want g", got.FTGroup)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
}

// ftBus is a NATS server in the test process and a connection to it.
func ftBus(t *testing.T) (*transport.Embedded, transport.Conn) {
	t.Helper()
	ns, err := transport.StartEmbedded(transport.EmbeddedOptions{Host: "127.0.0.1", Port: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns, ftDial(t, ns)
}

func ftDial(t *testing.T, ns *transport.Embedded) transport.Conn {
	t.Helper()
	c, err := transport.DialNATS(transport.NATSOptions{URL: ns.ClientURL(), Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// ftServer is one server's FT part, named serverID, on a NATS server of
// its own.
func ftServer(t *testing.T, serverID string) (*transport.Embedded, *ft) {
	t.Helper()
	ns, conn := ftBus(t)
	f, err := startFT(conn, ftOptions(), serverID, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	return ns, f
}

func ftOptions() Options {
	o := DefaultOptions()
	o.ClusterID, o.FTGroup = "ftc", "g"
	return o
}

// TestFTActiveSendsHeartbeatsAndAbortsOnAnEarlierActive: the active server
// heartbeats; another server claiming to be active since later is logged,
// one active since earlier stops it.
func TestFTActiveSendsHeartbeatsAndAbortsOnAnEarlierActive(t *testing.T) {
	ns, f := ftServer(t, "me")
	peer := ftDial(t, ns)
	seen := make(chan string, 64)
	sub, err := peer.Subscribe(ftSubject("ftc", "g"), func(m transport.Msg) {
		if id, _, ok := decodeFTHeartbeat(m.Data); ok {
			seen <- id
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := peer.Flush(); err != nil {
		t.Fatal(err)
	}

	activated := time.Now()
	quit, abort := make(chan struct{}), make(chan error, 1)
	defer close(quit)
	go f.heartbeat(activated, quit, abort)
	select {
	case id := <-seen:
		if id != "me" {
			t.Fatalf("heartbeat from %q, want me", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat within 5s")
	}

	if err := peer.Publish(ftSubject("ftc", "g"), "", encodeFTHeartbeat("later", activated.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-abort:
		t.Fatalf("aborted on a server activated later: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := peer.Publish(ftSubject("ftc", "g"), "", encodeFTHeartbeat("earlier", activated.Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-abort:
		if want := `ft: serverID "earlier" claims to be active, aborting`; err == nil || err.Error() != want {
			t.Fatalf("abort = %v, want %q", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no abort within 5s of a heartbeat from a server active since earlier")
	}
}

// TestFTStandbyWaitsForHeartbeatsAndTheLock: a standby does not take a free
// lock while another server heartbeats, nor a held one; it takes it once the
// heartbeats stop and the lock is released.
func TestFTStandbyWaitsForHeartbeatsAndTheLock(t *testing.T) {
	ns, f := ftServer(t, "standby")
	dir := t.TempDir()
	held, err := storage.OSFS{}.Lock(filepath.Join(dir, ftLockFile))
	if err != nil {
		t.Fatal(err)
	}

	peer := ftDial(t, ns)
	stopBeats := make(chan struct{})
	beatsDone := make(chan struct{})
	go func() {
		defer close(beatsDone)
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			peer.Publish(ftSubject("ftc", "g"), "", encodeFTHeartbeat("active", time.Now()))
			select {
			case <-stopBeats:
				return
			case <-tk.C:
			}
		}
	}()

	quit := make(chan struct{})
	defer close(quit)
	type result struct {
		lock io.Closer
		err  error
	}
	got := make(chan result, 1)
	go func() {
		l, err := f.waitActive(dir, quit)
		got <- result{l, err}
	}()
	expectWaiting := func(what string, d time.Duration) {
		t.Helper()
		select {
		case r := <-got:
			t.Fatalf("%s: the standby became active (%v)", what, r.err)
		case <-time.After(d):
		}
	}
	// Heartbeats flow and the lock is free: stand by.
	held.Close()
	expectWaiting("while heartbeats flow", 3*time.Second)
	// The heartbeats stop but another process holds the lock: stand by.
	if held, err = (storage.OSFS{}).Lock(filepath.Join(dir, ftLockFile)); err != nil {
		t.Fatal(err)
	}
	close(stopBeats)
	<-beatsDone
	expectWaiting("while the lock is held", 3*time.Second)
	held.Close()
	select {
	case r := <-got:
		if r.err != nil || r.lock == nil {
			t.Fatalf("waitActive = %v, %v; want the lock", r.lock, r.err)
		}
		defer r.lock.Close()
		if l, err := (storage.OSFS{}).Lock(filepath.Join(dir, ftLockFile)); err == nil {
			l.Close()
			t.Fatal("the lock is not held by the active server")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the standby did not become active within 10s of the lock's release")
	}
}

// ftStatus is what a server's monitoring port says of its FT role.
func ftStatus(httpPort int) (code int, state string, err error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/streaming/isFTActive", httpPort))
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	var z struct {
		State string `json:"state"`
	}
	if err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/streaming/serverz", httpPort), &z); err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, z.State, nil
}

func waitFTStatus(t *testing.T, name string, httpPort, code int, state string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		c, s, err := ftStatus(httpPort)
		if err == nil && c == code && s == state {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: isFTActive %d, serverz state %q (%v) after %v; want %d and %q", name, c, s, err, within, code, state)
		}
		time.Sleep(e2ePollEvery)
	}
}

// TestE2EFaultTolerantFailover: two stanza processes in one FT group share
// a FILE store; the first serves, the second stands by; killed with
// SIGKILL, the first is replaced by the second, with every acknowledged
// message and the clients it knew.
func TestE2EFaultTolerantFailover(t *testing.T) {
	t.Parallel()
	ns, err := transport.StartEmbedded(transport.EmbeddedOptions{Host: "127.0.0.1", Port: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	dir := t.TempDir()
	args := func(httpPort int) []string {
		return []string{"-ns", ns.ClientURL(), "-st", "FILE", "--dir", dir, "--ft_group", "g", "-m", fmt.Sprint(httpPort)}
	}
	portA, portB := e2ePort(t), e2ePort(t)
	a := startProc(t, "a", args(portA)...)
	waitFTStatus(t, "a", portA, http.StatusOK, "FT_ACTIVE", e2eStartMax)
	sc := e2eConnect(t, ns.ClientURL(), "ft-pub", stan.PubAckWait(2*time.Second))
	publishAll(t, sc, "ft", 1, 20)

	b := startProc(t, "b", args(portB)...)
	waitFTStatus(t, "b", portB, http.StatusNoContent, "FT_STANDBY", e2eStartMax)
	// Several heartbeat periods later, both keep their roles.
	time.Sleep(3 * time.Second)
	waitFTStatus(t, "a", portA, http.StatusOK, "FT_ACTIVE", 0)
	waitFTStatus(t, "b", portB, http.StatusNoContent, "FT_STANDBY", 0)
	if strings.Contains(b.log.String(), "stanza started") {
		t.Fatal("the standby opened the store while the active server ran")
	}

	// A subscriber of the old server's, for new messages only.
	live := make(chan *stan.Msg, 64)
	if _, err := e2eConnect(t, ns.ClientURL(), "ft-live").Subscribe("ft", func(m *stan.Msg) { live <- m }); err != nil {
		t.Fatal(err)
	}

	a.kill()
	took := waitFTStatus(t, "b", portB, http.StatusOK, "FT_ACTIVE", e2eFailoverMax)
	t.Logf("standby active %v after SIGKILL of the active server", took.Round(time.Millisecond))
	// The client the old server registered publishes on, unaware.
	deadline := time.Now().Add(e2eFailoverMax)
	for sc.Publish("ft", []byte("m21")) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no publish acknowledged within %v of the failover", e2eFailoverMax)
		}
	}
	publishAll(t, sc, "ft", 22, 25)
	got := allFrom(t, e2eConnect(t, ns.ClientURL(), "ft-sub"), "ft", 25)
	var want []string
	for i := 1; i <= 25; i++ {
		want = append(want, fmt.Sprintf("%d:m%d", i, i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the failover: %v, want %v", got, want)
	}
	// The new server delivers to the old one's subscriber.
	seen := map[uint64]bool{}
	for len(seen) < 5 {
		select {
		case m := <-live:
			if m.Sequence < 21 || m.Sequence > 25 {
				t.Fatalf("live subscriber got sequence %d, want 21..25", m.Sequence)
			}
			seen[m.Sequence] = true
		case <-time.After(e2eRecvMax):
			t.Fatalf("live subscriber got %v of sequences 21..25", seen)
		}
	}
	// A standby stops on SIGTERM while it waits.
	portC := e2ePort(t)
	c := startProc(t, "c", args(portC)...)
	waitFTStatus(t, "c", portC, http.StatusNoContent, "FT_STANDBY", e2eStartMax)
	if code := c.term(t); code != 0 {
		t.Fatalf("standby c exited with %d after SIGTERM", code)
	}
	if code := b.term(t); code != 0 {
		t.Fatalf("b exited with %d after SIGTERM", code)
	}
}
