package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	stan "github.com/nats-io/stan.go"
)

// writeTLSFiles makes a CA and a server certificate for 127.0.0.1, as PEM
// files in dir.
func writeTLSFiles(t *testing.T, dir string) (ca, cert, key string, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stanza test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER), pool
}

// With --tls the embedded NATS port speaks only TLS: a STAN client that
// trusts the CA connects and publishes; one without TLS is refused.
func TestRunEmbeddedNATSTLS(t *testing.T) {
	ca, cert, key, pool := writeTLSFiles(t, t.TempDir())
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	_, log := startRun(t, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "--tls", "--tlscert", cert, "--tlskey", key, "--tlscacert", ca)

	var sc stan.Conn
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(url, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
		if err == nil {
			sc, err = stan.Connect("test-cluster", "tls-client", stan.NatsConn(nc), stan.ConnectWait(time.Second))
			if err == nil {
				t.Cleanup(func() { sc.Close(); nc.Close() })
				break
			}
			nc.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS client: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond) // the server is still starting
	}
	if err := sc.Publish("secure", []byte("over TLS")); err != nil {
		t.Fatalf("publish over TLS: %v", err)
	}
	if _, err := stan.Connect("test-cluster", "plain-client", stan.NatsURL(url), stan.ConnectWait(time.Second)); err == nil {
		t.Fatal("a client without TLS connected to a TLS-only port")
	}
}
