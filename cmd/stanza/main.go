// Command stanza runs a stanza server: a NATS Streaming compatible server
// replicated with raft. It accepts nats-streaming-server's flags and config
// files; see Usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nuid"
	"github.com/stanza-io/stanza/node"
	"github.com/stanza-io/stanza/statemachine/pb"
	"github.com/stanza-io/stanza/storage"
	"github.com/stanza-io/stanza/transport"
	"google.golang.org/protobuf/proto"
)

// version is stanza's version, shown by -v.
const version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run starts the server and blocks until a signal (or stop, for tests)
// asks it to end. It returns the exit code.
func run(args []string, stdout, stderr io.Writer, stop <-chan struct{}) int {
	opts, err := ParseOptions(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, Usage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "stanza: %v\n", err)
		return 2
	}
	if opts.ShowVersion {
		fmt.Fprintf(stdout, "stanza version %s\n", version)
		return 0
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "stanza: %v\n", err)
		return 2
	}
	log := newLogger(opts, stderr)
	for _, ig := range opts.Ignored {
		log.Warn("option accepted for compatibility but has no effect in stanza", "option", ig)
	}
	// A signal (or stop) ends the server, or its wait as an FT standby.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	quit, returned := make(chan struct{}), make(chan struct{})
	defer close(returned)
	go func() {
		select {
		case s := <-sig:
			log.Info("shutting down", "signal", s.String())
		case <-stop:
		case <-returned:
			return
		}
		close(quit)
	}()

	srv, err := start(opts, log, quit)
	if errors.Is(err, errQuit) {
		return 0
	}
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer srv.shutdown()
	select {
	case <-quit:
		return 0
	case <-srv.node.Done():
		log.Error("server stopped", "err", srv.node.Err())
		return 1
	case err := <-srv.abort:
		log.Error("server stopped", "err", err)
		return 1
	}
}

// errQuit is start's answer when it was asked to quit before it started
// serving (an FT standby that never became active).
var errQuit = errors.New("quit before serving")

