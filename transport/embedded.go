package transport

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configure a nats-server running inside the process.
type EmbeddedOptions struct {
	Host     string // client listen host
	Port     int    // client port; -1 picks a free one
	HTTPPort int    // monitoring port; 0 = none, -1 picks a free one
	// ClusterListen is the route listen URL (nats://host:port) when nodes
	// form a NATS cluster; Routes are the other nodes' route URLs.
	ClusterListen string
	Routes        []string
	ClusterName   string
	User, Pass    string
	Token         string // authorization token (--auth)
	// TLS on the client port: a certificate and key (PEM), and with
	// TLSVerify a CA that client certificates must chain to.
	TLSCert, TLSKey, TLSCACert string
	TLSVerify                  bool
	MaxPayload                 int32 // 0 = nats-server's default (1 MiB)
	Debug, Trace               bool
	Logger                     *slog.Logger
}

// Embedded is a running embedded nats-server.
type Embedded struct {
	s *server.Server
}

// StartEmbedded starts a nats-server and waits until it accepts clients.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	opts := &server.Options{
		Host: o.Host, Port: o.Port, HTTPPort: o.HTTPPort, HTTPHost: o.Host,
		Username: o.User, Password: o.Pass, Authorization: o.Token, MaxPayload: o.MaxPayload,
		NoSigs: true, Debug: o.Debug, Trace: o.Trace,
	}
	if o.ClusterListen != "" {
		u, err := url.Parse(o.ClusterListen)
		if err != nil || u.Port() == "" {
			return nil, fmt.Errorf("transport: cluster listen URL %q: want nats://host:port", o.ClusterListen)
		}
		var port int
		if _, err := fmt.Sscan(u.Port(), &port); err != nil {
			return nil, fmt.Errorf("transport: cluster listen URL %q: %w", o.ClusterListen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: u.Hostname(), Port: port}
		for _, r := range o.Routes {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			ru, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("transport: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, ru)
		}
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.TLSCert, KeyFile: o.TLSKey, CaFile: o.TLSCACert, Verify: o.TLSVerify})
		if err != nil {
			return nil, fmt.Errorf("transport: embedded NATS TLS: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, o.TLSVerify, 2
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("transport: embedded NATS: %w", err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s.SetLoggerV2(natsLogger{logger.With("component", "nats")}, o.Debug, o.Trace, false)
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("transport: embedded NATS did not start on %s:%d", o.Host, o.Port)
	}
	return &Embedded{s: s}, nil
}

// ClientURL is the URL clients connect to.
func (e *Embedded) ClientURL() string { return e.s.ClientURL() }

// HTTPHandler is the monitoring mux, where more endpoints can be added; nil
// without a monitoring port.
func (e *Embedded) HTTPHandler() http.Handler { return e.s.HTTPHandler() }

// NumRoutes is the number of NATS routes to other nodes.
func (e *Embedded) NumRoutes() int { return e.s.NumRoutes() }

// Shutdown stops the server.
func (e *Embedded) Shutdown() {
	e.s.Shutdown()
	e.s.WaitForShutdown()
}

type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(f string, v ...any) { n.l.Info(fmt.Sprintf(f, v...)) }
func (n natsLogger) Warnf(f string, v ...any)   { n.l.Warn(fmt.Sprintf(f, v...)) }
func (n natsLogger) Fatalf(f string, v ...any)  { n.l.Error(fmt.Sprintf(f, v...)) }
func (n natsLogger) Errorf(f string, v ...any)  { n.l.Error(fmt.Sprintf(f, v...)) }
func (n natsLogger) Debugf(f string, v ...any)  { n.l.Debug(fmt.Sprintf(f, v...)) }
func (n natsLogger) Tracef(f string, v ...any)  { n.l.Debug(fmt.Sprintf(f, v...), "trace", true) }
