package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stanza-io/stanza/transport"
)

// fetch polls url until it answers 200 (the server may still be starting)
// and returns the body.
func fetch(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("%d %s %v", resp.StatusCode, b, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval while the server starts
	}
}

// checkMonitoring publishes one message and checks serverz, channelsz and
// metrics on the monitoring port.
func checkMonitoring(t *testing.T, natsURL, httpBase string) {
	t.Helper()
	// Wait until the replica serves, so the client connects at once.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(fetch(t, httpBase+"/streaming/serverz"), `"serving": true`) {
		if time.Now().After(deadline) {
			t.Fatal("the replica does not serve within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	sc := connectRetry(t, natsURL, "mon")
	defer sc.Close()
	if err := sc.Publish("orders", []byte("one")); err != nil {
		t.Fatal(err)
	}
	var z struct {
		ClusterID string `json:"cluster_id"`
		State     string `json:"state"`
		Version   string `json:"version"`
		Clients   int    `json:"clients"`
		TotalMsgs int    `json:"total_msgs"`
		InMsgs    int    `json:"in_msgs"`
	}
	if err := json.Unmarshal([]byte(fetch(t, httpBase+"/streaming/serverz")), &z); err != nil {
		t.Fatal(err)
	}
	if z.ClusterID != "test-cluster" || z.State != "STANDALONE" || z.Version != version || z.Clients != 1 || z.TotalMsgs != 1 || z.InMsgs != 1 {
		t.Errorf("serverz: %+v", z)
	}
	if body := fetch(t, httpBase+"/streaming/channelsz"); !strings.Contains(body, `"orders"`) {
		t.Errorf("channelsz: %s", body)
	}
	if body := fetch(t, httpBase+"/streaming/storez"); !strings.Contains(body, `"type": "MEMORY"`) {
		t.Errorf("storez: %s", body)
	}
	if body := fetch(t, httpBase+"/metrics"); !strings.Contains(body, "\nstanza_msgs_total 1\n") || !strings.Contains(body, "\nstanza_raft_is_leader 1\n") {
		t.Errorf("metrics:\n%s", body)
	}
}

func TestRunMonitoringOnEmbeddedNATS(t *testing.T) {
	port, httpPort := freePort(t), freePort(t)
	stop, log := startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(httpPort))
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	checkMonitoring(t, fmt.Sprintf("nats://127.0.0.1:%d", port), base)
	// nats-server's own endpoints are still there.
	if body := fetch(t, base+"/varz"); !strings.Contains(body, `"server_id"`) {
		t.Errorf("varz: %s", body)
	}
	if rc := stop(); rc != 0 {
		t.Fatalf("exit code %d\n%s", rc, log)
	}
}

func TestRunMonitoringWithExternalNATS(t *testing.T) {
	ns, err := transport.StartEmbedded(transport.EmbeddedOptions{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	httpPort := freePort(t)
	stop, log := startRun(t, "-a", "127.0.0.1", "-ns", ns.ClientURL(), "-m", fmt.Sprint(httpPort))
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	checkMonitoring(t, ns.ClientURL(), base)
	if rc := stop(); rc != 0 {
		t.Fatalf("exit code %d\n%s", rc, log)
	}
	// Stopping stanza closes its monitoring server.
	if resp, err := http.Get(base + "/streaming/serverz"); err == nil {
		resp.Body.Close()
		t.Errorf("monitoring still answers after stop: %d", resp.StatusCode)
	}
}
