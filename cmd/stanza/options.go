package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/conf"

	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/storage"
)

// Store types accepted by -st/--store, as nats-streaming-server spells them.
const (
	StoreMemory = "MEMORY"
	StoreFile   = "FILE"
	storeSQL    = "SQL"
)

// Defaults of nats-streaming-server v0.25 (and stanza's own for its own flags).
const (
	DefaultClusterID       = "test-cluster"
	DefaultDiscoverPrefix  = "_STAN.discover"
	DefaultHost            = "0.0.0.0"
	DefaultPort            = 4222
	DefaultHBInterval      = 30 * time.Second
	DefaultHBTimeout       = 10 * time.Second
	DefaultHBFailCount     = 10
	DefaultSnapshotEntries = 10000
)

// errSQLStore is returned for -st SQL: stanza keeps its own log and has no SQL store.
var errSQLStore = errors.New("stan: SQL store is not supported by stanza")

// errUnsupported is the cause of every nats-streaming-server flag or config key
// that stanza recognises but cannot honour; ignoring them silently would
// change what the operator asked for.
var errUnsupported = errors.New("not supported by stanza")

// Options is the whole configuration of a stanza server.
type Options struct {
	ClusterID       string              // -cid, --cluster_id; config id|cid|cluster_id
	DiscoverPrefix  string              // config discover_prefix
	Host            string              // -a, --addr, -net, --net: embedded NATS listen host
	Port            int                 // -p, --port: embedded NATS client port (-1 = random)
	HTTPPort        int                 // -m, --http_port: 0 = no monitoring (-1 = random)
	ProfPort        int                 // --profile: Go pprof HTTP port (0 = off)
	NATSServerURL   string              // -ns, --nats_server; "" = embedded NATS server
	StoreType       string              // -st, --store: StoreMemory or StoreFile
	Dir             string              // --dir; config dir|datastore
	Limits          statemachine.Limits // -mc, -msu, -mm, -mb, -ma, -mi; config store_limits{}
	HBInterval      time.Duration       // -hbi, --hb_interval
	HBTimeout       time.Duration       // -hbt, --hb_timeout
	HBFailCount     int                 // -hbf, --hb_fail_count
	Clustered       bool                // --clustered; a streaming cluster{} block implies it
	NodeID          string              // --cluster_node_id
	Peers           []string            // --cluster_peers a,b,c (kept as given, may include NodeID)
	Bootstrap       bool                // --cluster_bootstrap
	Join            bool                // --cluster_join (stanza's own): start empty, wait to be added by node.add
	AllowAddRemove  bool                // --cluster_allow_add_remove_node: serve node.add / node.remove requests
	LogPath         string              // --cluster_log_path; "" = the caller decides
	ClusterSync     bool                // --cluster_sync; true in stanza: fsync before acking
	SnapshotEntries uint64              // --cluster_snapshot_entries: snapshot every N applied entries
	NATSCluster     string              // --cluster: embedded NATS route listen URL
	Routes          []string            // --routes: embedded NATS route URLs
	ConfigFile      string              // -c, --config, -sc, --stan_config
	Debug, Trace    bool                // -SD/--stan_debug, -SV/--stan_trace, -SDV
	LogJSON         bool                // --log_json
	User, Pass      string              // --user, --pass: embedded NATS auth and the server's own connections
	Auth            string              // --auth: embedded NATS token and the server's own connections
	// TLS on the embedded NATS client port (nats-server's flags).
	TLS, TLSVerify             bool   // --tls, --tlsverify (require and verify client certificates)
	TLSCert, TLSKey, TLSCACert string // --tlscert, --tlskey, --tlscacert
	Secure                     bool   // -secure: TLS on the server's own NATS connections
	TLSClientCert              string // -tls_client_cert; config tls{client_cert}
	TLSClientKey               string // -tls_client_key; config tls{client_key}
	TLSClientCACert            string // -tls_client_cacert; config tls{client_ca|client_cacert}
	ShowVersion                bool   // -v, --version
	FTGroup                    string // --ft_group; config ft_group|ft_group_name: fault-tolerant (active/standby) mode
	Partitioning               bool   // config partitioning: serve only the channels of store_limits.channels (partition.go)
	ReplaceDurable             bool   // --replace_durable; config replace_durable(s)|replace_duplicate_durable(s)

	// Ignored lists the nats-streaming-server flags ("-file_sync") and config
	// keys ("streaming.file") that were accepted for compatibility but have no
	// effect in stanza, in the order met; main may log them. ParseOptions
	// never prints.
	Ignored []string
}

