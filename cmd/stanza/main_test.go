package main

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects the server's log safely across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun runs the server as main would, until the returned stop is called.
func startRun(t *testing.T, args ...string) (stop func() int, log *syncBuffer) {
	t.Helper()
	log = &syncBuffer{}
	stopCh := make(chan struct{})
	code := make(chan int, 1)
	go func() { code <- run(args, log, log, stopCh) }()
	var once sync.Once
	var rc int
	stop = func() int {
		once.Do(func() { close(stopCh); rc = <-code })
		return rc
	}
	t.Cleanup(func() { stop() })
	return stop, log
}

func connectRetry(t *testing.T, url, id string) stan.Conn {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sc, err := stan.Connect("test-cluster", id, stan.NatsURL(url), stan.ConnectWait(time.Second))
		if err == nil {
			return sc
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the server is still starting: NATS is not listening yet
	}
}

func TestRunFileStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	args := []string{"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-st", "FILE", "--dir", dir}

	stop, log := startRun(t, args...)
	sc := connectRetry(t, url, "writer")
	for i := 1; i <= 5; i++ {
		if err := sc.Publish("events", []byte(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	sc.Close()
	if rc := stop(); rc != 0 {
		t.Fatalf("exit code %d\n%s", rc, log)
	}

	stop, log = startRun(t, args...)
	sc = connectRetry(t, url, "reader")
	defer sc.Close()
	got := make(chan string, 10)
	if _, err := sc.Subscribe("events", func(m *stan.Msg) { got <- fmt.Sprintf("%d:%s", m.Sequence, m.Data) }, stan.DeliverAllAvailable()); err != nil {
		t.Fatal(err)
	}
	var all []string
	for len(all) < 5 {
		select {
		case m := <-got:
			all = append(all, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("after restart got %v\n%s", all, log)
		}
	}
	if want := "1:e1 2:e2 3:e3 4:e4 5:e5"; strings.Join(all, " ") != want {
		t.Fatalf("after restart got %q, want %q", strings.Join(all, " "), want)
	}
	if rc := stop(); rc != 0 {
		t.Fatalf("exit code %d", rc)
	}
}

func TestRunRefusesSecondServerWithSameClusterID(t *testing.T) {
	port := freePort(t)
	_, log := startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	connectRetry(t, fmt.Sprintf("nats://127.0.0.1:%d", port), "probe").Close()
	var out syncBuffer
	rc := run([]string{"-ns", fmt.Sprintf("nats://127.0.0.1:%d", port)}, &out, &out, nil)
	if rc != 1 || !strings.Contains(out.String(), `discovered another streaming server with cluster ID \"test-cluster\"`) {
		t.Fatalf("second server: exit %d, log:\n%s\nfirst server log:\n%s", rc, out.String(), log)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-mm", "abc"}, {"--no_such_flag"}, {"-st", "FILE"}, {"--clustered", "-st", "MEMORY", "--cluster_node_id", "a"}} {
		var out bytes.Buffer
		if rc := run(args, &out, &out, nil); rc != 2 || !strings.HasPrefix(out.String(), "stanza: ") {
			t.Errorf("%v: exit %d, output %q; want exit 2 and a message", args, rc, out.String())
		}
	}
	var out bytes.Buffer
	if rc := run([]string{"-v"}, &out, &out, nil); rc != 0 || !strings.Contains(out.String(), "stanza version") {
		t.Errorf("-v: exit %d, output %q", rc, out.String())
	}
	if rc := run([]string{"-h"}, &out, &out, nil); rc != 0 || !strings.Contains(out.String(), "-cluster_id") {
		t.Errorf("-h: exit %d", rc)
	}
}