func newLogger(opts Options, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if opts.Debug || opts.Trace {
		level = slog.LevelDebug
	}
	ho := &slog.HandlerOptions{Level: level}
	if opts.LogJSON {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

type running struct {
	serverID string
	nats     *transport.Embedded
	conn     transport.Conn
	node     *node.Server
	closers  []func()
	log      *slog.Logger
	mon      *monitorSwitch
	monInfo  node.MonitorInfo
	// FT mode: the heartbeats stop when ftQuit closes. abort reports
	// another active server of the group, or a partition that has some of
	// this one's channels: the server must stop.
	ft     *ft
	ftQuit chan struct{}
	abort  chan error
	// discovered signals that the NATS cluster grew (partitioning checks
	// its channels again).
	discovered chan struct{}
}

func (r *running) shutdown() {
	if r.ftQuit != nil {
		close(r.ftQuit)
	}
	if r.ft != nil {
		r.ft.close()
	}
	if r.node != nil {
		r.node.Shutdown()
	}
	if r.conn != nil {
		r.conn.Close()
	}
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	if r.nats != nil {
		r.nats.Shutdown()
	}
	r.log.Info("stopped")
}

func start(opts Options, log *slog.Logger, quit <-chan struct{}) (r *running, err error) {
	startTime := time.Now()
	r = &running{log: log, serverID: nuid.Next(), abort: make(chan error, 1), discovered: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			r.shutdown()
		}
	}()
	url := opts.NATSServerURL
	if url == "" {
		r.nats, err = transport.StartEmbedded(transport.EmbeddedOptions{
			Host: opts.Host, Port: opts.Port, HTTPPort: opts.HTTPPort, ClusterListen: opts.NATSCluster, Routes: opts.Routes,
			ClusterName: opts.ClusterID, User: opts.User, Pass: opts.Pass, Token: opts.Auth,
			TLSCert: opts.TLSCert, TLSKey: opts.TLSKey, TLSCACert: opts.TLSCACert, TLSVerify: opts.TLSVerify, Debug: opts.Trace, Trace: opts.Trace, Logger: log,
		})
		if err != nil {
			return r, err
		}
		url = r.nats.ClientURL()
		log.Info("embedded NATS server started", "url", url)
	}
	clientCA := opts.TLSClientCACert
	if r.nats != nil && opts.TLSCert != "" && clientCA == "" {
		// Our own connection to our own TLS port trusts the CA we were given.
		clientCA = opts.TLSCACert
	}
	name := "stanza"
	if opts.NodeID != "" {
		name = opts.NodeID
	}
	r.conn, err = transport.DialNATS(transport.NATSOptions{
		URL: url, Name: "_STANZA-" + opts.ClusterID + "-" + name, User: opts.User, Pass: opts.Pass, Token: opts.Auth,
		Secure: opts.Secure || r.nats != nil && opts.TLSCert != "", TLSCert: opts.TLSClientCert, TLSKey: opts.TLSClientKey, TLSCACert: clientCA,
		OnDisconnect: func(e string) { log.Warn("disconnected from NATS", "err", e) },
		OnReconnect:  func(u string) { log.Info("reconnected to NATS", "url", u) },
		OnDiscoveredServers: func() {
			select {
			case r.discovered <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return r, err
	}
	if opts.FTGroup != "" {
		// A standby serves its monitoring endpoints while it waits; the
		// lock, not a probe of who answers, decides who serves.
		if r.ft, err = startFT(r.conn, opts, r.serverID, log); err != nil {
			return r, err
		}
		if err := r.startMonitoring(opts, startTime); err != nil {
			return r, err
		}
		lock, err := r.ft.waitActive(opts.Dir, quit)
		if err != nil {
			return r, err
		}
		if lock == nil {
			return r, errQuit
		}
		// Released last, once the store is closed.
		r.closers = append(r.closers, func() { lock.Close() })
		// The old active server is gone (it held the lock); a server that
		// still answers is another one serving this cluster ID outside the
		// group (or, partitioned, one that has some of our channels).
		if opts.Partitioning {
			if err := r.partition(opts); err != nil {
				return r, err
			}
		} else if err := ensureAlone(r.conn, opts); err != nil {
			return r, err
		}
		r.ftQuit = make(chan struct{})
		go r.ft.heartbeat(time.Now(), r.ftQuit, r.abort)
		log.Info("ft: server is active", "group", opts.FTGroup)
	} else if opts.Partitioning {
		// The other partitions answer on the cluster ID too: what must be
		// alone is each channel.
		if err := r.partition(opts); err != nil {
			return r, err
		}
	} else if !opts.Clustered {
		if err := ensureAlone(r.conn, opts); err != nil {
			return r, err
		}
	}
	var scope string
	var partitions []string
	if opts.Partitioning {
		if scope, err = partitionScope(opts); err != nil {
			return r, err
		}
		partitions = partitionChannels(opts)
	}

	var st node.Storage
	switch opts.StoreType {
	case StoreFile:
		dir := opts.Dir
		if opts.Clustered && opts.LogPath != "" {
			dir = opts.LogPath
		}
		fst, err := node.OpenFileStorage(storage.OSFS{}, dir, node.FileStorageOptions{NoSync: !opts.ClusterSync, Preallocate: opts.ClusterSync})
		if err != nil {
			return r, err
		}
		r.closers = append(r.closers, func() { fst.Close() })
		st = fst
		log.Info("file store", "dir", dir, "fsync", opts.ClusterSync)
	default:
		st = node.NewMemStorage()
		log.Info("memory store: nothing survives a restart")
	}

	peers := []string{name}
	for _, p := range opts.Peers {
		if p != name {
			peers = append(peers, p)
		}
	}
	cfg := node.Config{
		ClusterID: opts.ClusterID, DiscoverPrefix: opts.DiscoverPrefix, NodeName: name, Peers: peers, Limits: opts.Limits,
		HBIntervalNanos: int64(opts.HBInterval), HBTimeoutNanos: int64(opts.HBTimeout), HBFailCount: opts.HBFailCount,
		SnapshotEntries: opts.SnapshotEntries, Logger: log,
		Join: opts.Join, AllowMembershipChanges: opts.AllowAddRemove,
		Partitions: partitions, SubjectScope: scope, ReplaceDurable: opts.ReplaceDurable,
	}
	r.node, err = node.StartServer(cfg, st, r.conn)
	if err != nil {
		return r, err
	}
	if err := r.startProfiling(opts); err != nil {
		return r, err
	}
	if r.mon != nil {
		r.monitorNode()
	} else if err := r.startMonitoring(opts, startTime); err != nil {
		return r, err
	}
	log.Info("stanza started", "version", version, "cluster_id", opts.ClusterID, "node", name, "peers", peers, "store", opts.StoreType)
	return r, nil
}

// partition checks this partitioned server's channels against the other
// servers', answers theirs from now on, and checks again whenever the
// NATS cluster grows, until the server stops.
func (r *running) partition(opts Options) error {
	p, err := startPartitions(r.conn, opts, r.serverID, r.log)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, p.close)
	go p.watch(r.discovered, r.abort)
	return nil
}

// ensureAlone refuses to start a standalone server where another one already
// serves the cluster ID, as nats-streaming-server does.
func ensureAlone(conn transport.Conn, opts Options) error {
	// A client ID that fails validation: a live server answers with an
	// error and registers nothing.
	found, err := anyAnswer(conn, opts.DiscoverPrefix+"."+opts.ClusterID, 250*time.Millisecond, func(inbox string) ([]byte, error) {
		return proto.Marshal(&pb.ConnectRequest{ClientID: "stanza.probe", HeartbeatInbox: inbox})
	})
	if err != nil {
		return err
	}
	if found {
		return fmt.Errorf("discovered another streaming server with cluster ID %q", opts.ClusterID)
	}
	return nil
}
