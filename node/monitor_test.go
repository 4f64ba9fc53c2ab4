package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"github.com/stanza-io/stanza/statemachine"
)

// monitorURL serves srv's monitoring endpoints on a test HTTP server.
func monitorURL(t *testing.T, srv *Server, info MonitorInfo) string {
	t.Helper()
	mux := http.NewServeMux()
	srv.RegisterMonitoring(mux, info)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// getJSON fetches url, checks the headers of a monitoring answer and decodes
// the body into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, h, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("GET %s: Content-Type %q", url, got)
	}
	if got := h.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("GET %s: Access-Control-Allow-Origin %q", url, got)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// metrics fetches /metrics and returns the samples by name, checking every
// sample has its HELP and TYPE lines.
// promValue is the value of the metric line named name in a /metrics body.
func promValue(t *testing.T, body, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func metrics(t *testing.T, base string) map[string]uint64 {
	t.Helper()
	code, h, body := get(t, base+MetricsPath)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q\n%s", code, h.Get("Content-Type"), body)
	}
	out := map[string]uint64{}
	help, typ := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "#" && f[1] == "HELP":
			help[f[2]] = true
		case len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && (f[3] == "gauge" || f[3] == "counter" || f[3] == "histogram"):
			typ[f[2]] = true
		case len(f) == 2:
			name, _, _ := strings.Cut(f[0], "{")
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && typ[b] {
					base = b
				}
			}
			if !help[base] || !typ[base] {
				t.Errorf("metric %s without HELP or TYPE", f[0])
			}
			if strings.HasSuffix(name, "_sum") && base != name {
				if _, err := strconv.ParseFloat(f[1], 64); err != nil {
					t.Fatalf("metric line %q: %v", line, err)
				}
				continue
			}
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			out[f[0]] = v
		default:
			t.Fatalf("unexpected metrics line %q", line)
		}
	}
	return out
}