// DefaultOptions returns the defaults of nats-streaming-server v0.25 with
// stanza's own: ClusterSync on and a snapshot every DefaultSnapshotEntries.
func DefaultOptions() Options {
	return Options{
		ClusterID:       DefaultClusterID,
		DiscoverPrefix:  DefaultDiscoverPrefix,
		Host:            DefaultHost,
		Port:            DefaultPort,
		StoreType:       StoreMemory,
		Limits:          statemachine.DefaultLimits(),
		HBInterval:      DefaultHBInterval,
		HBTimeout:       DefaultHBTimeout,
		HBFailCount:     DefaultHBFailCount,
		ClusterSync:     true,
		SnapshotEntries: DefaultSnapshotEntries,
	}
}

// ParseOptions parses command-line arguments (without the program name). A
// config file given with -c/-sc is read first, then the flags given on the
// command line override it, as in nats-streaming-server. Unknown flags,
// unknown config keys and bad values return an error naming the flag or key
// and the value; -h/--help returns flag.ErrHelp. It never prints or exits.
func ParseOptions(args []string) (Options, error) {
	// The first pass finds the config file and rejects bad flags before the
	// file is read; the second applies the same flags on top of the file.
	o := DefaultOptions()
	if err := parseFlags(&o, args); err != nil {
		return Options{}, err
	}
	if o.ConfigFile == "" {
		return o, nil
	}
	path := o.ConfigFile
	o = DefaultOptions()
	if err := loadConfigFile(&o, path); err != nil {
		return Options{}, err
	}
	o.ConfigFile = path
	if err := parseFlags(&o, args); err != nil {
		return Options{}, err
	}
	return o, nil
}

// Usage returns the help text listing every flag.
func Usage() string {
	o := DefaultOptions()
	fs := newFlagSet(&o, new(error))
	var b strings.Builder
	b.WriteString("Usage: stanza [options]\n\nFlags (a single or a double dash both work):\n")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	b.WriteString("\n-h, --help prints this text.\n")
	return b.String()
}

func parseFlags(o *Options, args []string) error {
	var cause error
	fs := newFlagSet(o, &cause)
	if err := fs.Parse(args); err != nil {
		if cause != nil && err != flag.ErrHelp {
			// The flag package formats the Set error with %v; keep the
			// sentinel visible to errors.Is.
			return &flagError{msg: err.Error(), cause: cause}
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags must come first)", fs.Arg(0))
	}
	return nil
}

// flagError is a flag package error whose cause is one of our sentinels.
type flagError struct {
	msg   string
	cause error
}

func (e *flagError) Error() string { return e.msg }
func (e *flagError) Unwrap() error { return e.cause }

