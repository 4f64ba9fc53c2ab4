package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/transport"
)

func TestChannelListRoundTrip(t *testing.T) {
	chans := []string{"foo", "bar.*", "baz.>", strings.Repeat("x", 300)}
	lists, err := encodeChannelLists(chans, 320)
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != 2 {
		t.Fatalf("%d pieces of at most 320 bytes, want 2", len(lists))
	}
	var got []string
	for _, l := range lists {
		if len(l) > 320 {
			t.Fatalf("a piece of %d bytes", len(l))
		}
		c, err := decodeChannelList(l)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c...)
	}
	if !slices.Equal(got, chans) {
		t.Fatalf("decoded %q, want %q", got, chans)
	}
	// nats-streaming-server's bytes for ["ab", "c"].
	if c, err := decodeChannelList([]byte{2, 0, 'a', 'b', 1, 0, 'c'}); err != nil || !slices.Equal(c, []string{"ab", "c"}) {
		t.Fatalf("decode: %q, %v", c, err)
	}
	for _, bad := range [][]byte{{1}, {5, 0, 'a'}} {
		if _, err := decodeChannelList(bad); err == nil {
			t.Errorf("decoded % x", bad)
		}
	}
	if _, err := encodeChannelLists([]string{strings.Repeat("y", 400)}, 320); err == nil {
		t.Error("encoded a channel longer than a piece")
	}
}

func partitionConfig(t *testing.T, channels ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("streaming { partitioning: true, store_limits { channels { ")
	for i, c := range channels {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: {}", c)
	}
	b.WriteString("} } }")
	return writeConfig(t, b.String())
}

// waitServing waits until the server with monitoring port httpPort serves.
func waitServing(t *testing.T, httpPort int) {
	t.Helper()
	deadline := time.Now().Add(e2eStartMax)
	for {
		var z serverz
		err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/streaming/serverz", httpPort), &z)
		if err == nil && z.Raft.Serving {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving: %+v, %v", z, err)
		}
		time.Sleep(e2ePollEvery) // the server is starting
	}
}

// waitLog waits until log holds s.
func waitLog(t *testing.T, log *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(e2eStartMax)
	for !strings.Contains(log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", s, log)
		}
		time.Sleep(e2ePollEvery) // the server is starting
	}
}

// Two partitioned servers, one with the embedded NATS and a FILE store,
// the other on that NATS with a MEMORY store, serve one cluster ID: a
// stock client publishes to and subscribes on the channels of both, and
// each server keeps only its own.
func TestRunPartitionedServersShareAClusterID(t *testing.T) {
	port, httpA := e2ePort(t), e2ePort(t)
	url := natsURL(port)
	dirA := t.TempDir()
	stopA, logA := startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(httpA), "-st", "FILE", "--dir", dirA,
		"-c", partitionConfig(t, "orders.*", "audit"))
	waitLog(t, logA, "stanza started")
	httpB := e2ePort(t)
	stopB, logB := startRun(t, "-ns", url, "-m", fmt.Sprint(httpB), "-c", partitionConfig(t, "events"))
	// A client that connected before B served is not known to B, as
	// with nats-streaming-server: wait for it.
	waitServing(t, httpB)

	sc := e2eConnect(t, url, "both", stan.PubAckWait(time.Second))
	publishAll(t, sc, "orders.1", 1, 3)
	publishAll(t, sc, "events", 1, 2)
	publishAll(t, sc, "audit", 1, 1)
	if got := strings.Join(allFrom(t, sc, "orders.1", 3), " "); got != "1:m1 2:m2 3:m3" {
		t.Fatalf("orders.1: %s", got)
	}
	if got := strings.Join(allFrom(t, sc, "events", 2), " "); got != "1:m1 2:m2" {
		t.Fatalf("events: %s", got)
	}
	// No server has "elsewhere": nobody acknowledges it.
	if err := sc.Publish("elsewhere", []byte("x")); err == nil {
		t.Fatal("a publish to a channel no server has was acknowledged")
	}
	if z, err := channelInfo(httpA, "orders.1"); err != nil || z.Msgs != 3 {
		t.Fatalf("server A's orders.1: %+v, %v", z, err)
	}
	if _, err := channelInfo(httpA, "events"); err == nil {
		t.Fatal("server A has server B's channel")
	}
	sc.Close()
	if rc := stopB(); rc != 0 {
		t.Fatalf("server B: exit %d\n%s", rc, logB)
	}

	// A restarts on its store with the same partition ID.
	id, err := os.ReadFile(filepath.Join(dirA, partitionIDFile))
	if err != nil {
		t.Fatal(err)
	}
	if rc := stopA(); rc != 0 {
		t.Fatalf("server A: exit %d\n%s", rc, logA)
	}
	_, logA = startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-st", "FILE", "--dir", dirA,
		"-c", partitionConfig(t, "orders.*", "audit"))
	waitLog(t, logA, "stanza started")
	sc = e2eConnect(t, url, "again")
	if got := strings.Join(allFrom(t, sc, "orders.1", 3), " "); got != "1:m1 2:m2 3:m3" {
		t.Fatalf("orders.1 after a restart: %s", got)
	}
	if again, err := os.ReadFile(filepath.Join(dirA, partitionIDFile)); err != nil || string(again) != string(id) {
		t.Fatalf("partition ID %q after a restart, was %q (%v)", again, id, err)
	}
}

