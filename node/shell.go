package node

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/stanza-io/stanza/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// Server runs a Core on a real bus. One goroutine at a time runs the core,
// under turnMu: the NATS callback that delivers a message when nothing is
// queued behind it (a lone request is answered on the goroutine that
// received it, with no hand-off), or else the server's own goroutine, which
// also drives time and runs Do. Under load, callbacks only queue, and the
// core takes what piled up in one batch.
type Server struct {
	core *Core
	conn transport.Conn
	log  *slog.Logger
	tick time.Duration

	turnMu sync.Mutex // held while the core runs
	halted bool       // under turnMu: the core must not run again
	batch  []Msg      // under turnMu: the inbox being received

	mu        sync.Mutex
	inbox     []Msg
	notify    chan struct{}
	do        chan func(*Core)
	stop      chan struct{}
	failed    chan struct{} // closed when the core stopped on an error
	done      chan struct{}
	err       error
	subs      map[string]transport.Subscription
	listening []string // what reconcile last put in place
	stopped   bool
	store     *timedStorage
}

// timedStorage measures how long the core's log writes take (fsync
// included): the clock is read here, in the shell, never in the core.
type timedStorage struct {
	Storage
	save Histogram
}

func (t *timedStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, mustSync bool) error {
	start := time.Now()
	err := t.Storage.Save(hs, ents, mustSync)
	if len(ents) > 0 || mustSync {
		t.save.Observe(time.Since(start).Nanoseconds())
	}
	return err
}

// saveLatency is the log write histogram; call it on the core's goroutine
// (inside Do).
func (s *Server) saveLatency() Histogram { return s.store.save }

// StartServer starts a replica on conn with storage.
func StartServer(cfg Config, st Storage, conn transport.Conn) (*Server, error) {
	cfg.Defaults()
	if cfg.MetricsClock == nil {
		cfg.MetricsClock = func() int64 { return time.Now().UnixNano() }
	}
	s := &Server{conn: conn, log: cfg.Logger, tick: time.Duration(cfg.TickNanos), notify: make(chan struct{}, 1),
		do: make(chan func(*Core)), stop: make(chan struct{}), failed: make(chan struct{}), done: make(chan struct{}),
		subs: map[string]transport.Subscription{}}
	s.store = &timedStorage{Storage: st}
	core, err := New(cfg, s.store, func(subject, reply string, data []byte) {
		if err := conn.Publish(subject, reply, data); err != nil {
			s.log.Debug("publish failed", "subject", subject, "err", err)
		}
	})
	if err != nil {
		return nil, err
	}
	s.core = core
	// The first subscriptions can deliver, and their callbacks run the
	// core, before reconcile is done with them.
	s.turnMu.Lock()
	err = s.reconcile()
	s.turnMu.Unlock()
	if err != nil {
		return nil, err
	}
	go s.run()
	return s, nil
}

// enqueue queues m for the core. When more messages wait behind m on its
// subscription, it returns: the last of them runs the core for all. That
// one runs the core itself on its own goroutine if the core is idle, so a
// lone request is answered without a hand-off to another goroutine. If the
// core is busy, its runner finds m when it is done.
func (s *Server) enqueue(m Msg, more bool) {
	s.mu.Lock()
	s.inbox = append(s.inbox, m)
	s.mu.Unlock()
	if more || !s.turnMu.TryLock() {
		return
	}
	s.turn(nil, false)
	s.turnMu.Unlock()
	s.wakeIfQueued()
}

// wakeIfQueued wakes the server's goroutine when messages arrived while a
// callback ran the core: their senders found it busy and left them to the
// runner. It is called after turnMu is released, so a sender that found
// the core busy queued its message before this looks.
func (s *Server) wakeIfQueued() {
	s.mu.Lock()
	queued := len(s.inbox) > 0
	s.mu.Unlock()
	if !queued {
		return
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Server) run() {
	defer close(s.done)
	ticker := time.NewTicker(s.tick)
	defer ticker.Stop()
	for {
		var f func(*Core)
		tick := false
		select {
		case <-s.stop:
			s.turnMu.Lock()
			s.halted = true
			s.turnMu.Unlock()
			return
		case <-s.failed:
			return
		case <-ticker.C:
			tick = true
		case <-s.notify:
		case f = <-s.do:
		}
		s.turnMu.Lock()
		s.turn(f, tick)
		s.turnMu.Unlock()
		s.wakeIfQueued()
	}
}

// turn runs the core once: f (a Do), a tick, every queued message, then
// Process and reconcile. The caller holds turnMu. When the core fails, it
// is halted: nothing runs it again, and the server stops.
func (s *Server) turn(f func(*Core), tick bool) {
	if s.halted {
		return
	}
	if f != nil {
		f(s.core)
	}
	now := time.Now().UnixNano()
	if tick {
		s.core.Tick(now)
	}
	s.mu.Lock()
	s.batch, s.inbox = s.inbox, s.batch[:0]
	s.mu.Unlock()
	for _, m := range s.batch {
		s.core.Receive(now, m)
	}
	clear(s.batch)
	if err := s.core.Process(now); err != nil {
		s.log.Error("replica stopped", "err", err)
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		s.halted = true
		close(s.failed)
		return
	}
	if err := s.reconcile(); err != nil {
		s.log.Warn("subscriptions", "err", err)
	}
}

// reconcile subscribes to what the core listens on now, and unsubscribes
// from what it no longer wants. It costs nothing when that did not change:
// it runs after every batch, and its flush (a round trip to the NATS
// server, so that the subscriptions are in place) must not.
func (s *Server) reconcile() error {
	listen := s.core.Listen()
	if slices.Equal(listen, s.listening) {
		return nil
	}
	want := map[string]bool{}
	for _, subject := range listen {
		want[subject] = true
		if s.subs[subject] != nil {
			continue
		}
		barrier := s.core.NeedsBarrier(subject)
		sub, err := s.conn.Subscribe(subject, func(m transport.Msg) {
			msg := Msg{Subject: m.Subject, Reply: m.Reply, Data: m.Data}
			if barrier {
				// Close and unsubscribe wait for the publishes and acks
				// received before them.
				if err := s.conn.Barrier(func() { s.enqueue(msg, false) }); err == nil {
					return
				}
			}
			s.enqueue(msg, m.More)
		})
		if err != nil {
			return err
		}
		s.subs[subject] = sub
	}
	for subject, sub := range s.subs {
		if !want[subject] {
			if err := sub.Unsubscribe(); err != nil {
				s.log.Debug("unsubscribe", "subject", subject, "err", err)
			}
			delete(s.subs, subject)
		}
	}
	if err := s.conn.Flush(); err != nil {
		return err
	}
	s.listening = listen
	return nil
}

// Do runs f on the core's goroutine and waits: the way to read the core's
// state (monitoring) without racing it.
func (s *Server) Do(f func(*Core)) error {
	ran := make(chan struct{})
	select {
	case s.do <- func(c *Core) { f(c); close(ran) }:
		select {
		case <-ran:
			return nil
		case <-s.done: // the core failed before f could run
			return fmt.Errorf("node: server stopped: %v", s.Err())
		}
	case <-s.done:
		return fmt.Errorf("node: server stopped: %v", s.Err())
	}
}

// Err is why the server stopped on its own, if it did.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Done is closed when the server stops.
func (s *Server) Done() <-chan struct{} { return s.done }

// Shutdown stops the server and drops its subscriptions.
func (s *Server) Shutdown() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
}