// newFlagSet registers every flag on o, using o's current values as the
// defaults so that a second parse only changes what the command line sets.
// Sentinel errors returned by the values are stored in *cause.
func newFlagSet(o *Options, cause *error) *flag.FlagSet {
	fs := flag.NewFlagSet("stanza", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}

	str := func(p *string, usage string, names ...string) {
		for _, n := range names {
			fs.StringVar(p, n, *p, usage)
		}
	}
	integer := func(p *int, usage string, names ...string) {
		for _, n := range names {
			fs.IntVar(p, n, *p, usage)
		}
	}
	boolean := func(p *bool, usage string, names ...string) {
		for _, n := range names {
			fs.BoolVar(p, n, *p, usage)
		}
	}
	duration := func(p *time.Duration, usage string, names ...string) {
		for _, n := range names {
			fs.DurationVar(p, n, *p, usage)
		}
	}
	value := func(v flag.Value, usage string, names ...string) {
		for _, n := range names {
			fs.Var(v, n, usage)
		}
	}

	// Streaming.
	str(&o.ClusterID, "Cluster ID", "cid", "cluster_id")
	value(&storeTypeValue{p: &o.StoreType, cause: cause}, "Store `type`: MEMORY or FILE", "st", "store")
	str(&o.Dir, "Directory of the FILE store", "dir")
	integer(&o.Limits.MaxChannels, "Max number of channels (0 = unlimited)", "mc", "max_channels")
	integer(&o.Limits.MaxSubscriptions, "Max subscriptions per channel (0 = unlimited)", "msu", "max_subs")
	integer(&o.Limits.MaxMsgs, "Max messages per channel (0 = unlimited)", "mm", "max_msgs")
	value((*sizeValue)(&o.Limits.MaxBytes), "Max bytes per channel: a `size` such as 1GB, 512MB, 100KB (0 = unlimited)", "mb", "max_bytes")
	value((*nanosValue)(&o.Limits.MaxAgeNanos), "Max age of messages, a `duration` such as 24h (0 = unlimited)", "ma", "max_age")
	value((*nanosValue)(&o.Limits.MaxInactivityNanos), "Delete a channel after this `duration` without subscription or message (0 = never)", "mi", "max_inactivity")
	duration(&o.HBInterval, "Interval of the server's heartbeats to clients", "hbi", "hb_interval")
	duration(&o.HBTimeout, "Timeout of one heartbeat to a client", "hbt", "hb_timeout")
	integer(&o.HBFailCount, "Failed heartbeats before a client is closed", "hbf", "hb_fail_count")
	str(&o.NATSServerURL, "URL(s) of an external NATS server (default: embedded)", "ns", "nats_server")
	value(&configValue{&o.ConfigFile}, "Config `file` (NATS and streaming keys)", "c", "config", "sc", "stan_config")
	boolean(&o.Debug, "Enable debug logging", "SD", "stan_debug")
	boolean(&o.Trace, "Enable trace logging", "SV", "stan_trace")
	value(&debugTraceValue{o}, "Enable debug and trace logging", "SDV")
	boolean(&o.LogJSON, "Log in JSON", "log_json")
	boolean(&o.Secure, "Use TLS on the server's NATS connections", "secure")
	boolean(&o.ReplaceDurable, "Replace a durable subscription already online when its client subscribes to it again", "replace_durable")
	str(&o.TLSClientCert, "Client certificate of the server's NATS connections", "tls_client_cert")
	str(&o.TLSClientKey, "Client key of the server's NATS connections", "tls_client_key")
	str(&o.TLSClientCACert, "CA certificate for the server's NATS connections", "tls_client_cacert")
	str(&o.FTGroup, "Fault-tolerant `group`: servers sharing one FILE store; the one holding its lock serves, the others stand by", "ft_group")

	// Clustering.
	boolean(&o.Clustered, "Run in clustered mode", "clustered")
	str(&o.NodeID, "ID of this node in the cluster", "cluster_node_id")
	value((*listValue)(&o.Peers), "Comma separated node `IDs` of the cluster", "cluster_peers")
	boolean(&o.Bootstrap, "Bootstrap the cluster with this node", "cluster_bootstrap")
	boolean(&o.Join, "Start with an empty log as a new member of a running cluster; an operator adds it with a node.add request", "cluster_join")
	boolean(&o.AllowAddRemove, "Serve membership requests on _STANZA.node.add.<cluster_id> and _STANZA.node.remove.<cluster_id>", "cluster_allow_add_remove_node")
	str(&o.LogPath, "Directory of the replicated log", "cluster_log_path")
	boolean(&o.ClusterSync, "Fsync the replicated log before acknowledging (false turns it off)", "cluster_sync")
	value((*uint64Value)(&o.SnapshotEntries), "Snapshot every `N` applied log entries", "cluster_snapshot_entries")

	// Embedded NATS.
	str(&o.Host, "Embedded NATS listen host", "a", "addr", "net")
	integer(&o.Port, "Embedded NATS client port (-1 = random)", "p", "port")
	integer(&o.HTTPPort, "Monitoring HTTP port (0 = off, -1 = random)", "m", "http_port")
	integer(&o.ProfPort, "Go profiling (pprof) HTTP port, as nats-server's (0 = off)", "profile")
	str(&o.NATSCluster, "Embedded NATS route listen URL, e.g. nats://0.0.0.0:6222", "cluster")
	value((*listValue)(&o.Routes), "Comma separated route `URLs` of the embedded NATS", "routes")
	str(&o.User, "User for the embedded NATS and the server's connections", "user")
	str(&o.Pass, "Password for the embedded NATS and the server's connections", "pass")
	str(&o.Auth, "Authorization token for the embedded NATS and the server's connections", "auth")
	boolean(&o.TLS, "Enable TLS on the embedded NATS client port", "tls")
	boolean(&o.TLSVerify, "Require and verify client certificates on the embedded NATS", "tlsverify")
	str(&o.TLSCert, "Embedded NATS server certificate (PEM)", "tlscert")
	str(&o.TLSKey, "Embedded NATS server private key (PEM)", "tlskey")
	str(&o.TLSCACert, "CA of the client certificates the embedded NATS verifies (PEM)", "tlscacert")
	boolean(&o.ShowVersion, "Print the version and exit", "v", "version")

	// Accepted for compatibility, without effect: stanza has its own storage,
	// replication and logging.
	ignored := func(kind valueKind, names ...string) {
		for _, n := range names {
			fs.Var(&ignoredValue{o: o, name: n, kind: kind}, n, "Accepted for compatibility, no effect in stanza")
		}
	}
	ignored(kindBool, "file_compact_enabled", "file_crc", "file_sync", "file_truncate_bad_eof",
		"cluster_raft_logging", "cluster_proceed_on_restore_failure",
		"D", "debug", "V", "trace", "DV", "T", "logtime")
	ignored(kindInt, "file_compact_frag", "file_compact_interval", "file_crc_poly", "file_slice_max_msgs",
		"file_fds_limit", "file_parallel_recovery", "io_batch_size", "io_sleep_time",
		"cluster_log_cache_size", "cluster_log_snapshots", "cluster_trailing_logs")
	ignored(kindSize, "file_compact_min_size", "file_buffer_size", "file_slice_max_bytes", "file_read_buffer_size")
	ignored(kindDuration, "file_slice_max_age", "file_auto_sync")
	ignored(kindString, "file_slice_archive_script")

	// Recognised but refused: ignoring them would silently change behaviour.
	unsupported := func(isBool bool, names ...string) {
		for _, n := range names {
			fs.Var(&unsupportedValue{isBool: isBool, cause: cause}, n, "Not supported by stanza")
		}
	}
	unsupported(true, "encrypt", "sql_no_caching")
	unsupported(false, "encryption_cipher", "encryption_key", "sql_driver", "sql_source",
		"sql_max_open_conns", "syslog_name", "l", "log", "P", "pid", "ms", "https_port")
	return fs
}