// A server whose channels overlap another's does not start, and says
// which channel and which server.
func TestRunPartitionConflictStopsTheStart(t *testing.T) {
	port := e2ePort(t)
	_, logA := startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-c", partitionConfig(t, "orders.>"))
	waitLog(t, logA, "stanza started")
	var out syncBuffer
	rc := run([]string{"-ns", natsURL(port), "-c", partitionConfig(t, "audit", "orders.eu.*")}, &out, &out, nil)
	if rc != 1 || !strings.Contains(out.String(), `channel \"orders.eu.*\" causes conflict with channels on server`) {
		t.Fatalf("conflicting server: exit %d, log:\n%s", rc, out.String())
	}
	// The first one serves on.
	sc := e2eConnect(t, natsURL(port), "after")
	publishAll(t, sc, "orders.us.1", 1, 1)
}

// A FILE store written without partitioning is not reused by a partitioned
// server (its subscriptions' ack inboxes are not scoped to it).
func TestRunPartitioningRefusesAnOldStore(t *testing.T) {
	dir := t.TempDir()
	port := e2ePort(t)
	stop, _ := startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-st", "FILE", "--dir", dir)
	connectRetry(t, natsURL(port), "w").Close()
	stop()
	var out syncBuffer
	rc := run([]string{"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-st", "FILE", "--dir", dir, "-c", partitionConfig(t, "foo")}, &out, &out, nil)
	if rc != 1 || !strings.Contains(out.String(), "written without partitioning") {
		t.Fatalf("exit %d, log:\n%s", rc, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, partitionIDFile)); err == nil {
		t.Fatal("the refused start wrote a partition ID")
	}
}

// An FT group can be one partition: its active server checks the channels
// when it takes over, and the other partitions serve on throughout.
func TestE2EPartitionedFaultTolerantGroup(t *testing.T) {
	t.Parallel()
	port := e2ePort(t)
	url := natsURL(port)
	_, logOther := startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-c", partitionConfig(t, "other"))
	waitLog(t, logOther, "stanza started")

	dir := t.TempDir()
	conf := partitionConfig(t, "ft.*")
	args := func(httpPort int) []string {
		return []string{"-ns", url, "-st", "FILE", "--dir", dir, "--ft_group", "g", "-m", fmt.Sprint(httpPort), "-c", conf}
	}
	portA, portB := e2ePort(t), e2ePort(t)
	a := startProc(t, "a", args(portA)...)
	waitFTStatus(t, "a", portA, http.StatusOK, "FT_ACTIVE", e2eStartMax)
	b := startProc(t, "b", args(portB)...)
	waitFTStatus(t, "b", portB, http.StatusNoContent, "FT_STANDBY", e2eStartMax)
	waitServing(t, portA)

	sc := e2eConnect(t, url, "ftp", stan.PubAckWait(2*time.Second))
	publishAll(t, sc, "ft.x", 1, 3)
	publishAll(t, sc, "other", 1, 1)
	a.kill()
	waitFTStatus(t, "b", portB, http.StatusOK, "FT_ACTIVE", e2eFailoverMax)
	deadline := time.Now().Add(e2eFailoverMax)
	for sc.Publish("ft.x", []byte("m4")) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no publish acknowledged within %v of the failover\n%s", e2eFailoverMax, b.log)
		}
	}
	publishAll(t, sc, "other", 2, 2)
	if got := strings.Join(allFrom(t, sc, "ft.x", 4), " "); got != "1:m1 2:m2 3:m3 4:m4" {
		t.Fatalf("ft.x after the failover: %s", got)
	}
	if got := strings.Join(allFrom(t, sc, "other", 2), " "); got != "1:m1 2:m2" {
		t.Fatalf("other: %s", got)
	}
	if code := b.term(t); code != 0 {
		t.Fatalf("b exited with %d after SIGTERM", code)
	}
}

