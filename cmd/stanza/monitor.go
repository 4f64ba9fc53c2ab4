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
	"time"

	"github.com/nats-io/nuid"
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
func (r *running) startMonitoring(opts Options, startTime time.Time) error {
	if opts.HTTPPort == 0 {
		return nil
	}
	info := node.MonitorInfo{
		ClusterID: opts.ClusterID, ServerID: nuid.Next(), NodeID: opts.NodeID, Version: version,
		Clustered: opts.Clustered, StoreType: opts.StoreType, Start: startTime,
	}
	if r.nats != nil {
		mux, ok := r.nats.HTTPHandler().(*http.ServeMux)
		if !ok {
			return fmt.Errorf("monitoring: the embedded NATS server has no monitoring mux")
		}
		r.node.RegisterMonitoring(mux, info)
		return nil
	}
	port := opts.HTTPPort
	if port < 0 {
		port = 0
	}
	mux := http.NewServeMux()
	r.node.RegisterMonitoring(mux, info)
	return r.serveHTTP("monitoring", net.JoinHostPort(opts.Host, strconv.Itoa(port)), mux)
}

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
