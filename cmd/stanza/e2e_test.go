package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/statemachine/pb"
	"google.golang.org/protobuf/proto"
)

// End-to-end tests of the real binary: built once, run as a subprocess on
// free loopback ports, killed with signals, driven by the stock stan.go
// client.

// Bounds of the end-to-end tests.
const (
	e2eStartMax    = 15 * time.Second // a process to serve clients
	e2eExitMax     = 10 * time.Second // a process to exit after SIGTERM
	e2eRecvMax     = 10 * time.Second // one delivery
	e2eFailoverMax = 20 * time.Second // a new leader to ack a publish
	e2eCatchUpMax  = 20 * time.Second // a restarted follower to catch up
	e2ePollEvery   = 20 * time.Millisecond
)

var e2eBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e2eBinary.dir != "" {
		os.RemoveAll(e2eBinary.dir)
	}
	os.Exit(code)
}

// stanzaBinary builds the binary from this package once per test run.
func stanzaBinary(t *testing.T) string {
	t.Helper()
	e2eBinary.once.Do(func() {
		e2eBinary.dir, e2eBinary.err = os.MkdirTemp("", "stanza-e2e-")
		if e2eBinary.err != nil {
			return
		}
		e2eBinary.path = filepath.Join(e2eBinary.dir, "stanza")
		out, err := exec.Command("go", "build", "-o", e2eBinary.path, ".").CombinedOutput()
		if err != nil {
			e2eBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if e2eBinary.err != nil {
		t.Fatal(e2eBinary.err)
	}
	return e2eBinary.path
}

// proc is one stanza process.
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{} // closed when the process has exited
	// signalled is set when the test signals the process: any other exit
	// is a crash.
	signalled atomic.Bool
}

// startProc starts the binary with args. The process is SIGKILLed at the
// end of the test if still running, and its log is shown if the test failed.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, args: args, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(stanzaBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
			if !p.signalled.Load() {
				t.Errorf("%s exited on its own: %v", p.name, p.cmd.ProcessState)
			}
		default:
		}
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("log of %s (%s):\n%s", p.name, strings.Join(p.args, " "), p.log)
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	p.signalled.Store(true)
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
	}
}

// kill SIGKILLs the process and waits for it to be gone.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// term SIGTERMs the process and returns its exit code.
func (p *proc) term(t *testing.T) int {
	t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(e2eExitMax):
		t.Fatalf("%s still running %v after SIGTERM", p.name, e2eExitMax)
		return -1
	}
}

// usedPorts are the ports handed out by e2ePort in this run: freePort
// closes its listener, so the kernel may offer the same port twice to tests
// running in parallel.
var usedPorts struct {
	sync.Mutex
	m map[int]bool
}

// e2ePort returns a free loopback port no other test of this run got.
func e2ePort(t *testing.T) int {
	t.Helper()
	usedPorts.Lock()
	defer usedPorts.Unlock()
	if usedPorts.m == nil {
		usedPorts.m = map[int]bool{}
	}
	for range 100 {
		if p := freePort(t); !usedPorts.m[p] {
			usedPorts.m[p] = true
			return p
		}
	}
	t.Fatal("no unused free port in 100 tries")
	return 0
}

func natsURL(port int) string { return fmt.Sprintf("nats://127.0.0.1:%d", port) }

// getJSON fetches a monitoring endpoint into v.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

type serverz struct {
	Role string `json:"role"`
	Raft struct {
		Serving bool `json:"serving"`
	} `json:"raft"`
}