func partitionOptions(channels ...string) Options {
	o := DefaultOptions()
	o.ClusterID, o.Partitioning = "pc", true
	o.Limits.PerChannel = map[string]statemachine.ChannelLimits{}
	for _, c := range channels {
		o.Limits.PerChannel[c] = statemachine.ChannelLimits{}
	}
	return o
}

// One conflicting answer among a hundred is enough to stop the start.
func TestPartitionCheckHearsAConflictAmongManyAnswers(t *testing.T) {
	ns, conn := ftBus(t)
	peer := ftDial(t, ns)
	sub, err := peer.Subscribe(partitionSubject("pc"), func(m transport.Msg) {
		for i := range 100 {
			var data []byte
			if i == 70 {
				data = []byte("foo")
			}
			peer.Publish(m.Reply, "", encodeCtrlMsg(ctrlMsgPartitioning, fmt.Sprintf("s%d", i), data))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := peer.Flush(); err != nil {
		t.Fatal(err)
	}
	_, err = startPartitions(conn, partitionOptions("foo"), "me", slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `channel "foo" causes conflict with channels on server "s70"`) {
		t.Fatalf("start: %v", err)
	}
}

// A running partition answers each list with the first channel of it that
// overlaps its own, or with nothing, and ignores its own list and
// malformed ones.
func TestPartitionAnswersOtherLists(t *testing.T) {
	ns, conn := ftBus(t)
	p, err := startPartitions(conn, partitionOptions("orders.*", "audit"), "me", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	peer := ftDial(t, ns)
	ask := func(serverID string, data []byte) (string, bool) {
		t.Helper()
		inbox := "_INBOX.ask." + serverID
		got := make(chan []byte, 4)
		sub, err := peer.Subscribe(inbox, func(m transport.Msg) { got <- m.Data })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := peer.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := peer.Publish(partitionSubject("pc"), inbox, data); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			typ, from, conflict, ok := decodeCtrlMsg(b)
			if !ok || typ != ctrlMsgPartitioning || from != "me" {
				t.Fatalf("answer % x", b)
			}
			return string(conflict), true
		case <-time.After(partitionQuiet):
			return "", false
		}
	}
	list := func(chans ...string) []byte {
		l, err := encodeChannelLists(chans, partitionListBytes)
		if err != nil || len(l) != 1 {
			t.Fatal(err)
		}
		return l[0]
	}
	if c, ok := ask("s1", encodeCtrlMsg(ctrlMsgPartitioning, "s1", list("x", "orders.eu", "audit"))); !ok || c != "orders.eu" {
		t.Fatalf("overlapping list: %q, %v", c, ok)
	}
	if c, ok := ask("s2", encodeCtrlMsg(ctrlMsgPartitioning, "s2", list("x", "orders"))); !ok || c != "" {
		t.Fatalf("disjoint list: %q, %v", c, ok)
	}
	if _, ok := ask("s3", encodeCtrlMsg(ctrlMsgPartitioning, "me", list("audit"))); ok {
		t.Fatal("answered its own list")
	}
	if _, ok := ask("s4", []byte{0xff, 0x01}); ok {
		t.Fatal("answered a malformed list")
	}
	if _, ok := ask("s5", encodeCtrlMsg(ctrlMsgPartitioning, "s5", []byte{9, 0, 'a'})); ok {
		t.Fatal("answered a truncated channel list")
	}
}

// partitionQuiet is how long a test waits for an answer that must not come.
const partitionQuiet = 300 * time.Millisecond

// Whatever another server sends, decoding a channel list never panics, and
// what decodes encodes back to the same bytes.
func FuzzDecodeChannelList(f *testing.F) {
	f.Add([]byte{2, 0, 'a', 'b', 1, 0, 'c'})
	f.Add([]byte{5, 0, 'a'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		chans, err := decodeChannelList(data)
		if err != nil {
			return
		}
		lists, err := encodeChannelLists(chans, 1<<20)
		if err != nil {
			t.Fatalf("re-encode %q: %v", chans, err)
		}
		var again []byte
		for _, l := range lists {
			again = append(again, l...)
		}
		if string(again) != string(data) {
			t.Fatalf("% x decoded to %q, which encodes to % x", data, chans, again)
		}
	})
}

// The same for a CtrlMsg: decoding never panics, and the fields that decode
// encode to a message that decodes to them.
func FuzzDecodeCtrlMsg(f *testing.F) {
	f.Add(encodeCtrlMsg(ctrlMsgPartitioning, "srv", []byte{1, 0, 'x'}))
	f.Add(encodeFTHeartbeat("srv", time.Unix(1, 0)))
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, id, body, ok := decodeCtrlMsg(data)
		if !ok {
			return
		}
		typ2, id2, body2, ok := decodeCtrlMsg(encodeCtrlMsg(typ, id, body))
		if !ok || typ2 != typ || id2 != id || string(body2) != string(body) {
			t.Fatalf("% x: (%d %q % x) came back as (%d %q % x %v)", data, typ, id, body, typ2, id2, body2, ok)
		}
	})
}

// Two partitions with a channel in common can start on NATS servers that
// do not know each other; when a third server joins the two into one NATS
// cluster, both check their channels again, and at least the first to hear
// the other's answer stops (both may).
func TestRunPartitionsStopWhenTheirNATSClustersJoin(t *testing.T) {
	nats := func(routes ...string) (*transport.Embedded, string) {
		t.Helper()
		route := fmt.Sprintf("nats://127.0.0.1:%d", e2ePort(t))
		ns, err := transport.StartEmbedded(transport.EmbeddedOptions{Host: "127.0.0.1", Port: -1, ClusterName: "join",
			ClusterListen: route, Routes: routes, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ns.Shutdown)
		return ns, route
	}
	left, leftRoute := nats()
	right, rightRoute := nats()
	stopL, logL := startRun(t, "-ns", left.ClientURL(), "-c", partitionConfig(t, "dup.x"))
	stopR, logR := startRun(t, "-ns", right.ClientURL(), "-c", partitionConfig(t, "dup.*", "mine"))
	waitLog(t, logL, "stanza started")
	waitLog(t, logR, "stanza started")

	nats(leftRoute, rightRoute)
	const conflict = "causes conflict with channels on server"
	deadline := time.Now().Add(e2eStartMax)
	for !strings.Contains(logL.String(), conflict) && !strings.Contains(logR.String(), conflict) {
		if time.Now().After(deadline) {
			t.Fatalf("neither server saw the conflict:\nleft:\n%s\nright:\n%s", logL, logR)
		}
		time.Sleep(e2ePollEvery) // the servers check 500 ms after the NATS cluster grew
	}
	for _, s := range []struct {
		name string
		log  *syncBuffer
		stop func() int
	}{{"left", logL, stopL}, {"right", logR, stopR}} {
		saw := strings.Contains(s.log.String(), conflict)
		if rc := s.stop(); saw && rc != 1 || !saw && rc != 0 {
			t.Errorf("%s: exit %d, saw the conflict %v\n%s", s.name, rc, saw, s.log)
		}
	}
}

// A partitioned server does not start beside a server of its cluster ID
// that is not partitioned (which takes every channel's publishes); the
// other order is refused by the plain server's own check.
func TestRunPartitionRefusesAnUnpartitionedServer(t *testing.T) {
	port := e2ePort(t)
	_, logPlain := startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	connectRetry(t, natsURL(port), "probe").Close()
	var out syncBuffer
	rc := run([]string{"-ns", natsURL(port), "-c", partitionConfig(t, "mine")}, &out, &out, nil)
	if rc != 1 || !strings.Contains(out.String(), `discovered a streaming server with cluster ID \"test-cluster\" that is not partitioned`) {
		t.Fatalf("partitioned server beside a plain one: exit %d, log:\n%s\nplain server:\n%s", rc, out.String(), logPlain)
	}

	// And a plain server does not start beside a partition.
	port2, http2 := e2ePort(t), e2ePort(t)
	startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port2), "-m", fmt.Sprint(http2), "-c", partitionConfig(t, "mine"))
	waitServing(t, http2)
	stop, log := startRun(t, "-ns", natsURL(port2))
	waitLog(t, log, "discovered another streaming server")
	if rc := stop(); rc != 1 {
		t.Fatalf("plain server beside a partition: exit %d, log:\n%s", rc, log)
	}
}
