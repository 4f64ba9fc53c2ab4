package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stanza-io/stanza/statemachine"
)

func TestDefaultOptions(t *testing.T) {
	got, err := ParseOptions(nil)
	if err != nil {
		t.Fatalf("ParseOptions(nil): %v", err)
	}
	want := DefaultOptions()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseOptions(nil) = %+v, want %+v", got, want)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ClusterID", got.ClusterID, "test-cluster"},
		{"DiscoverPrefix", got.DiscoverPrefix, "_STAN.discover"},
		{"Host", got.Host, "0.0.0.0"},
		{"Port", got.Port, 4222},
		{"HTTPPort", got.HTTPPort, 0},
		{"NATSServerURL", got.NATSServerURL, ""},
		{"StoreType", got.StoreType, "MEMORY"},
		{"Limits", got.Limits, statemachine.DefaultLimits()},
		{"HBInterval", got.HBInterval, 30 * time.Second},
		{"HBTimeout", got.HBTimeout, 10 * time.Second},
		{"HBFailCount", got.HBFailCount, 10},
		{"Clustered", got.Clustered, false},
		{"ClusterSync", got.ClusterSync, true},
		{"SnapshotEntries", got.SnapshotEntries, uint64(10000)},
		{"LogPath", got.LogPath, ""},
		{"Ignored", len(got.Ignored), 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := got.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		want func(o *Options)
	}{
		{[]string{"-cid", "c1"}, func(o *Options) { o.ClusterID = "c1" }},
		{[]string{"--cluster_id", "c2"}, func(o *Options) { o.ClusterID = "c2" }},
		{[]string{"-cluster_id=c3"}, func(o *Options) { o.ClusterID = "c3" }},
		{[]string{"-a", "127.0.0.1"}, func(o *Options) { o.Host = "127.0.0.1" }},
		{[]string{"--addr", "10.0.0.1"}, func(o *Options) { o.Host = "10.0.0.1" }},
		{[]string{"-net", "10.0.0.2"}, func(o *Options) { o.Host = "10.0.0.2" }},
		{[]string{"--net", "10.0.0.3"}, func(o *Options) { o.Host = "10.0.0.3" }},
		{[]string{"-p", "4333"}, func(o *Options) { o.Port = 4333 }},
		{[]string{"--port", "-1"}, func(o *Options) { o.Port = -1 }},
		{[]string{"-m", "8222"}, func(o *Options) { o.HTTPPort = 8222 }},
		{[]string{"--http_port", "8223"}, func(o *Options) { o.HTTPPort = 8223 }},
		{[]string{"--profile", "6060"}, func(o *Options) { o.ProfPort = 6060 }},
		{[]string{"-ns", "nats://h:4222"}, func(o *Options) { o.NATSServerURL = "nats://h:4222" }},
		{[]string{"--nats_server", "nats://a:1,nats://b:2"}, func(o *Options) { o.NATSServerURL = "nats://a:1,nats://b:2" }},
		{[]string{"-st", "file"}, func(o *Options) { o.StoreType = "FILE" }},
		{[]string{"--store", "Memory"}, func(o *Options) { o.StoreType = "MEMORY" }},
		{[]string{"--dir", "/data"}, func(o *Options) { o.Dir = "/data" }},
		{[]string{"-mc", "7"}, func(o *Options) { o.Limits.MaxChannels = 7 }},
		{[]string{"--max_channels", "0"}, func(o *Options) { o.Limits.MaxChannels = 0 }},
		{[]string{"-msu", "8"}, func(o *Options) { o.Limits.MaxSubscriptions = 8 }},
		{[]string{"--max_subs", "9"}, func(o *Options) { o.Limits.MaxSubscriptions = 9 }},
		{[]string{"-mm", "11"}, func(o *Options) { o.Limits.MaxMsgs = 11 }},
		{[]string{"--max_msgs", "12"}, func(o *Options) { o.Limits.MaxMsgs = 12 }},
		{[]string{"-mb", "1GB"}, func(o *Options) { o.Limits.MaxBytes = 1 << 30 }},
		{[]string{"--max_bytes", "512MB"}, func(o *Options) { o.Limits.MaxBytes = 512 << 20 }},
		{[]string{"-max_bytes=100kb"}, func(o *Options) { o.Limits.MaxBytes = 100 << 10 }},
		{[]string{"-mb", "12345"}, func(o *Options) { o.Limits.MaxBytes = 12345 }},
		{[]string{"-ma", "1h"}, func(o *Options) { o.Limits.MaxAgeNanos = int64(time.Hour) }},
		{[]string{"--max_age", "90s"}, func(o *Options) { o.Limits.MaxAgeNanos = int64(90 * time.Second) }},
		{[]string{"-mi", "1m"}, func(o *Options) { o.Limits.MaxInactivityNanos = int64(time.Minute) }},
		{[]string{"--max_inactivity", "2h30m"}, func(o *Options) { o.Limits.MaxInactivityNanos = int64(150 * time.Minute) }},
		{[]string{"-hbi", "5s"}, func(o *Options) { o.HBInterval = 5 * time.Second }},
		{[]string{"--hb_interval", "1m"}, func(o *Options) { o.HBInterval = time.Minute }},
		{[]string{"-hbt", "2s"}, func(o *Options) { o.HBTimeout = 2 * time.Second }},
		{[]string{"--hb_timeout", "250ms"}, func(o *Options) { o.HBTimeout = 250 * time.Millisecond }},
		{[]string{"-hbf", "3"}, func(o *Options) { o.HBFailCount = 3 }},
		{[]string{"--hb_fail_count", "4"}, func(o *Options) { o.HBFailCount = 4 }},
		{[]string{"--clustered"}, func(o *Options) { o.Clustered = true }},
		{[]string{"--clustered=true"}, func(o *Options) { o.Clustered = true }},
		{[]string{"--cluster_node_id", "a"}, func(o *Options) { o.NodeID = "a" }},
		{[]string{"--cluster_peers", "a, b,,c"}, func(o *Options) { o.Peers = []string{"a", "b", "c"} }},
		{[]string{"--cluster_bootstrap"}, func(o *Options) { o.Bootstrap = true }},
		{[]string{"--cluster_log_path", "/raft"}, func(o *Options) { o.LogPath = "/raft" }},
		{[]string{"--cluster_sync=false"}, func(o *Options) { o.ClusterSync = false }},
		{[]string{"-cluster_sync=false", "-cluster_sync"}, func(o *Options) { o.ClusterSync = true }},
		{[]string{"--cluster_snapshot_entries", "42"}, func(o *Options) { o.SnapshotEntries = 42 }},
		{[]string{"--cluster", "nats://127.0.0.1:6222"}, func(o *Options) { o.NATSCluster = "nats://127.0.0.1:6222" }},
		{[]string{"--routes", "nats://a:6222,nats://b:6222"}, func(o *Options) { o.Routes = []string{"nats://a:6222", "nats://b:6222"} }},
		{[]string{"-SD"}, func(o *Options) { o.Debug = true }},
		{[]string{"--stan_debug"}, func(o *Options) { o.Debug = true }},
		{[]string{"-SV"}, func(o *Options) { o.Trace = true }},
		{[]string{"--stan_trace=true"}, func(o *Options) { o.Trace = true }},
		{[]string{"-SDV"}, func(o *Options) { o.Debug, o.Trace = true, true }},
		{[]string{"-SDV", "-SV=false"}, func(o *Options) { o.Debug = true }},
		{[]string{"--log_json"}, func(o *Options) { o.LogJSON = true }},
		{[]string{"--user", "u", "--pass", "p"}, func(o *Options) { o.User, o.Pass = "u", "p" }},
		{[]string{"-secure"}, func(o *Options) { o.Secure = true }},
		{[]string{"-tls_client_cert", "c.pem", "-tls_client_key", "k.pem", "-tls_client_cacert", "ca.pem"}, func(o *Options) {
			o.TLSClientCert, o.TLSClientKey, o.TLSClientCACert = "c.pem", "k.pem", "ca.pem"
		}},
		{[]string{"--ft_group", "g"}, func(o *Options) { o.FTGroup = "g" }},
		{[]string{"-v"}, func(o *Options) { o.ShowVersion = true }},
		{[]string{"--version"}, func(o *Options) { o.ShowVersion = true }},
		// Accepted for compatibility, recorded, without effect.
		{[]string{"--file_sync=false", "-file_buffer_size", "2MB", "--cluster_log_cache_size", "512"}, func(o *Options) {
			o.Ignored = []string{"-file_sync", "-file_buffer_size", "-cluster_log_cache_size"}
		}},
		{[]string{"-D", "-T", "--file_slice_max_age", "1h", "--io_batch_size", "10"}, func(o *Options) {
			o.Ignored = []string{"-D", "-T", "-file_slice_max_age", "-io_batch_size"}
		}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := ParseOptions(tt.args)
			if err != nil {
				t.Fatalf("ParseOptions(%q): %v", tt.args, err)
			}
			want := DefaultOptions()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseOptions(%q)\n got %+v\nwant %+v", tt.args, got, want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1024", 1024},
		{"1KB", 1 << 10},
		{"1kb", 1 << 10},
		{"100KB", 100 << 10},
		{"512MB", 512 << 20},
		{"512mb", 512 << 20},
		{"1GB", 1 << 30},
		{"2Gb", 2 << 30},
		{"3GiB", 3 << 30},
		{"1TB", 1 << 40},
		{"10B", 10},
		// The NATS config parser's suffixes without B are powers of 1000.
		{"1k", 1000},
		{"1M", 1000000},
		{"1g", 1000000000},
		{" 5 MB ", 5 << 20},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if err != nil {
			t.Errorf("parseSize(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("parseSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "abc", "GB", "1XB", "1.5GB", "1 G B", "9999999999999GB", "--1"} {
		if got, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, got)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings of the error
		is   error
	}{
		{args: []string{"--no_such_flag"}, want: []string{"no_such_flag", "not defined"}},
		{args: []string{"-mm", "abc"}, want: []string{"-mm", `"abc"`}},
		{args: []string{"--max_subs", "1.5"}, want: []string{"-max_subs", `"1.5"`}},
		{args: []string{"-mb", "10XB"}, want: []string{"-mb", `"10XB"`}},
		{args: []string{"-ma", "forever"}, want: []string{"-ma", `"forever"`}},
		{args: []string{"-hbi", "5"}, want: []string{"-hbi", `"5"`}},
		{args: []string{"-hbf", "x"}, want: []string{"-hbf", `"x"`}},
		{args: []string{"-p", "http"}, want: []string{"-p", `"http"`}},
		{args: []string{"--cluster_sync=maybe"}, want: []string{"-cluster_sync", `"maybe"`}},
		{args: []string{"--cluster_snapshot_entries", "-1"}, want: []string{"-cluster_snapshot_entries", `"-1"`}},
		{args: []string{"-st", "SQL"}, want: []string{"SQL store is not supported by stanza"}, is: errSQLStore},
		{args: []string{"--store", "sql"}, is: errSQLStore},
		{args: []string{"-st", "redis"}, want: []string{"-st", `"redis"`, "unknown store type"}},
		{args: []string{"--encrypt"}, want: []string{"encrypt", "not supported by stanza"}, is: errUnsupported},
		{args: []string{"--file_compact_frag", "lots"}, want: []string{"-file_compact_frag", `"lots"`}},
		{args: []string{"-c", "a.conf", "-sc", "b.conf"}, want: []string{"-sc", "a.conf", "one config file"}},
		{args: []string{"-c", filepath.Join(os.TempDir(), "stanza-no-such-file.conf")}, want: []string{"stanza-no-such-file.conf"}},
		{args: []string{"-cid", "x", "extra"}, want: []string{`"extra"`}},
		{args: []string{"-h"}, is: flag.ErrHelp},
		{args: []string{"--help"}, is: flag.ErrHelp},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := ParseOptions(tt.args)
			if err == nil {
				t.Fatalf("ParseOptions(%q) succeeded, want an error", tt.args)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseOptions(%q) error %q does not contain %q", tt.args, err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("ParseOptions(%q) error %q is not %q", tt.args, err, tt.is)
			}
		})
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stan.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const fullConfig = `
# NATS keys at top level, streaming keys in the streaming block.
port: 4333
http_port: 8333
authorization { user: nu, password: np }
cluster {
  listen: 127.0.0.1:6333
  routes: [nats://10.0.0.1:6333, nats://10.0.0.2:6333]
}
streaming {
  id: my-cluster
  discover_prefix: "_MY.discover"
  store: file
  dir: /var/stan
  sd: true
  stan_trace: false
  hb_interval: "15s"
  hbt: "3s"
  server_to_client_hb_fail_count: 4
  username: su
  password: sp
  secure: true
  tls { client_cert: c.pem, client_key: k.pem, client_ca: ca.pem }
  file { compact_enabled: false, buffer_size: 2MB }
  store_limits {
    max_channels: 50
    max_msgs: 1000
    max_bytes: 10MB
    max_age: "24h"
    mi: "1h"
    channels {
      "foo.*": { max_msgs: 10, max_age: "1h" }
      "foo.bar": { max_bytes: 0, msu: 5 }
      "bar.>": { mm: 0, max_inactivity: "0s" }
    }
  }
  cluster {
    node_id: a
    peers: [a, b, c]
    log_path: /var/raft
    sync: false
    bootstrap: true
    log_cache_size: 1024
    snapshot_entries: 500
  }
}
`