type channelz struct {
	Msgs     int    `json:"msgs"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

func channelInfo(httpPort int, channel string) (channelz, error) {
	var z channelz
	err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/streaming/channelsz?channel=%s", httpPort, channel), &z)
	return z, err
}

func e2eConnect(t *testing.T, url, id string, opts ...stan.Option) stan.Conn {
	t.Helper()
	deadline := time.Now().Add(e2eStartMax)
	opts = append([]stan.Option{stan.NatsURL(url), stan.ConnectWait(time.Second)}, opts...)
	for {
		sc, err := stan.Connect("test-cluster", id, opts...)
		if err == nil {
			t.Cleanup(func() { sc.Close() })
			return sc
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect %s to %s: %v", id, url, err)
		}
		time.Sleep(e2ePollEvery) // the process is still starting or electing
	}
}

// allFrom subscribes with DeliverAllAvailable and returns the first n
// deliveries as "seq:data" words.
func allFrom(t *testing.T, sc stan.Conn, channel string, n int) []string {
	t.Helper()
	ch := make(chan *stan.Msg, n+16)
	sub, err := sc.Subscribe(channel, func(m *stan.Msg) { ch <- m }, stan.DeliverAllAvailable())
	if err != nil {
		t.Fatalf("subscribe to %s: %v", channel, err)
	}
	defer sub.Unsubscribe()
	var got []string
	for len(got) < n {
		select {
		case m := <-ch:
			got = append(got, fmt.Sprintf("%d:%s", m.Sequence, m.Data))
		case <-time.After(e2eRecvMax):
			t.Fatalf("%s: got %v, want %d messages", channel, got, n)
		}
	}
	return got
}

func publishAll(t *testing.T, sc stan.Conn, channel string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := sc.Publish(channel, []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatalf("publish m%d to %s: %v", i, channel, err)
		}
	}
}

// TestE2EChannelLimits: -mm 5 keeps the newest 5 messages of a channel, and
// a per-channel limit from the config file (-c) keeps the newest 2 of the
// channels it matches.
func TestE2EChannelLimits(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "stanza.conf")
	if err := os.WriteFile(conf, []byte(`store_limits { channels { "lim.*": { max_msgs: 2 } } }`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, httpPort := e2ePort(t), e2ePort(t)
	startProc(t, "limits", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(httpPort),
		"-mm", "5", "-c", conf, "-st", "FILE", "--dir", t.TempDir())
	sc := e2eConnect(t, natsURL(port), "limits")
	publishAll(t, sc, "all", 1, 8)
	publishAll(t, sc, "lim.x", 1, 5)
	publishAll(t, sc, "limx", 1, 3) // not matched by "lim.*"

	for _, tc := range []struct {
		channel string
		want    string
	}{
		{"all", "4:m4 5:m5 6:m6 7:m7 8:m8"},
		{"lim.x", "4:m4 5:m5"},
		{"limx", "1:m1 2:m2 3:m3"},
	} {
		z, err := channelInfo(httpPort, tc.channel)
		if err != nil {
			t.Fatal(err)
		}
		words := strings.Fields(tc.want)
		if got := strings.Join(allFrom(t, sc, tc.channel, len(words)), " "); got != tc.want {
			t.Errorf("%s: DeliverAllAvailable got %q, want %q", tc.channel, got, tc.want)
		}
		if first := strings.Split(words[0], ":")[0]; z.Msgs != len(words) || fmt.Sprint(z.FirstSeq) != first {
			t.Errorf("%s: channelsz %+v, want %d messages from seq %s", tc.channel, z, len(words), first)
		}
	}
}

// TestE2EFileStoreRestart: after SIGTERM and a restart on the same --dir,
// messages are there, a durable resumes after its last ack with its unacked
// messages first, and a client that stayed connected through the restart
// keeps its session and its subscription, whose unacked message comes back
// and whose acked ones do not.
func TestE2EFileStoreRestart(t *testing.T) {
	t.Parallel()
	port, httpPort, dir := e2ePort(t), e2ePort(t), t.TempDir()
	args := []string{"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(httpPort), "-st", "FILE", "--dir", dir}
	p := startProc(t, "first", args...)
	url := natsURL(port)

	// A publish sent while the restarted server does not serve yet is
	// lost: a short PubAckWait makes the retry below come soon.
	stay := e2eConnect(t, url, "stay", stan.PubAckWait(time.Second))
	live := make(chan *stan.Msg, 16)
	if _, err := stay.Subscribe("events", func(m *stan.Msg) { live <- m }, stan.SetManualAckMode(), stan.AckWait(time.Second), stan.DeliverAllAvailable()); err != nil {
		t.Fatal(err)
	}
	sc := e2eConnect(t, url, "durable")
	ch := make(chan *stan.Msg, 16)
	sub, err := sc.Subscribe("events", func(m *stan.Msg) { ch <- m }, stan.DurableName("d"), stan.SetManualAckMode(), stan.DeliverAllAvailable())
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, stay, "events", 1, 5)
	// The durable acks m1..m3, the live subscription m1..m4.
	recvAck := func(ch <-chan *stan.Msg, ackUpTo uint64) {
		t.Helper()
		for seen := map[uint64]bool{}; len(seen) < 5; {
			select {
			case m := <-ch:
				seen[m.Sequence] = true
				if m.Sequence <= ackUpTo {
					if err := m.Ack(); err != nil {
						t.Fatal(err)
					}
				}
			case <-time.After(e2eRecvMax):
				t.Fatalf("got %d of 5 deliveries", len(seen))
			}
		}
	}
	recvAck(ch, 3)
	recvAck(live, 4)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	// Acks are fire-and-forget: wait until the server has them all.
	deadline := time.Now().Add(e2eRecvMax)
	for {
		var z struct {
			Subscriptions []struct {
				ClientID     string `json:"client_id"`
				PendingCount int    `json:"pending_count"`
			} `json:"subscriptions"`
		}
		err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/streaming/channelsz?channel=events&subs=1", httpPort), &z)
		if err == nil && len(z.Subscriptions) == 2 && z.Subscriptions[0].PendingCount+z.Subscriptions[1].PendingCount == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions before the restart: %+v (err %v), want 3 pending in all", z, err)
		}
		time.Sleep(e2ePollEvery)
	}
	if rc := p.term(t); rc != 0 {
		t.Fatalf("exit code after SIGTERM: %d, want 0", rc)
	}
	// Drop what came before the restart: the live subscription's m5 may
	// have been redelivered already.
	for len(live) > 0 {
		<-live
	}

	startProc(t, "restarted", args...)
	// The client that stayed connected reconnects to NATS; its streaming
	// session was persisted, so its publishes are accepted again.
	deadline = time.Now().Add(e2eStartMax)
	for {
		err := stay.Publish("events", []byte("m6"))
		if err == nil {
			break
		}
		if err.Error() == "stan: invalid publish request" || time.Now().After(deadline) {
			t.Fatalf("publish from the client connected across the restart: %v", err)
		}
		time.Sleep(e2ePollEvery) // NATS reconnect in progress
	}
	// Its subscription goes on: m5 again (unacked), m6, never m1..m4.
	var gotRedelivered, gotNew bool
	for !gotRedelivered || !gotNew {
		select {
		case m := <-live:
			switch {
			case m.Sequence == 5 && m.Redelivered:
				gotRedelivered = true
			case m.Sequence == 6 && string(m.Data) == "m6" && !m.Redelivered:
				gotNew = true
			default:
				t.Fatalf("live subscription after restart: seq %d %q redelivered=%v", m.Sequence, m.Data, m.Redelivered)
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		case <-time.After(e2eRecvMax):
			t.Fatalf("live subscription after restart: m5 redelivered %v, m6 %v", gotRedelivered, gotNew)
		}
	}

	sc = e2eConnect(t, url, "durable")
	ch = make(chan *stan.Msg, 16)
	if _, err := sc.Subscribe("events", func(m *stan.Msg) { ch <- m }, stan.DurableName("d"), stan.SetManualAckMode()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case m := <-ch:
			got = append(got, fmt.Sprintf("%d:%s:%v", m.Sequence, m.Data, m.Redelivered))
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		case <-time.After(e2eRecvMax):
			t.Fatalf("durable after restart: got %v", got)
		}
	}
	if want := "4:m4:true 5:m5:true 6:m6:false"; strings.Join(got, " ") != want {
		t.Fatalf("durable after restart: got %q, want %q", strings.Join(got, " "), want)
	}
	if got, want := strings.Join(allFrom(t, sc, "events", 6), " "), "1:m1 2:m2 3:m3 4:m4 5:m5 6:m6"; got != want {
		t.Fatalf("messages after restart: got %q, want %q", got, want)
	}
}

// TestE2EPingsDetectDeadServer: the server answers client PINGs; once the
// process is SIGKILLed, a client with Pings(1, 3) reports the lost
// connection within 10s.
func TestE2EPingsDetectDeadServer(t *testing.T) {
	t.Parallel()
	port := e2ePort(t)
	p := startProc(t, "pinged", "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	url := natsURL(port)
	lost := make(chan error, 1)
	e2eConnect(t, url, "pinger", stan.Pings(1, 3), stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { lost <- err }))

	// Pings are answered: a raw protocol-1 client pings with its connID.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req, _ := proto.Marshal(&pb.ConnectRequest{ClientID: "raw", HeartbeatInbox: nats.NewInbox(), Protocol: 1, ConnID: []byte("raw-conn"), PingInterval: 1, PingMaxOut: 3})
	m, err := nc.Request("_STAN.discover.test-cluster", req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var cr pb.ConnectResponse
	if err := proto.Unmarshal(m.Data, &cr); err != nil || cr.GetError() != "" || cr.GetPingRequests() != "_STAN.discover.test-cluster.pings" {
		t.Fatalf("raw connect: %v %v", &cr, err)
	}
	ping, _ := proto.Marshal(&pb.Ping{ConnID: []byte("raw-conn")})
	if m, err = nc.Request(cr.GetPingRequests(), ping, 5*time.Second); err != nil || len(m.Data) != 0 {
		t.Fatalf("ping: %v, reply % x; want an empty reply", err, m.Data)
	}

	p.kill()
	killed := time.Now()
	select {
	case err := <-lost:
		if !errors.Is(err, stan.ErrMaxPings) {
			t.Fatalf("connection lost with %v, want %v", err, stan.ErrMaxPings)
		}
		t.Logf("connection lost %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the connection-lost handler was not called within 10s of SIGKILL")
	}
}

// cluster is three stanza processes, one embedded NATS server each, joined
// by routes.
type cluster struct {
	names     []string
	args      map[string][]string
	procs     map[string]*proc
	ports     map[string]int
	httpPorts map[string]int
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{names: []string{"a", "b", "c"}, args: map[string][]string{}, procs: map[string]*proc{},
		ports: map[string]int{}, httpPorts: map[string]int{}}
	routePorts := map[string]int{}
	var routes []string
	for _, n := range c.names {
		c.ports[n], c.httpPorts[n], routePorts[n] = e2ePort(t), e2ePort(t), e2ePort(t)
		routes = append(routes, natsURL(routePorts[n]))
	}
	for _, n := range c.names {
		c.args[n] = []string{"-a", "127.0.0.1", "-p", fmt.Sprint(c.ports[n]), "-m", fmt.Sprint(c.httpPorts[n]),
			"--cluster", natsURL(routePorts[n]), "--routes", strings.Join(routes, ","),
			"--clustered", "--cluster_node_id", n, "--cluster_peers", strings.Join(c.names, ","),
			"-st", "FILE", "--dir", t.TempDir()}
		c.procs[n] = startProc(t, "node "+n, c.args[n]...)
	}
	return c
}

func (c *cluster) urls() string {
	var us []string
	for _, n := range c.names {
		us = append(us, natsURL(c.ports[n]))
	}
	return strings.Join(us, ",")
}

// leader polls the nodes' serverz until exactly one of those not excluded
// leads and serves.
func (c *cluster) leader(t *testing.T, exclude string) string {
	t.Helper()
	deadline := time.Now().Add(e2eFailoverMax)
	for {
		var leaders []string
		for _, n := range c.names {
			var z serverz
			err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/streaming/serverz", c.httpPorts[n]), &z)
			if n != exclude && err == nil && z.Role == "Leader" && z.Raft.Serving {
				leaders = append(leaders, n)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaders (excluding %q): %v", exclude, leaders)
		}
		time.Sleep(e2ePollEvery)
	}
}

// TestE2EClusterFailover runs three processes, publishes through the
// leader, SIGKILLs it, publishes until the new leader acks, and checks that
// every acknowledged message survived, in order, with contiguous
// sequences; then restarts the killed node and checks that it catches up.
func TestE2EClusterFailover(t *testing.T) {
	t.Parallel()
	stanzaBinary(t) // not counted in the election time below
	began := time.Now()
	c := startCluster(t)
	first := c.leader(t, "")
	t.Logf("%s leads after %v", first, time.Since(began).Round(time.Millisecond))
	sc := e2eConnect(t, c.urls(), "pub", stan.PubAckWait(time.Second))

	var acked []string           // payloads in the order they were acknowledged
	attempts := map[string]int{} // sends per payload: a retried one may be stored twice
	publish := func(data string) {
		t.Helper()
		deadline := time.Now().Add(e2eFailoverMax)
		for {
			attempts[data]++
			err := sc.Publish("log", []byte(data))
			if err == nil {
				acked = append(acked, data)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %.20s: %v after %d attempts", data, err, attempts[data])
			}
			time.Sleep(e2ePollEvery) // no leader yet, or NATS reconnecting
		}
	}
	for i := range 20 {
		publish(fmt.Sprintf("before-%d", i))
	}
	// Near the NATS max payload: the raft entry is bigger than one raft
	// message chunk.
	large := fmt.Sprintf("large-%0*d", int(sc.NatsConn().MaxPayload())-1024, 0)
	publish(large)
	c.procs[first].kill()
	killed := time.Now()
	publish("after-0")
	t.Logf("first ack %v after the SIGKILL of %s", time.Since(killed).Round(time.Millisecond), first)
	for i := 1; i < 20; i++ {
		publish(fmt.Sprintf("after-%d", i))
	}
	second := c.leader(t, first)
	if second == first {
		t.Fatalf("leader %s was killed but still leads", first)
	}
	z, err := channelInfo(c.httpPorts[second], "log")
	if err != nil {
		t.Fatal(err)
	}
	if z.FirstSeq != 1 || z.LastSeq < uint64(len(acked)) {
		t.Fatalf("new leader %s: channel log %+v, want first 1 and at least %d messages", second, z, len(acked))
	}

	// Read everything back: sequences 1..last exactly once, every acked
	// payload present, payloads sent once stored once, and every copy of
	// an earlier acked payload before every copy of a later one.
	ch := make(chan *stan.Msg, 1024)
	if _, err := sc.Subscribe("log", func(m *stan.Msg) { ch <- m }, stan.DeliverAllAvailable()); err != nil {
		t.Fatal(err)
	}
	bySeq := map[uint64]string{}
	seqsOf := map[string][]uint64{}
	for uint64(len(bySeq)) < z.LastSeq {
		select {
		case m := <-ch:
			if prev, dup := bySeq[m.Sequence]; dup {
				t.Fatalf("seq %d delivered twice (%.20q, then %.20q redelivered=%v)", m.Sequence, prev, m.Data, m.Redelivered)
			}
			if m.Sequence < 1 || m.Sequence > z.LastSeq {
				t.Fatalf("seq %d outside 1..%d", m.Sequence, z.LastSeq)
			}
			bySeq[m.Sequence] = string(m.Data)
			seqsOf[string(m.Data)] = append(seqsOf[string(m.Data)], m.Sequence)
		case <-time.After(e2eRecvMax):
			t.Fatalf("got %d of %d messages", len(bySeq), z.LastSeq)
		}
	}
	var prevMax uint64
	for i, data := range acked {
		seqs := seqsOf[data]
		if len(seqs) == 0 {
			t.Fatalf("acknowledged %.20s (#%d) lost", data, i)
		}
		if len(seqs) > attempts[data] {
			t.Fatalf("%.20s stored %d times (seqs %v) but sent %d times", data, len(seqs), seqs, attempts[data])
		}
		lo, hi := seqs[0], seqs[0]
		for _, s := range seqs {
			lo, hi = min(lo, s), max(hi, s)
		}
		if lo <= prevMax {
			t.Fatalf("acknowledged %.20s (#%d) at seqs %v, not after the previous acknowledged payload (seq %d)", data, i, seqs, prevMax)
		}
		prevMax = hi
	}
	if n := len(seqsOf[large]); n == 0 {
		t.Fatalf("the %d-byte payload is missing", len(large))
	}
	t.Logf("leader %s killed, %s took over; %d payloads acked in %d sends, %d stored", first, second, len(acked), sum(attempts), z.LastSeq)

	// The killed node comes back and catches up.
	startProc(t, "node "+first+" restarted", c.args[first]...)
	restarted := time.Now()
	deadline := time.Now().Add(e2eCatchUpMax)
	for {
		got, err := channelInfo(c.httpPorts[first], "log")
		if err == nil && got.LastSeq == z.LastSeq && got.FirstSeq == 1 && got.Msgs == z.Msgs {
			t.Logf("%s caught up %v after its restart", first, time.Since(restarted).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node %s: channel log %+v (err %v), leader has %+v", first, got, err, z)
		}
		time.Sleep(e2ePollEvery)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
