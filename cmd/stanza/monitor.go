package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nuid"
	"github.com/stanza-io/stanza/node"
)

// monitorShutdownMax bounds how long the monitoring server waits for
// requests in flight when stanza stops.
const monitorShutdownMax = 2 * time.Second

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
	l, err := net.Listen("tcp", net.JoinHostPort(opts.Host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("monitoring: %w", err)
	}
	mux := http.NewServeMux()
	r.node.RegisterMonitoring(mux, info)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("monitoring server stopped", "err", err)
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
	r.log.Info("monitoring", "addr", l.Addr().String())
	return nil
}
