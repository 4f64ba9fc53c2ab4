package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

// NATSOptions configure a connection to a NATS server.
type NATSOptions struct {
	URL   string // one URL or a comma-separated list; user:pass in a URL works
	Name  string // connection name, shown by the NATS server's monitoring
	User  string
	Pass  string
	Token string
	// TLS: Secure requires TLS; the files are PEM.
	Secure                     bool
	TLSCert, TLSKey, TLSCACert string
	OnDisconnect, OnReconnect  func(string) // optional log hooks: called with the event
	// OnDiscoveredServers, if set, is called when the NATS cluster tells
	// the connection of servers it did not know.
	OnDiscoveredServers func()
}

type natsConn struct{ nc *nats.Conn }

type natsSub struct{ s *nats.Subscription }

func (s natsSub) Unsubscribe() error { return s.s.Unsubscribe() }

// DialNATS connects to NATS. The connection reconnects forever and does not
// buffer while disconnected (a lost publish is retried by its client, as
// with nats-streaming-server).
func DialNATS(o NATSOptions) (Conn, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(-1),
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Pass))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.Secure || o.TLSCert != "" || o.TLSCACert != "" {
		cfg, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	if h := o.OnDisconnect; h != nil {
		opts = append(opts, nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { h(fmt.Sprint(err)) }))
	}
	if h := o.OnReconnect; h != nil {
		opts = append(opts, nats.ReconnectHandler(func(nc *nats.Conn) { h(nc.ConnectedUrlRedacted()) }))
	}
	if h := o.OnDiscoveredServers; h != nil {
		opts = append(opts, nats.DiscoveredServersHandler(func(*nats.Conn) { h() }))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("transport: connect to %s: %w", redact(o.URL), err)
	}
	return natsConn{nc}, nil
}

func tlsConfig(o NATSOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSCert != "" || o.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("transport: tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.TLSCACert != "" {
		pem, err := os.ReadFile(o.TLSCACert)
		if err != nil {
			return nil, fmt.Errorf("transport: tls CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport: tls CA %s: no certificate found", o.TLSCACert)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// redact hides a password in a URL for error messages.
func redact(url string) string {
	for i := 0; i < len(url); i++ {
		if url[i] == '@' {
			for j := i; j >= 0; j-- {
				if url[j] == ':' && j+1 < i && (j < 2 || url[j-1] != '/') {
					return url[:j+1] + "xxxxx" + url[i:]
				}
			}
		}
	}
	return url
}

func (c natsConn) Publish(subject, reply string, data []byte) error {
	// Not PublishMsg: it takes a *nats.Msg, one more allocation for every
	// PubAck and delivery.
	if reply == "" {
		return c.nc.Publish(subject, data)
	}
	return c.nc.PublishRequest(subject, reply, data)
}

func (c natsConn) Subscribe(subject string, fn func(Msg)) (Subscription, error) {
	s, err := c.nc.Subscribe(subject, func(m *nats.Msg) {
		// A request to a subject nobody listens on comes back as a "503 no
		// responders" status. It is not an answer: a heartbeat sent to a
		// dead client's inbox must count as missed.
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return
		}
		// Pending counts the message being delivered until fn returns.
		n, _, _ := m.Sub.Pending()
		fn(Msg{Subject: m.Subject, Reply: m.Reply, Data: m.Data, More: n > 1})
	})
	if err != nil {
		return nil, fmt.Errorf("transport: subscribe %s: %w", subject, err)
	}
	// The server must never drop protocol traffic because a burst
	// outran its handler: no pending limits.
	if err := s.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("transport: subscribe %s: %w", subject, err)
	}
	return natsSub{s}, nil
}

func (c natsConn) Flush() error { return c.nc.Flush() }

func (c natsConn) Barrier(f func()) error { return c.nc.Barrier(f) }

func (c natsConn) Close() { c.nc.Close() }
