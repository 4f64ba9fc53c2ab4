package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
)

// A NATS port locked with a user and password (or a token) refuses a STAN
// client without credentials and serves one with them; the server's own
// connection uses the same credentials.
func TestRunNATSAuth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   []string
		withURL func(port int) string
	}{
		{"user and password", []string{"--user", "alice", "--pass", "s3cret"}, func(p int) string { return fmt.Sprintf("nats://alice:s3cret@127.0.0.1:%d", p) }},
		{"token", []string{"--auth", "t0ken"}, func(p int) string { return fmt.Sprintf("nats://t0ken@127.0.0.1:%d", p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			startRun(t, append([]string{"-a", "127.0.0.1", "-p", fmt.Sprint(port)}, tc.flags...)...)
			sc := connectRetry(t, tc.withURL(port), "authorized")
			defer sc.Close()
			if err := sc.Publish("secure", []byte("ok")); err != nil {
				t.Fatalf("publish with credentials: %v", err)
			}
			_, err := stan.Connect("test-cluster", "intruder", stan.NatsURL(fmt.Sprintf("nats://127.0.0.1:%d", port)), stan.ConnectWait(time.Second))
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Fatalf("connect without credentials: %v, want an authorization error", err)
			}
		})
	}
}
