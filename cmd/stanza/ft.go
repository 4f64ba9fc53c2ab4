package main

// Fault-tolerant (FT) mode, as nats-streaming-server has it: the servers of
// an FT group share one FILE store (a shared file system for servers on
// different machines). The one holding the store's lock serves; the others
// stand by, without opening the store, and watch the active server's
// heartbeats on _STAN.ft.<cluster_id>.<group>. When those stop, a standby
// tries the lock; whoever gets it opens the store and serves.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stanza-io/stanza/storage"
	"github.com/stanza-io/stanza/transport"
)

const (
	// ftHBInterval is how often the active server sends its heartbeat, and
	// ftHBMissed how long a standby waits without one before it tries the
	// lock; each server draws its own within ±10% (nats-streaming-server's
	// defaults).
	ftHBInterval = time.Second
	ftHBMissed   = 1250 * time.Millisecond
	// ftLockFile, in the store's directory, is what the active server holds.
	ftLockFile = "ft.lck"
)

// ftSubject is where the active server of group sends its heartbeats.
func ftSubject(clusterID, group string) string { return "_STAN.ft." + clusterID + "." + group }

// ft is one server's part in its FT group.
type ft struct {
	conn            transport.Conn
	subject         string
	serverID        string
	log             *slog.Logger
	every, missedAt time.Duration
	hb              chan []byte
	sub             transport.Subscription
}

func startFT(conn transport.Conn, opts Options, serverID string, log *slog.Logger) (*ft, error) {
	f := &ft{conn: conn, subject: ftSubject(opts.ClusterID, opts.FTGroup), serverID: serverID, log: log,
		every: jitter(ftHBInterval), missedAt: jitter(ftHBMissed), hb: make(chan []byte, 16)}
	sub, err := conn.Subscribe(f.subject, func(m transport.Msg) {
		// Dropping a heartbeat is harmless: the lock decides.
		select {
		case f.hb <- m.Data:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("ft: subscribe to %s: %w", f.subject, err)
	}
	f.sub = sub
	if err := conn.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("ft: subscribe to %s: %w", f.subject, err)
	}
	return f, nil
}

func (f *ft) close() { f.sub.Unsubscribe() }

// jitter returns d moved by up to 10% either way, so that the standbys of
// a group do not all try the lock at once.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// waitActive stands by until this server holds the store's lock in dir:
// each time ft.missedAt passes without a heartbeat from another server,
// it tries the lock. It returns the lock, or nil when quit closes first.
func (f *ft) waitActive(dir string, quit <-chan struct{}) (io.Closer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ft: %w", err)
	}
	path := filepath.Join(dir, ftLockFile)
	f.log.Info("ft: standing by", "group", f.subject, "lock", path)
	var note rateLimit
	timer := time.NewTimer(f.missedAt)
	defer timer.Stop()
	for {
		select {
		case <-quit:
			return nil, nil
		case data := <-f.hb:
			if id, _, ok := decodeFTHeartbeat(data); ok && id != f.serverID {
				timer.Reset(f.missedAt)
			}
			continue
		case <-timer.C:
		}
		l, err := storage.OSFS{}.Lock(path)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			// Not a lock someone holds (permissions, a file system gone):
			// it may resolve; try again later.
			if note.ok() {
				f.log.Error("ft: cannot take the store lock", "err", err)
			}
		} else if note.ok() {
			f.log.Info("ft: the store is locked by another server; standing by")
		}
		timer.Reset(f.missedAt)
	}
}

// heartbeat sends the active server's heartbeats until quit closes. If
// another server of the group claims to be active and became so before
// this one, the store may already be written by two servers: heartbeat
// reports it on abort and returns, and the server must stop.
func (f *ft) heartbeat(activated time.Time, quit <-chan struct{}, abort chan<- error) {
	msg := encodeFTHeartbeat(f.serverID, activated)
	t := time.NewTicker(f.every)
	defer t.Stop()
	var note rateLimit
	for {
		if err := f.conn.Publish(f.subject, "", msg); err != nil && note.ok() {
			f.log.Warn("ft: heartbeat not sent", "err", err)
		}
	wait:
		select {
		case <-quit:
			return
		case <-t.C:
		case data := <-f.hb:
			id, at, ok := decodeFTHeartbeat(data)
			if !ok || id == f.serverID {
				goto wait
			}
			if at.Before(activated) {
				abort <- fmt.Errorf("ft: serverID %q claims to be active, aborting", id)
				return
			}
			f.log.Error(fmt.Sprintf("ft: serverID %q claims to be active", id))
			goto wait
		}
	}
}

// encodeFTHeartbeat encodes nats-streaming-server's CtrlMsg{MsgType:
// FTHeartbeat, ServerID, Data: the activation time (time.MarshalBinary)}.
func encodeFTHeartbeat(serverID string, activated time.Time) []byte {
	at, _ := activated.MarshalBinary()
	return encodeCtrlMsg(ctrlMsgFTHeartbeat, serverID, at)
}

// decodeFTHeartbeat decodes an FT heartbeat; ok is false for anything else.
func decodeFTHeartbeat(b []byte) (serverID string, activated time.Time, ok bool) {
	typ, serverID, at, ok := decodeCtrlMsg(b)
	if !ok || typ != ctrlMsgFTHeartbeat || serverID == "" || activated.UnmarshalBinary(at) != nil {
		return "", time.Time{}, false
	}
	return serverID, activated, true
}

// rateLimit lets a repeated log line through once a minute.
type rateLimit struct{ next time.Time }

func (r *rateLimit) ok() bool {
	now := time.Now()
	if now.Before(r.next) {
		return false
	}
	r.next = now.Add(time.Minute)
	return true
}