func TestMonitorStandalone(t *testing.T) {
	ts := startTestServer(t, "", func(c *Config) {
		c.Limits.PerChannel = map[string]statemachine.ChannelLimits{"foo.>": {MaxMsgs: 10}}
	})
	start := time.Now()
	base := monitorURL(t, ts.srv, MonitorInfo{ClusterID: "test-cluster", ServerID: "SID", Version: "9.9", StoreType: "MEMORY", Start: start})

	alice := connect(t, ts, "alice")
	bob := connect(t, ts, "bob")
	carol := connect(t, ts, "carol")

	// bob's durable sees nothing and goes offline before anything is published.
	dur, err := bob.Subscribe("foo", func(*stan.Msg) {}, stan.DurableName("dur"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dur.Close(); err != nil {
		t.Fatal(err)
	}
	// alice never acks: two deliveries fill her MaxInflight.
	if _, err := alice.Subscribe("foo", func(*stan.Msg) {}, stan.SetManualAckMode(), stan.MaxInflight(2), stan.AckWait(7*time.Second), stan.DeliverAllAvailable()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Subscribe("baz", func(*stan.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.QueueSubscribe("bar", "grp", func(*stan.Msg) {}, stan.DurableName("dq")); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.QueueSubscribe("bar", "q1", func(*stan.Msg) {}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := alice.Publish("foo", []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := alice.Publish("bar", []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("serverz", func(t *testing.T) {
		var z Serverz
		getJSON(t, base+ServerzPath, &z)
		if z.ClusterID != "test-cluster" || z.ServerID != "SID" || z.Version != "9.9" || !strings.HasPrefix(z.GoVersion, "go") ||
			z.State != "STANDALONE" || z.Role != "" || z.NodeID != "" || z.Uptime == "" || !z.Start.Equal(start) || z.Now.Before(start) {
			t.Errorf("serverz identity: %+v", z)
		}
		// Subscriptions count the offline durable, as nats-streaming-server does.
		if z.Clients != 3 || z.Subscriptions != 5 || z.Channels != 3 || z.TotalMsgs != 5 || z.TotalBytes == 0 {
			t.Errorf("serverz counts: clients %d subs %d channels %d msgs %d bytes %d; want 3 5 3 5 >0",
				z.Clients, z.Subscriptions, z.Channels, z.TotalMsgs, z.TotalBytes)
		}
		// Out: alice got 2 of foo's 3, each queue group got both of bar's.
		if z.InMsgs != 5 || z.InBytes == 0 || z.OutMsgs != 6 || z.OutBytes == 0 {
			t.Errorf("serverz traffic: in %d/%dB out %d/%dB; want 5 in, 6 out", z.InMsgs, z.InBytes, z.OutMsgs, z.OutBytes)
		}
		r := z.Raft
		if r == nil || r.State != "Leader" || !r.Serving || r.Term == 0 || r.Applied == 0 || r.Commit < r.Applied || r.Leader != r.ID ||
			r.ID != strconv.FormatUint(RaftID("a"), 16) || len(r.Progress) != 1 || r.Progress[0].NodeID != "a" || r.Progress[0].Match < r.Applied {
			t.Errorf("serverz raft: %+v", r)
		}
		// The field names are nats-streaming-server's.
		var raw map[string]any
		getJSON(t, base+ServerzPath, &raw)
		for _, k := range []string{"cluster_id", "server_id", "version", "go", "state", "now", "start_time", "uptime", "clients",
			"subscriptions", "channels", "total_msgs", "total_bytes", "in_msgs", "in_bytes", "out_msgs", "out_bytes", "raft"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("serverz has no %q", k)
			}
		}
		if _, ok := raw["role"]; ok {
			t.Error("standalone serverz reports a role")
		}
	})

	t.Run("storez", func(t *testing.T) {
		var z Storez
		getJSON(t, base+StorezPath, &z)
		defaults := ChannelLimitsz{MaxMsgs: 1000000, MaxBytes: 1024000000, MaxSubscriptions: 1000}
		if z.Type != "MEMORY" || z.TotalMsgs != 5 || z.TotalBytes == 0 || z.Limits.MaxChannels != 100 || z.Limits.ChannelLimitsz != defaults {
			t.Errorf("storez: %+v", z)
		}
		if foo := z.Limits.Channels["foo.>"]; len(z.Limits.Channels) != 1 || foo == nil || *foo != (ChannelLimitsz{MaxMsgs: 10}) {
			t.Errorf("storez per-channel limits: %v", z.Limits.Channels)
		}
		_, _, body := get(t, base+StorezPath)
		for _, k := range []string{`"max_channels": 100`, `"max_msgs": 1000000`, `"max_bytes": 1024000000`, `"max_age": 0`,
			`"max_subscriptions": 1000`, `"max_inactivity": 0`, `"channels": {`} {
			if !strings.Contains(body, k) {
				t.Errorf("storez has no %s:\n%s", k, body)
			}
		}
	})

	t.Run("clientsz", func(t *testing.T) {
		var z Clientsz
		getJSON(t, base+ClientszPath, &z)
		var ids []string
		for _, c := range z.Clients {
			ids = append(ids, fmt.Sprintf("%s:%d", c.ID, c.SubsCount))
			if c.HBInbox == "" || c.Subscriptions != nil {
				t.Errorf("client %+v", c)
			}
		}
		if z.Offset != 0 || z.Limit != 1024 || z.Count != 3 || z.Total != 3 || strings.Join(ids, " ") != "alice:2 bob:0 carol:2" {
			t.Errorf("clientsz: offset %d limit %d count %d total %d clients %v", z.Offset, z.Limit, z.Count, z.Total, ids)
		}

		getJSON(t, base+ClientszPath+"?offset=1&limit=1", &z)
		if z.Offset != 1 || z.Limit != 1 || z.Count != 1 || z.Total != 3 || len(z.Clients) != 1 || z.Clients[0].ID != "bob" {
			t.Errorf("clientsz page: %+v", z)
		}
		z = Clientsz{}
		getJSON(t, base+ClientszPath+"?offset=5", &z)
		if z.Count != 0 || z.Total != 3 || z.Clients == nil {
			t.Errorf("clientsz past the end: %+v", z)
		}

		z = Clientsz{}
		getJSON(t, base+ClientszPath+"?subs=1", &z)
		if len(z.Clients) != 3 || len(z.Clients[0].Subscriptions) != 2 || len(z.Clients[0].Subscriptions["foo"]) != 1 ||
			len(z.Clients[2].Subscriptions["bar"]) != 2 || z.Clients[1].Subscriptions != nil {
			t.Errorf("clientsz subs=1: %+v", z.Clients)
		}

		var c Clientz
		getJSON(t, base+ClientszPath+"?client=alice&subs=1", &c)
		if c.ID != "alice" || c.SubsCount != 2 || len(c.Subscriptions["foo"]) != 1 {
			t.Fatalf("clientz alice: %+v", c)
		}
		s := c.Subscriptions["foo"][0]
		if s.ClientID != "alice" || s.Inbox == "" || s.AckInbox == "" || s.DurableName != "" || s.QueueName != "" || s.IsDurable || s.IsOffline ||
			s.MaxInflight != 2 || s.AckWait != 7 || s.LastSent != 2 || s.PendingCount != 2 || !s.IsStalled {
			t.Errorf("alice's foo subscription: %+v", s)
		}
		c = Clientz{}
		getJSON(t, base+ClientszPath+"?client=bob", &c)
		if c.ID != "bob" || c.SubsCount != 0 || c.HBInbox == "" {
			t.Errorf("clientz bob: %+v", c)
		}

		code, _, body := get(t, base+ClientszPath+"?client=nobody")
		if code != http.StatusNotFound || strings.TrimSpace(body) != "Client nobody not found" {
			t.Errorf("unknown client: %d %q", code, body)
		}
	})

	t.Run("channelsz", func(t *testing.T) {
		var z Channelsz
		getJSON(t, base+ChannelszPath, &z)
		if z.Count != 3 || z.Total != 3 || z.Limit != 1024 || !slices.Equal(z.Names, []string{"bar", "baz", "foo"}) || z.Channels != nil {
			t.Errorf("channelsz: %+v", z)
		}
		z = Channelsz{}
		getJSON(t, base+ChannelszPath+"?offset=1&limit=1", &z)
		if z.Count != 1 || z.Total != 3 || z.Offset != 1 || z.Limit != 1 || !slices.Equal(z.Names, []string{"baz"}) {
			t.Errorf("channelsz page: %+v", z)
		}

		z = Channelsz{}
		getJSON(t, base+ChannelszPath+"?subs=1&offset=2", &z)
		if z.Count != 1 || z.Total != 3 || z.Names != nil || len(z.Channels) != 1 {
			t.Fatalf("channelsz subs=1 offset=2: %+v", z)
		}
		foo := z.Channels[0]
		if foo.Name != "foo" || foo.Msgs != 3 || foo.Bytes == 0 || foo.FirstSeq != 1 || foo.LastSeq != 3 || foo.SubsCount != 2 || len(foo.Subscriptions) != 2 {
			t.Fatalf("channel foo: %+v", foo)
		}
		// Subscriptions come in creation order: bob's durable first.
		off := foo.Subscriptions[0]
		if off.ClientID != "bob" || !off.IsOffline || !off.IsDurable || off.DurableName != "dur" || off.Inbox != "" || off.AckInbox != "" || off.PendingCount != 0 {
			t.Errorf("bob's offline durable: %+v", off)
		}
		if s := foo.Subscriptions[1]; s.ClientID != "alice" || s.PendingCount != 2 || !s.IsStalled {
			t.Errorf("alice's subscription: %+v", s)
		}

		var bar Channelz
		getJSON(t, base+ChannelszPath+"?channel=bar&subs=1", &bar)
		if bar.Name != "bar" || bar.Msgs != 2 || bar.FirstSeq != 1 || bar.LastSeq != 2 || bar.SubsCount != 2 || len(bar.Subscriptions) != 2 {
			t.Fatalf("channel bar: %+v", bar)
		}
		dq, q1 := bar.Subscriptions[0], bar.Subscriptions[1]
		if dq.QueueName != "dq:grp" || dq.DurableName != "dq" || !dq.IsDurable || dq.IsOffline || dq.ClientID != "carol" || dq.LastSent != 2 {
			t.Errorf("durable queue member: %+v", dq)
		}
		if q1.QueueName != "q1" || q1.DurableName != "" || q1.IsDurable || q1.LastSent != 2 {
			t.Errorf("queue member: %+v", q1)
		}

		// A channel created by a subscription alone: no message ever.
		code, _, body := get(t, base+ChannelszPath+"?channel=baz")
		var baz Channelz
		if err := json.Unmarshal([]byte(body), &baz); err != nil || code != http.StatusOK {
			t.Fatalf("channel baz: %d %v %s", code, err, body)
		}
		if baz.Msgs != 0 || baz.FirstSeq != 0 || baz.LastSeq != 0 || baz.SubsCount != 1 || strings.Contains(body, "subscriptions") {
			t.Errorf("channel baz: %s", body)
		}
		for _, k := range []string{`"name"`, `"msgs"`, `"bytes"`, `"first_seq"`, `"last_seq"`, `"subs_count"`} {
			if !strings.Contains(body, k) {
				t.Errorf("channelz has no %s: %s", k, body)
			}
		}

		code, _, body = get(t, base+ChannelszPath+"?channel=nope")
		if code != http.StatusNotFound || strings.TrimSpace(body) != "Channel nope not found" {
			t.Errorf("unknown channel: %d %q", code, body)
		}
	})

	t.Run("subscriptionz field names", func(t *testing.T) {
		_, _, body := get(t, base+ChannelszPath+"?channel=bar&subs=1")
		for _, k := range []string{"client_id", "inbox", "ack_inbox", "durable_name", "queue_name", "is_durable", "is_offline",
			"max_inflight", "ack_wait", "last_sent", "pending_count", "is_stalled"} {
			if !strings.Contains(body, `"`+k+`": `) {
				t.Errorf("subscriptionz has no %q: %s", k, body)
			}
		}
	})

	t.Run("isFTActive", func(t *testing.T) {
		if code, _, _ := get(t, base+IsFTActivePath); code != http.StatusNoContent {
			t.Errorf("isFTActive: %d, want 204", code)
		}
	})

	t.Run("jsonp", func(t *testing.T) {
		code, h, body := get(t, base+ServerzPath+"?callback=show.it")
		if code != http.StatusOK || h.Get("Content-Type") != "application/javascript" || !strings.HasPrefix(body, "show.it({") || !strings.HasSuffix(body, "})") {
			t.Errorf("jsonp: %d %q %q", code, h.Get("Content-Type"), body)
		}
		if code, _, _ := get(t, base+ServerzPath+"?callback=alert(1)//"); code != http.StatusBadRequest {
			t.Errorf("script in callback: %d, want 400", code)
		}
	})

	t.Run("root", func(t *testing.T) {
		code, _, body := get(t, base+MonitorRootPath)
		if code != http.StatusOK || !strings.Contains(body, "serverz") {
			t.Errorf("root: %d %s", code, body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		// carol's two queue members ack bar's two messages on their own
		// time: wait for the four acks to be applied.
		eventually(t, "four acks applied", func() bool { return metrics(t, base)["stanza_acks_total"] == 4 })
		m := metrics(t, base)
		want := map[string]uint64{"stanza_clients": 3, "stanza_subscriptions": 5, "stanza_channels": 3, "stanza_msgs_total": 5,
			"stanza_in_msgs_total": 5, "stanza_out_msgs_total": 6, "stanza_raft_is_leader": 1}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %d, want %d", k, m[k], v)
			}
		}
		for _, k := range []string{"stanza_bytes_total", "stanza_in_bytes_total", "stanza_out_bytes_total", "stanza_raft_term",
			"stanza_raft_commit_index", "stanza_raft_applied_index", "stanza_acks_total", "stanza_commit_latency_seconds_count",
			"stanza_log_save_seconds_count", `stanza_commit_latency_seconds_bucket{le="+Inf"}`} {
			if m[k] == 0 {
				t.Errorf("%s = 0 or missing", k)
			}
		}
		// A single node proposes and applies in one loop of its core:
		// the latency still counts the time between (it was always 0).
		_, _, body := get(t, base+MetricsPath)
		if sum := promValue(t, body, "stanza_commit_latency_seconds_sum"); sum <= 0 {
			t.Errorf("stanza_commit_latency_seconds_sum = %v, want > 0", sum)
		}
	})

	// Closing a client takes its subscriptions: the durable queue group
	// keeps a shadow, offline, still counted.
	if err := carol.Close(); err != nil {
		t.Fatal(err)
	}
	var bar Channelz
	getJSON(t, base+ChannelszPath+"?channel=bar&subs=1", &bar)
	if bar.SubsCount != 1 || len(bar.Subscriptions) != 1 || !bar.Subscriptions[0].IsOffline || bar.Subscriptions[0].QueueName != "dq:grp" ||
		bar.Subscriptions[0].ClientID != "carol" {
		t.Errorf("bar after carol closed: %+v", bar.Subscriptions)
	}
	eventually(t, "clients metric drops to 2", func() bool { return metrics(t, base)["stanza_clients"] == 2 })
	code, _, _ := get(t, base+ClientszPath+"?client=carol")
	if code != http.StatusNotFound {
		t.Errorf("closed client: %d, want 404", code)
	}

	// A stopped replica answers 503 rather than hanging.
	ts.stop()
	if code, _, _ := get(t, base+ServerzPath); code != http.StatusServiceUnavailable {
		t.Errorf("serverz of a stopped replica: %d, want 503", code)
	}
}

// TestMonitorCluster checks the clustered view: every replica reports
// CLUSTERED, its role and the leader, the leader reports every voter's
// progress, and followers report the replicated state.
func TestMonitorCluster(t *testing.T) {
	ns := startSharedNATS(t)
	names := []string{"a", "b", "c"}
	bases := map[string]string{}
	for _, name := range names {
		srv := startReplica(t, ns, name, names, nil)
		bases[name] = monitorURL(t, srv, MonitorInfo{ClusterID: "test-cluster", ServerID: name, NodeID: name, Clustered: true, StoreType: "FILE", Start: time.Now()})
	}
	sc := connect(t, &testServer{url: ns.ClientURL()}, "pub")
	if err := sc.Publish("foo", []byte("x")); err != nil {
		t.Fatal(err)
	}

	leaderID := ""
	eventually(t, "every replica applied the publish under one leader", func() bool {
		leaders := 0
		leaderID = ""
		for _, name := range names {
			var z Serverz
			getJSON(t, bases[name]+ServerzPath, &z)
			if z.TotalMsgs != 1 || z.Clients != 1 || z.Raft.Leader == "" || leaderID != "" && z.Raft.Leader != leaderID {
				return false
			}
			leaderID = z.Raft.Leader
			if z.Role == "Leader" {
				leaders++
			}
		}
		return leaders == 1
	})
	for _, name := range names {
		var z Serverz
		getJSON(t, bases[name]+ServerzPath, &z)
		if z.State != "CLUSTERED" || z.NodeID != name {
			t.Errorf("%s: state %q node_id %q", name, z.State, z.NodeID)
		}
		isLeader := z.Raft.ID == leaderID
		switch {
		case isLeader && (z.Role != "Leader" || len(z.Raft.Progress) != 3 || z.InMsgs != 1):
			t.Errorf("leader %s: role %s progress %+v in_msgs %d", name, z.Role, z.Raft.Progress, z.InMsgs)
		case !isLeader && (z.Role != "Follower" || len(z.Raft.Progress) != 0 || z.InMsgs != 0):
			t.Errorf("follower %s: role %s progress %+v in_msgs %d", name, z.Role, z.Raft.Progress, z.InMsgs)
		}
		if isLeader {
			var got []string
			for _, p := range z.Raft.Progress {
				got = append(got, p.NodeID)
				if p.Match == 0 || p.Next <= p.Match {
					t.Errorf("progress of %s: %+v", p.NodeID, p)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, names) {
				t.Errorf("progress peers %v, want %v", got, names)
			}
		}
		var s Storez
		getJSON(t, bases[name]+StorezPath, &s)
		if s.Type != "RAFT_FILE" || s.TotalMsgs != 1 {
			t.Errorf("%s storez: type %q msgs %d", name, s.Type, s.TotalMsgs)
		}
		m := metrics(t, bases[name])
		if m["stanza_raft_is_leader"] != map[bool]uint64{true: 1}[isLeader] || m["stanza_msgs_total"] != 1 {
			t.Errorf("%s metrics: %v", name, m)
		}
	}
}

func TestUptime(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{59 * time.Second, "59s"},
		{61 * time.Second, "1m1s"},
		{time.Hour, "1h0m0s"},
		{26*time.Hour + 3*time.Minute + 4*time.Second, "1d2h3m4s"},
		{366 * 24 * time.Hour, "1y1d0h0m0s"},
	} {
		if got := uptime(tc.d); got != tc.want {
			t.Errorf("uptime(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
