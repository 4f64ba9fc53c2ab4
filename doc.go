// Package stanza is a streaming server that speaks the NATS Streaming (STAN)
// client protocol and replicates its state with etcd raft.
//
// The code lives in the sub-packages; this root package holds only the
// project-wide tests (lint and import rules, see lint_test.go).
package stanza