func TestConfigFile(t *testing.T) {
	path := writeConfig(t, fullConfig)
	for _, flagName := range []string{"-c", "--config", "-sc", "--stan_config"} {
		t.Run(flagName, func(t *testing.T) {
			got, err := ParseOptions([]string{flagName, path})
			if err != nil {
				t.Fatalf("ParseOptions: %v", err)
			}
			want := DefaultOptions()
			want.ConfigFile = path
			want.Port, want.HTTPPort = 4333, 8333
			want.NATSCluster = "nats://127.0.0.1:6333"
			want.Routes = []string{"nats://10.0.0.1:6333", "nats://10.0.0.2:6333"}
			want.ClusterID, want.DiscoverPrefix = "my-cluster", "_MY.discover"
			want.StoreType, want.Dir = "FILE", "/var/stan"
			want.Debug = true
			want.HBInterval, want.HBTimeout, want.HBFailCount = 15*time.Second, 3*time.Second, 4
			// The streaming keys are applied after the NATS authorization block.
			want.User, want.Pass = "su", "sp"
			want.Secure = true
			want.TLSClientCert, want.TLSClientKey, want.TLSClientCACert = "c.pem", "k.pem", "ca.pem"
			want.Limits = statemachine.Limits{
				MaxChannels: 50,
				ChannelLimits: statemachine.ChannelLimits{
					MaxSubscriptions:   statemachine.DefaultMaxSubscriptions,
					MaxMsgs:            1000,
					MaxBytes:           10 << 20,
					MaxAgeNanos:        int64(24 * time.Hour),
					MaxInactivityNanos: int64(time.Hour),
				},
				PerChannel: map[string]statemachine.ChannelLimits{
					"foo.*":   {MaxMsgs: 10, MaxAgeNanos: int64(time.Hour)},
					"foo.bar": {MaxBytes: -1, MaxSubscriptions: 5},
					"bar.>":   {MaxMsgs: -1, MaxInactivityNanos: -1},
				},
			}
			want.Clustered, want.NodeID, want.Peers = true, "a", []string{"a", "b", "c"}
			want.LogPath, want.ClusterSync, want.Bootstrap = "/var/raft", false, true
			want.SnapshotEntries = 500
			want.Ignored = []string{"streaming.cluster.log_cache_size", "streaming.file"}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ParseOptions\n got %+v\nwant %+v", got, want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestConfigPerChannelEffectiveLimits(t *testing.T) {
	got, err := ParseOptions([]string{"-c", writeConfig(t, fullConfig)})
	if err != nil {
		t.Fatalf("ParseOptions: %v", err)
	}
	tests := []struct {
		channel string
		want    statemachine.ChannelLimits
	}{
		// foo.* then foo.bar: 0 in the foo.bar block made max_bytes unlimited.
		{"foo.bar", statemachine.ChannelLimits{MaxSubscriptions: 5, MaxMsgs: 10, MaxBytes: 0, MaxAgeNanos: int64(time.Hour), MaxInactivityNanos: int64(time.Hour)}},
		{"foo.baz", statemachine.ChannelLimits{MaxSubscriptions: 1000, MaxMsgs: 10, MaxBytes: 10 << 20, MaxAgeNanos: int64(time.Hour), MaxInactivityNanos: int64(time.Hour)}},
		// bar.>: 0 means unlimited messages and no inactivity deletion.
		{"bar.x.y", statemachine.ChannelLimits{MaxSubscriptions: 1000, MaxMsgs: 0, MaxBytes: 10 << 20, MaxAgeNanos: int64(24 * time.Hour), MaxInactivityNanos: 0}},
		{"other", statemachine.ChannelLimits{MaxSubscriptions: 1000, MaxMsgs: 1000, MaxBytes: 10 << 20, MaxAgeNanos: int64(24 * time.Hour), MaxInactivityNanos: int64(time.Hour)}},
	}
	for _, tt := range tests {
		if got := got.Limits.For(tt.channel); got != tt.want {
			t.Errorf("Limits.For(%q) = %+v, want %+v", tt.channel, got, tt.want)
		}
	}
}

func TestFlagsOverrideConfigFile(t *testing.T) {
	path := writeConfig(t, fullConfig)
	// Flags may come before or after -c: the command line always wins.
	got, err := ParseOptions([]string{"-mm", "77", "-c", path, "-cid", "from-flag", "--cluster_sync", "-st", "memory", "-hbi", "1s", "-mb", "1KB", "--cluster_peers", "x,y"})
	if err != nil {
		t.Fatalf("ParseOptions: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ClusterID", got.ClusterID, "from-flag"},
		{"MaxMsgs", got.Limits.MaxMsgs, 77},
		{"MaxBytes", got.Limits.MaxBytes, int64(1024)},
		{"ClusterSync", got.ClusterSync, true},
		{"StoreType", got.StoreType, "MEMORY"},
		{"HBInterval", got.HBInterval, time.Second},
		{"Peers", got.Peers, []string{"x", "y"}},
		// Not given on the command line: kept from the file.
		{"MaxChannels", got.Limits.MaxChannels, 50},
		{"NodeID", got.NodeID, "a"},
		{"Port", got.Port, 4333},
		{"PerChannel", len(got.Limits.PerChannel), 3},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The file makes the server clustered; the MEMORY flag contradicts it.
	if err := got.Validate(); err == nil || !strings.Contains(err.Error(), "clustering mode not supported with MEMORY store type") {
		t.Errorf("Validate() = %v, want the MEMORY clustering error", err)
	}
}

func TestConfigTopLevel(t *testing.T) {
	// Without a streaming block the top level holds both NATS and streaming
	// keys, and cluster{} is the streaming cluster block.
	path := writeConfig(t, `
listen: "127.0.0.1:4556"
cluster_id: top
STORE_TYPE: FILE
datastore: "/d"
cluster { node_id: "n1", peers: "n1,n2" }
store_limits { maxmsgs: 5, max_count: 6 }
`)
	got, err := ParseOptions([]string{"-c", path})
	if err != nil {
		t.Fatalf("ParseOptions: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Host", got.Host, "127.0.0.1"},
		{"Port", got.Port, 4556},
		{"ClusterID", got.ClusterID, "top"},
		{"StoreType", got.StoreType, "FILE"},
		{"Dir", got.Dir, "/d"},
		{"Clustered", got.Clustered, true},
		{"NodeID", got.NodeID, "n1"},
		{"Peers", got.Peers, []string{"n1", "n2"}},
		{"MaxMsgs", got.Limits.MaxMsgs, 5}, // keys apply in sorted order
		{"NATSCluster", got.NATSCluster, ""},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigEmptyClusterBlockImpliesClustered(t *testing.T) {
	got, err := ParseOptions([]string{"-c", writeConfig(t, "streaming { cluster {} }")})
	if err != nil {
		t.Fatalf("ParseOptions: %v", err)
	}
	if !got.Clustered {
		t.Errorf("Clustered = false, want true")
	}
	got, err = ParseOptions([]string{"-c", writeConfig(t, "streaming { cluster {} }"), "--clustered=false"})
	if err != nil {
		t.Fatalf("ParseOptions: %v", err)
	}
	if got.Clustered {
		t.Errorf("with --clustered=false: Clustered = true, want false")
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		config string
		want   []string
		is     error
	}{
		{"no_such_key: 1", []string{`unknown key "no_such_key"`}, nil},
		{"streaming { bogus: true }", []string{`unknown key "streaming.bogus"`}, nil},
		// NATS keys belong at the top level when there is a streaming block.
		{"streaming { port: 4222 }", []string{`unknown key "streaming.port"`}, nil},
		{"streaming { store_limits { max_foo: 1 } }", []string{`unknown key "streaming.store_limits.max_foo"`}, nil},
		{`streaming { store_limits { channels { "a": { max_foo: 1 } } } }`, []string{`unknown key "streaming.store_limits.channels.a.max_foo"`}, nil},
		{"streaming { cluster { color: red } }", []string{`unknown key "streaming.cluster.color"`}, nil},
		{"streaming { tls { cert: x } }", []string{`unknown key "streaming.tls.cert"`}, nil},
		{"cluster { listen: 1, color: red }\nstreaming {}", []string{`unknown key "cluster.color"`}, nil},
		{"streaming { store_limits { max_msgs: abc } }", []string{"streaming.store_limits.max_msgs", "integer", "abc"}, nil},
		{"streaming { hb_interval: 10 }", []string{"streaming.hb_interval", "duration", "10"}, nil},
		{`streaming { hb_interval: "ten" }`, []string{"streaming.hb_interval", `"ten"`}, nil},
		{`streaming { store_limits { max_bytes: "10XB" } }`, []string{"streaming.store_limits.max_bytes", `"10XB"`}, nil},
		{`streaming { store_limits { channels { "foo..bar": { mm: 1 } } } }`, []string{"foo..bar", "invalid channel"}, nil},
		{`streaming { store_limits { channels { "foo": 1 } } }`, []string{"streaming.store_limits.channels.foo", "map"}, nil},
		{"streaming { store: sql }", []string{"streaming.store", "SQL store is not supported by stanza"}, errSQLStore},
		{"streaming { store: redis }", []string{"streaming.store", "redis"}, nil},
		{"streaming { sd: 1 }", []string{"streaming.sd", "boolean"}, nil},
		{`streaming { cluster { peers: [1, "a"] } }`, []string{"streaming.cluster.peers[0]", "string"}, nil},
		{"streaming { ft_group: 1 }", []string{"streaming.ft_group", "string"}, nil},
		{`streaming { partitioning: 1 }`, []string{"streaming.partitioning", "boolean"}, nil},
		{"authorization { token: t }\nstreaming {}", []string{"authorization.token", "not supported by stanza"}, errUnsupported},
		{"streaming: 1", []string{"streaming", "map"}, nil},
		{"streaming { id: ", []string{"stan.conf"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.config, func(t *testing.T) {
			path := writeConfig(t, tt.config)
			_, err := ParseOptions([]string{"-c", path})
			if err == nil {
				t.Fatalf("config %q: ParseOptions succeeded, want an error", tt.config)
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("config %q: error %q does not contain %q", tt.config, err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("config %q: error %q is not %q", tt.config, err, tt.is)
			}
		})
	}
}

// partitioning is a config key only, as in nats-streaming-server, and needs
// the channels of store_limits.
func TestConfigPartitioning(t *testing.T) {
	for _, tt := range []struct {
		config, want string
	}{
		{`streaming { partitioning: true, store_limits { channels { "foo": {}, "bar.>": { max_msgs: 5 } } } }`, ""},
		{"streaming { partitioning: true }", "stan: no configured channel"},
		{`streaming { partitioning: true, store_limits { channels { "a": {} } }, cluster { node_id: a, peers: [a, b] }, store: file, dir: d }`,
			"stan: channels partitioning in clustering mode is not supported"},
	} {
		o, err := ParseOptions([]string{"-c", writeConfig(t, tt.config)})
		if err != nil {
			t.Fatalf("%s: %v", tt.config, err)
		}
		if !o.Partitioning {
			t.Errorf("%s: partitioning not set", tt.config)
		}
		err = o.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.config, err, tt.want)
		}
	}
}

func TestConfigAcceptedFalseFlags(t *testing.T) {
	// Asking for what stanza does anyway is not an error.
	path := writeConfig(t, "streaming { partitioning: false, encrypt: false, replace_durable: false }")
	if _, err := ParseOptions([]string{"-c", path}); err != nil {
		t.Errorf("ParseOptions: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(o *Options)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(o *Options) {}, ""},
		{"partitioning", func(o *Options) {
			o.Partitioning, o.Limits.PerChannel = true, map[string]statemachine.ChannelLimits{"foo.*": {}}
		}, ""},
		{"partitioning in FT mode", func(o *Options) {
			o.StoreType, o.Dir, o.FTGroup = StoreFile, "/d", "g"
			o.Partitioning, o.Limits.PerChannel = true, map[string]statemachine.ChannelLimits{"foo.*": {}}
		}, ""},
		{"file with dir", func(o *Options) { o.StoreType, o.Dir = StoreFile, "/d" }, ""},
		{"clustered file", func(o *Options) {
			o.StoreType, o.Dir, o.Clustered, o.NodeID, o.Peers = StoreFile, "/d", true, "a", []string{"a", "b", "c"}
		}, ""},
		{"random ports", func(o *Options) { o.Port, o.HTTPPort = -1, -1 }, ""},
		{"clustered memory", func(o *Options) { o.Clustered, o.NodeID = true, "a" }, "stan: clustering mode not supported with MEMORY store type"},
		{"clustered without node ID", func(o *Options) { o.StoreType, o.Dir, o.Clustered = StoreFile, "/d", true }, "node ID"},
		{"clustered without snapshots", func(o *Options) {
			o.StoreType, o.Dir, o.Clustered, o.NodeID, o.SnapshotEntries = StoreFile, "/d", true, "a", 0
		}, "snapshot entries"},
		{"file without dir", func(o *Options) { o.StoreType = StoreFile }, "directory"},
		{"sql", func(o *Options) { o.StoreType = "SQL" }, "SQL store is not supported by stanza"},
		{"ft file", func(o *Options) { o.StoreType, o.Dir, o.FTGroup = StoreFile, "/d", "g" }, ""},
		{"ft memory", func(o *Options) { o.FTGroup = "g" }, "ft: only FILE stores supported in FT mode"},
		{"ft clustered", func(o *Options) {
			o.StoreType, o.Dir, o.Clustered, o.NodeID, o.FTGroup = StoreFile, "/d", true, "a", "g"
		}, "ft: FT mode and clustering are mutually exclusive"},
		{"ft bad group", func(o *Options) { o.StoreType, o.Dir, o.FTGroup = StoreFile, "/d", "g.*" }, `invalid FT group name "g.*"`},
		{"unknown store", func(o *Options) { o.StoreType = "memory" }, "unknown store type"},
		{"negative max msgs", func(o *Options) { o.Limits.MaxMsgs = -1 }, "negative"},
		{"negative max channels", func(o *Options) { o.Limits.MaxChannels = -5 }, "negative"},
		{"bad channel pattern", func(o *Options) {
			o.Limits.PerChannel = map[string]statemachine.ChannelLimits{"a.>.b": {MaxMsgs: 1}}
		}, "a.>.b"},
		{"port too big", func(o *Options) { o.Port = 70000 }, "port 70000"},
		{"port negative", func(o *Options) { o.Port = -2 }, "port -2"},
		{"http port too big", func(o *Options) { o.HTTPPort = 65536 }, "http port 65536"},
		{"profiling port too big", func(o *Options) { o.ProfPort = 70000 }, "profiling port 70000"},
		{"fail count zero", func(o *Options) { o.HBFailCount = 0 }, "fail count"},
		{"zero hb interval", func(o *Options) { o.HBInterval = 0 }, "heartbeat interval"},
		{"negative hb timeout", func(o *Options) { o.HBTimeout = -time.Second }, "heartbeat timeout"},
		{"empty cluster ID", func(o *Options) { o.ClusterID = "" }, "cluster ID"},
		{"wildcard cluster ID", func(o *Options) { o.ClusterID = "a*" }, `"a*"`},
		{"bad discover prefix", func(o *Options) { o.DiscoverPrefix = "a b" }, "discover prefix"},
		{"dotted node ID", func(o *Options) { o.NodeID = "a.b" }, "node ID"},
		{"duplicate peer", func(o *Options) { o.Peers = []string{"a", "b", "a"} }, `duplicate cluster peer "a"`},
		{"cert without key", func(o *Options) { o.TLSClientCert = "c.pem" }, "certificate and key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			tt.modify(&o)
			err := o.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate() = nil, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateJoinsErrors(t *testing.T) {
	o := DefaultOptions()
	o.Port, o.HBFailCount = 70000, 0
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want two errors")
	}
	for _, w := range []string{"port 70000", "fail count"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %q, want it to contain %q", err, w)
		}
	}
}

func TestUsageListsEveryFlag(t *testing.T) {
	usage := Usage()
	o := DefaultOptions()
	n := 0
	newFlagSet(&o, new(error)).VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(usage, "  -"+f.Name+" ") && !strings.Contains(usage, "  -"+f.Name+"\n") && !strings.Contains(usage, "  -"+f.Name+"\t") {
			t.Errorf("Usage() does not list -%s", f.Name)
		}
	})
	if n < 60 {
		t.Errorf("only %d flags registered, want every nats-streaming-server flag", n)
	}
	for _, w := range []string{"-cluster_sync", "(default true)", "-hbi", "(default 30s)", "-cid", "test-cluster"} {
		if !strings.Contains(usage, w) {
			t.Errorf("Usage() does not contain %q", w)
		}
	}
}

func TestReplaceDurableOption(t *testing.T) {
	o, err := ParseOptions([]string{"--replace_durable"})
	if err != nil || !o.ReplaceDurable {
		t.Fatalf("--replace_durable: %v, %v", o.ReplaceDurable, err)
	}
	for _, key := range []string{"replace_durable", "replace_durables", "replace_duplicate_durable", "replace_duplicate_durables"} {
		o, err := ParseOptions([]string{"-c", writeConfig(t, "streaming { "+key+": true }")})
		if err != nil || !o.ReplaceDurable {
			t.Errorf("config %s: %v, %v", key, o.ReplaceDurable, err)
		}
	}
	if o, err := ParseOptions(nil); err != nil || o.ReplaceDurable {
		t.Fatalf("default: %v, %v", o.ReplaceDurable, err)
	}
}
