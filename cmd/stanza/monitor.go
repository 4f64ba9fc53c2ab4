package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/stanza-io/stanza/node"
)

// monitorShutdownMax bounds how long the monitoring server waits for
// requests in flight when stanza stops.
const monitorShutdownMax = 2 * time.Second

// startProfiling serves Go's pprof endpoints (/debug/pprof/) on
// Host:ProfPort when --profile is set, as nats-server's profiling port does.
func (r *running) startProfiling(opts Options) error {
	if opts.ProfPort == 0 {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return r.serveHTTP("profiling", net.JoinHostPort(opts.Host, strconv.Itoa(opts.ProfPort)), mux)
}

// startMonitoring serves the monitoring endpoints when -m is set: on the
// embedded NATS server's monitoring port, or, with an external NATS server,
// on stanza's own HTTP server at Host:HTTPPort, as nats-streaming-server does.
// Until the node runs (a standby of an FT group), they answer as a standby.
func (r *running) startMonitoring(opts Options, startTime time.Time) error {
	if opts.HTTPPort == 0 {
		return nil
	}
	r.monInfo = node.MonitorInfo{
		ClusterID: opts.ClusterID, ServerID: r.serverID, NodeID: opts.NodeID, Version: version,
		Clustered: opts.Clustered, FT: opts.FTGroup != "", StoreType: opts.StoreType, Start: startTime,
	}
	r.mon = &monitorSwitch{}
	if r.node != nil {
		r.monitorNode()
	} else {
		standby := http.NewServeMux()
		node.RegisterStandbyMonitoring(standby, r.monInfo)
		r.mon.h.Store(standby)
	}
	var mux *http.ServeMux
	if r.nats != nil {
		var ok bool
		if mux, ok = r.nats.HTTPHandler().(*http.ServeMux); !ok {
			return fmt.Errorf("monitoring: the embedded NATS server has no monitoring mux")
		}
	} else {
		mux = http.NewServeMux()
	}
	for _, p := range node.MonitorPaths {
		mux.Handle(p, r.mon)
	}
	if r.nats != nil {
		return nil
	}
	port := opts.HTTPPort
	if port < 0 {
		port = 0
	}
	return r.serveHTTP("monitoring", net.JoinHostPort(opts.Host, strconv.Itoa(port)), mux)
}

// monitorNode points the monitoring endpoints at the running node.
func (r *running) monitorNode() {
	if r.mon == nil {
		return
	}
	m := http.NewServeMux()
	r.node.RegisterMonitoring(m, r.monInfo)
	r.mon.h.Store(m)
}

// monitorSwitch serves the endpoints of a standby until the node runs, then
// the node's: the NATS server's mux cannot drop a handler once registered.
type monitorSwitch struct{ h atomic.Pointer[http.ServeMux] }

func (m *monitorSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.h.Load().ServeHTTP(w, r) }

// serveHTTP serves mux on addr until the server stops.
func (r *running) serveHTTP(what, addr string, mux *http.ServeMux) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error(what+" server stopped", "err", err)
		}
	}()
	r.closers = append(r.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), monitorShutdownMax)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			hs.Close()
		}
		<-done
	})
	r.log.Info(what, "addr", l.Addr().String())
	return nil
}