// storeTypeValue is a store type, stored upper-case.
type storeTypeValue struct {
	p     *string
	cause *error
}

func (v *storeTypeValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v *storeTypeValue) Set(s string) error {
	st, err := parseStoreType(s)
	if err != nil {
		if errors.Is(err, errSQLStore) {
			*v.cause = err
		}
		return err
	}
	*v.p = st
	return nil
}

func parseStoreType(s string) (string, error) {
	switch st := strings.ToUpper(s); st {
	case StoreMemory, StoreFile:
		return st, nil
	case storeSQL:
		return "", errSQLStore
	default:
		return "", fmt.Errorf("unknown store type %q (want MEMORY or FILE)", s)
	}
}

// sizeValue is a byte count given as plain bytes or with a size suffix.
type sizeValue int64

func (v *sizeValue) String() string { return strconv.FormatInt(int64(*v), 10) }

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v = sizeValue(n)
	return nil
}

// sizeUnits are the suffixes of the NATS config parser (nats-streaming-server
// parses -mb with it): k, m, g, t are powers of 1000; kb, mb, gb, tb (and
// ki, kib, ...) are powers of 1024. Case-insensitive.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1e6, "mb": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1e9, "gb": 1 << 30, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1e12, "tb": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
}

// parseSize parses "1024", "100KB", "512mb", "1GB" into bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	end := 0
	if end < len(t) && t[end] == '-' {
		end++
	}
	for end < len(t) && t[end] >= '0' && t[end] <= '9' {
		end++
	}
	num, err := strconv.ParseInt(t[:end], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with KB, MB or GB", s)
	}
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[end:]))]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (want KB, MB or GB)", s, t[end:])
	}
	if num > math.MaxInt64/unit || num < math.MinInt64/unit {
		return 0, fmt.Errorf("invalid size %q: out of range", s)
	}
	return num * unit, nil
}

// nanosValue is a duration stored as int64 nanoseconds.
type nanosValue int64

func (v *nanosValue) String() string { return time.Duration(*v).String() }

func (v *nanosValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*v = nanosValue(d)
	return nil
}

type uint64Value uint64

func (v *uint64Value) String() string { return strconv.FormatUint(uint64(*v), 10) }

func (v *uint64Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return err
	}
	*v = uint64Value(n)
	return nil
}

// listValue is a comma-separated list; blanks around items and empty items
// are dropped.
type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }

func (v *listValue) Set(s string) error {
	*v = splitList(s)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// configValue holds the config file path. nats-streaming-server can read a
// NATS file (-c) and a streaming file (-sc); stanza reads one, so two
// different paths are an error rather than one silently dropped.
type configValue struct{ p *string }

func (v *configValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v *configValue) Set(s string) error {
	if *v.p != "" && *v.p != s {
		return fmt.Errorf("stanza reads one config file, already given %q", *v.p)
	}
	*v.p = s
	return nil
}

// debugTraceValue is -SDV: debug and trace together.
type debugTraceValue struct{ o *Options }

func (v *debugTraceValue) IsBoolFlag() bool { return true }

func (v *debugTraceValue) String() string {
	if v.o == nil {
		return "false"
	}
	return strconv.FormatBool(v.o.Debug && v.o.Trace)
}

func (v *debugTraceValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	v.o.Debug, v.o.Trace = b, b
	return nil
}

type valueKind int

const (
	kindBool valueKind = iota
	kindInt
	kindSize
	kindDuration
	kindString
)

// check reports whether s is a valid value of the kind, so that an ignored
// flag with a bad value is still an error, as in nats-streaming-server.
func (k valueKind) check(s string) error {
	var err error
	switch k {
	case kindBool:
		_, err = strconv.ParseBool(s)
	case kindInt:
		_, err = strconv.ParseInt(s, 10, 64)
	case kindSize:
		_, err = parseSize(s)
	case kindDuration:
		_, err = time.ParseDuration(s)
	}
	return err
}

// ignoredValue is a flag accepted for compatibility; using it is recorded
// in Options.Ignored.
type ignoredValue struct {
	o    *Options
	name string
	kind valueKind
	val  string
}

func (v *ignoredValue) IsBoolFlag() bool { return v.kind == kindBool }
func (v *ignoredValue) String() string   { return v.val }

func (v *ignoredValue) Set(s string) error {
	if err := v.kind.check(s); err != nil {
		return err
	}
	v.val = s
	v.o.Ignored = append(v.o.Ignored, "-"+v.name)
	return nil
}

// unsupportedValue is a flag of nats-streaming-server or nats-server that
// stanza refuses.
type unsupportedValue struct {
	isBool bool
	cause  *error
}

func (v *unsupportedValue) IsBoolFlag() bool { return v.isBool }
func (v *unsupportedValue) String() string   { return "" }

func (v *unsupportedValue) Set(string) error {
	*v.cause = errUnsupported
	return errUnsupported
}

// Validate reports inconsistent options, all of them joined.
func (o Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if (o.TLS || o.TLSVerify || o.TLSCert != "" || o.TLSKey != "") && (o.TLSCert == "" || o.TLSKey == "") {
		add("stan: TLS on the embedded NATS needs both --tlscert and --tlskey")
	}
	if o.TLSVerify && o.TLSCACert == "" {
		add("stan: --tlsverify needs --tlscacert")
	}
	if o.TLSCert != "" && o.NATSServerURL != "" {
		add("stan: --tlscert configures the embedded NATS, which does not run with --nats_server")
	}

	// The cluster ID and the discover prefix become subject tokens.
	if !statemachine.ValidChannel(o.ClusterID) {
		add("stan: invalid cluster ID %q", o.ClusterID)
	}
	if !statemachine.ValidChannel(o.DiscoverPrefix) {
		add("stan: invalid discover prefix %q", o.DiscoverPrefix)
	}
	switch o.StoreType {
	case StoreMemory:
	case StoreFile:
		if o.Dir == "" {
			add("stan: for FILE store type, a directory must be specified with --dir")
		}
	case storeSQL:
		errs = append(errs, errSQLStore)
	default:
		add("stan: unknown store type %q (want MEMORY or FILE)", o.StoreType)
	}
	if err := o.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Partitioning {
		if len(o.Limits.PerChannel) == 0 {
			add("stan: no configured channel")
		}
		if o.Clustered {
			add("stan: channels partitioning in clustering mode is not supported")
		}
	}
	if o.FTGroup != "" {
		if !statemachine.ValidChannel(o.FTGroup) {
			add("ft: invalid FT group name %q", o.FTGroup)
		}
		if o.StoreType != StoreFile {
			add("ft: only FILE stores supported in FT mode")
		}
		if o.Clustered {
			add("ft: FT mode and clustering are mutually exclusive")
		}
		if !storage.LocksExclude {
			add("ft: FT mode needs file locks, which stanza has on Unix systems only")
		}
	}
	if o.HBInterval <= 0 {
		add("stan: heartbeat interval must be positive, got %v", o.HBInterval)
	}
	if o.HBTimeout <= 0 {
		add("stan: heartbeat timeout must be positive, got %v", o.HBTimeout)
	}
	if o.HBFailCount < 1 {
		add("stan: heartbeat fail count must be at least 1, got %d", o.HBFailCount)
	}
	if o.Port < -1 || o.Port > 65535 {
		add("stan: port %d out of range (-1 for random, up to 65535)", o.Port)
	}
	if o.ProfPort < 0 || o.ProfPort > 65535 {
		add("stan: profiling port %d out of range (0 for off, up to 65535)", o.ProfPort)
	}
	if o.HTTPPort < -1 || o.HTTPPort > 65535 {
		add("stan: http port %d out of range (0 for off, -1 for random, up to 65535)", o.HTTPPort)
	}
	if o.Clustered {
		if o.StoreType == StoreMemory {
			add("stan: clustering mode not supported with MEMORY store type")
		}
		if o.NodeID == "" {
			add("stan: clustered mode requires a node ID (--cluster_node_id)")
		}
		if o.SnapshotEntries == 0 {
			add("stan: cluster snapshot entries must be at least 1")
		}
	}
	if o.NodeID != "" && (!statemachine.ValidChannel(o.NodeID) || strings.Contains(o.NodeID, ".")) {
		add("stan: invalid cluster node ID %q", o.NodeID)
	}
	seen := make(map[string]bool, len(o.Peers))
	for _, p := range o.Peers {
		if !statemachine.ValidChannel(p) || strings.Contains(p, ".") {
			add("stan: invalid cluster peer %q", p)
		}
		if seen[p] {
			add("stan: duplicate cluster peer %q", p)
		}
		seen[p] = true
	}
	if (o.TLSClientCert == "") != (o.TLSClientKey == "") {
		add("stan: TLS client certificate and key must be given together")
	}
	if errs == nil {
		return nil
	}
	return errors.Join(errs...)
}

// loadConfigFile applies a nats-streaming-server config file to o. Keys are
// case-insensitive. If the file has a streaming{} block, the streaming keys
// live in it and the top level holds NATS keys; otherwise the top level holds
// both, and cluster{} is the streaming cluster block.
func loadConfigFile(o *Options, path string) error {
	m, err := conf.ParseFile(path)
	if err != nil {
		return fmt.Errorf("config file %q: %w", path, err)
	}
	c := &configReader{o: o}
	var streaming any
	for _, k := range sortedKeys(m) {
		if strings.EqualFold(k, "streaming") {
			streaming = m[k]
		}
	}
	if streaming == nil {
		err = c.top("", m, true)
	} else {
		err = c.top("", m, false)
		if err == nil {
			var sm map[string]any
			if sm, err = c.mapping("streaming", streaming); err == nil {
				err = c.top("streaming.", sm, true)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("config file %q: %w", path, err)
	}
	return nil
}

type configReader struct{ o *Options }

// top applies a top-level map (or the streaming{} block). withStreaming says
// whether streaming keys are allowed; NATS keys are allowed only outside the
// streaming block.
func (c *configReader) top(prefix string, m map[string]any, withStreaming bool) error {
	inBlock := prefix != ""
	for _, k := range sortedKeys(m) {
		key, name, v := prefix+k, strings.ToLower(k), m[k]
		if !inBlock && name == "streaming" {
			continue
		}
		if withStreaming {
			known, err := c.streamingKey(key, name, v)
			if err != nil {
				return err
			}
			if known {
				continue
			}
		}
		if !inBlock {
			known, err := c.natsKey(key, name, v, !withStreaming)
			if err != nil {
				return err
			}
			if known {
				continue
			}
		}
		return fmt.Errorf("unknown key %q", key)
	}
	return nil
}

// streamingKey applies one key of nats-streaming-server's ProcessConfigFile.
func (c *configReader) streamingKey(key, name string, v any) (bool, error) {
	o := c.o
	var err error
	switch name {
	case "id", "cid", "cluster_id":
		o.ClusterID, err = c.str(key, v)
	case "discover_prefix":
		o.DiscoverPrefix, err = c.str(key, v)
	case "st", "store", "store_type", "storetype":
		var s string
		if s, err = c.str(key, v); err == nil {
			if o.StoreType, err = parseStoreType(s); err != nil {
				err = fmt.Errorf("key %q: %w", key, err)
			}
		}
	case "dir", "datastore":
		o.Dir, err = c.str(key, v)
	case "sd", "stan_debug":
		o.Debug, err = c.boolean(key, v)
	case "sv", "stan_trace":
		o.Trace, err = c.boolean(key, v)
	case "log_json":
		o.LogJSON, err = c.boolean(key, v)
	case "ns", "nats_server", "nats_server_url":
		o.NATSServerURL, err = c.str(key, v)
	case "username", "user":
		o.User, err = c.str(key, v)
	case "password", "pass":
		o.Pass, err = c.str(key, v)
	case "secure":
		o.Secure, err = c.boolean(key, v)
	case "tls":
		err = c.tls(key, v)
	case "limits", "store_limits", "storelimits":
		err = c.storeLimits(key, v)
	case "file", "file_options":
		if _, err = c.mapping(key, v); err == nil {
			o.Ignored = append(o.Ignored, key)
		}
	case "hbi", "hb_interval", "server_to_client_hb_interval":
		o.HBInterval, err = c.duration(key, v)
	case "hbt", "hb_timeout", "server_to_client_hb_timeout":
		o.HBTimeout, err = c.duration(key, v)
	case "hbf", "hb_fail_count", "server_to_client_hb_fail_count":
		o.HBFailCount, err = c.integer(key, v)
	case "cluster":
		err = c.cluster(key, v)
	case "partitioning":
		o.Partitioning, err = c.boolean(key, v)
	case "replace_durable", "replace_durables", "replace_duplicate_durable", "replace_duplicate_durables":
		o.ReplaceDurable, err = c.boolean(key, v)
	case "encrypt":
		// A false value asks for what stanza does anyway.
		var b bool
		if b, err = c.boolean(key, v); err == nil && b {
			err = fmt.Errorf("key %q: %w", key, errUnsupported)
		}
	case "ft_group", "ft_group_name":
		o.FTGroup, err = c.str(key, v)
	case "sql", "sql_options", "encryption_cipher", "encryption_key",
		"syslog_name", "token", "credentials", "nkey_seed_file":
		err = fmt.Errorf("key %q: %w", key, errUnsupported)
	default:
		return false, nil
	}
	return true, err
}

// natsKey applies one key of the embedded NATS server's config that stanza
// honours. natsCluster says whether cluster{} is the NATS route block (there
// is a streaming{} block) rather than the streaming cluster block.
func (c *configReader) natsKey(key, name string, v any, natsCluster bool) (bool, error) {
	o := c.o
	var err error
	switch name {
	case "port":
		o.Port, err = c.integer(key, v)
	case "host", "net":
		o.Host, err = c.str(key, v)
	case "listen":
		var host string
		if host, o.Port, err = c.hostPort(key, v); host != "" {
			o.Host = host
		}
	case "http_port", "monitor_port":
		o.HTTPPort, err = c.integer(key, v)
	case "prof_port":
		o.ProfPort, err = c.integer(key, v)
	case "authorization":
		err = c.authorization(key, v)
	case "cluster":
		if !natsCluster {
			return false, nil
		}
		err = c.natsClusterBlock(key, v)
	case "debug", "trace", "logtime", "server_name":
		o.Ignored = append(o.Ignored, key)
	default:
		return false, nil
	}
	return true, err
}

func (c *configReader) tls(key string, v any) error {
	m, err := c.mapping(key, v)
	if err != nil {
		return err
	}
	o := c.o
	for _, k := range sortedKeys(m) {
		sub, val := key+"."+k, m[k]
		switch strings.ToLower(k) {
		case "client_cert":
			o.TLSClientCert, err = c.str(sub, val)
		case "client_key":
			o.TLSClientKey, err = c.str(sub, val)
		case "client_ca", "client_cacert":
			o.TLSClientCACert, err = c.str(sub, val)
		case "server_name", "server_hostname", "skip_verify", "insecure":
			err = fmt.Errorf("key %q: %w", sub, errUnsupported)
		default:
			err = fmt.Errorf("unknown key %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *configReader) storeLimits(key string, v any) error {
	m, err := c.mapping(key, v)
	if err != nil {
		return err
	}
	l := &c.o.Limits
	for _, k := range sortedKeys(m) {
		sub, name, val := key+"."+k, strings.ToLower(k), m[k]
		switch name {
		case "mc", "max_channels", "maxchannels":
			l.MaxChannels, err = c.integer(sub, val)
		case "channels", "channels_limits", "channelslimits", "per_channel", "per_channel_limits":
			err = c.perChannel(sub, val)
		default:
			var known bool
			if known, err = c.channelLimit(&l.ChannelLimits, sub, name, val, false); err == nil && !known {
				err = fmt.Errorf("unknown key %q", sub)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *configReader) perChannel(key string, v any) error {
	m, err := c.mapping(key, v)
	if err != nil {
		return err
	}
	for _, channel := range sortedKeys(m) {
		sub := key + "." + channel
		if !statemachine.ValidChannelPattern(channel) {
			return fmt.Errorf("key %q: invalid channel name or pattern %q", sub, channel)
		}
		cm, err := c.mapping(sub, m[channel])
		if err != nil {
			return err
		}
		var cl statemachine.ChannelLimits
		for _, k := range sortedKeys(cm) {
			known, err := c.channelLimit(&cl, sub+"."+k, strings.ToLower(k), cm[k], true)
			if err != nil {
				return err
			}
			if !known {
				return fmt.Errorf("unknown key %q", sub+"."+k)
			}
		}
		if c.o.Limits.PerChannel == nil {
			c.o.Limits.PerChannel = make(map[string]statemachine.ChannelLimits)
		}
		c.o.Limits.PerChannel[channel] = cl
	}
	return nil
}

// channelLimit applies one channel limit key. In a per-channel block a
// literal 0 means unlimited, stored as -1 because 0 there means inherit.
func (c *configReader) channelLimit(cl *statemachine.ChannelLimits, key, name string, v any, perChannel bool) (bool, error) {
	unlimited := func(n int64) int64 {
		if perChannel && n == 0 {
			return -1
		}
		return n
	}
	var (
		n   int64
		err error
	)
	switch name {
	case "msu", "max_subs", "max_subscriptions", "maxsubscriptions":
		if n, err = c.i64(key, v); err == nil {
			cl.MaxSubscriptions, err = c.toInt(key, unlimited(n))
		}
	case "mm", "max_msgs", "maxmsgs", "max_count", "maxcount":
		if n, err = c.i64(key, v); err == nil {
			cl.MaxMsgs, err = c.toInt(key, unlimited(n))
		}
	case "mb", "max_bytes", "maxbytes":
		if n, err = c.size(key, v); err == nil {
			cl.MaxBytes = unlimited(n)
		}
	case "ma", "max_age", "maxage":
		var d time.Duration
		if d, err = c.duration(key, v); err == nil {
			cl.MaxAgeNanos = unlimited(int64(d))
		}
	case "mi", "max_inactivity", "maxinactivity":
		var d time.Duration
		if d, err = c.duration(key, v); err == nil {
			cl.MaxInactivityNanos = unlimited(int64(d))
		}
	default:
		return false, nil
	}
	return true, err
}

// cluster is the streaming cluster{} block; its presence implies clustering.
func (c *configReader) cluster(key string, v any) error {
	m, err := c.mapping(key, v)
	if err != nil {
		return err
	}
	o := c.o
	o.Clustered = true
	for _, k := range sortedKeys(m) {
		sub, val := key+"."+k, m[k]
		switch strings.ToLower(k) {
		case "node_id":
			o.NodeID, err = c.str(sub, val)
		case "bootstrap":
			o.Bootstrap, err = c.boolean(sub, val)
		case "peers":
			o.Peers, err = c.strList(sub, val)
		case "log_path":
			o.LogPath, err = c.str(sub, val)
		case "sync":
			o.ClusterSync, err = c.boolean(sub, val)
		case "allow_add_remove_node":
			o.AllowAddRemove, err = c.boolean(sub, val)
		case "join":
			o.Join, err = c.boolean(sub, val)
		case "snapshot_entries":
			var n int64
			if n, err = c.i64(sub, val); err == nil {
				if n < 0 {
					err = fmt.Errorf("key %q: must not be negative, got %d", sub, n)
				}
				o.SnapshotEntries = uint64(n)
			}
		case "log_cache_size", "log_snapshots", "trailing_logs", "raft_logging",
			"raft_heartbeat_timeout", "raft_election_timeout", "raft_lease_timeout",
			"raft_commit_timeout", "proceed_on_restore_failure",
			"bolt_free_list_sync", "bolt_free_list_map", "nodes_connections":
			o.Ignored = append(o.Ignored, sub)
		default:
			err = fmt.Errorf("unknown key %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// natsClusterBlock is the NATS route cluster{} block of the embedded server.
func (c *configReader) natsClusterBlock(key string, v any) error {
	m, err := c.mapping(key, v)
	if err != nil {
		return err
	}
	o := c.o
	var (
		host string
		port int
	)
	for _, k := range sortedKeys(m) {
		sub, val := key+"."+k, m[k]
		switch strings.ToLower(k) {
		case "listen":
			host, port, err = c.hostPort(sub, val)
		case "host", "net":
			host, err = c.str(sub, val)
		case "port":
			port, err = c.integer(sub, val)
		case "routes":
			o.Routes, err = c.strList(sub, val)
		case "name":
			o.Ignored = append(o.Ignored, sub)
		default:
			err = fmt.Errorf("unknown key %q", sub)
		}
		if err != nil {
			return err
		}
	}
	if port != 0 {
		if host == "" {
			host = DefaultHost
		}
		o.NATSCluster = "nats://" + net.JoinHostPort(host, strconv.Itoa(port))
	}
	return nil
}

func (c *configReader) authorization(key string, v any) error {
	m, err := c.mapping(key, v)
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(m) {
		sub, val := key+"."+k, m[k]
		switch strings.ToLower(k) {
		case "user", "username":
			c.o.User, err = c.str(sub, val)
		case "password", "pass":
			c.o.Pass, err = c.str(sub, val)
		default:
			err = fmt.Errorf("key %q: %w", sub, errUnsupported)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func typeError(key, want string, v any) error {
	return fmt.Errorf("key %q: expected %s, got %T %v", key, want, v, v)
}

func (c *configReader) str(key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", typeError(key, "a string", v)
	}
	return s, nil
}

func (c *configReader) boolean(key string, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, typeError(key, "a boolean", v)
	}
	return b, nil
}

func (c *configReader) i64(key string, v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, typeError(key, "an integer", v)
	}
	return n, nil
}

func (c *configReader) toInt(key string, n int64) (int, error) {
	if int64(int(n)) != n {
		return 0, fmt.Errorf("key %q: %d out of range", key, n)
	}
	return int(n), nil
}

func (c *configReader) integer(key string, v any) (int, error) {
	n, err := c.i64(key, v)
	if err != nil {
		return 0, err
	}
	return c.toInt(key, n)
}

// size accepts an integer (the config parser already turned 1GB into one)
// or a quoted size string.
func (c *configReader) size(key string, v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		n, err := parseSize(x)
		if err != nil {
			return 0, fmt.Errorf("key %q: %w", key, err)
		}
		return n, nil
	}
	return 0, typeError(key, "a size", v)
}

// duration accepts a Go duration string, as nats-streaming-server does.
func (c *configReader) duration(key string, v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, typeError(key, `a duration string such as "30s"`, v)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("key %q: %w", key, err)
	}
	return d, nil
}

func (c *configReader) mapping(key string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, typeError(key, "a map", v)
	}
	return m, nil
}

// strList accepts an array of strings or a comma-separated string.
func (c *configReader) strList(key string, v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return splitList(x), nil
	case []any:
		out := make([]string, 0, len(x))
		for i, item := range x {
			s, ok := item.(string)
			if !ok {
				return nil, typeError(fmt.Sprintf("%s[%d]", key, i), "a string", item)
			}
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, typeError(key, "an array of strings", v)
}

// hostPort accepts "host:port" or a bare port (host "").
func (c *configReader) hostPort(key string, v any) (string, int, error) {
	if n, ok := v.(int64); ok {
		port, err := c.toInt(key, n)
		return "", port, err
	}
	s, err := c.str(key, v)
	if err != nil {
		return "", 0, err
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("key %q: %w", key, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("key %q: invalid port %q", key, p)
	}
	return host, port, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
