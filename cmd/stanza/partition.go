package main

// Channel partitioning, as nats-streaming-server has it (config
// `partitioning: true`, with the channels in store_limits.channels):
// servers sharing a cluster ID on one NATS each serve the channels of
// their own list, and nothing is replicated between them (the core's side
// is node/partition.go). No two may have a channel in common. A starting
// server sends its list on _STAN.part.<cluster_id>, as a CtrlMsg
// Partitioning whose Data is the channels, each as a little-endian uint16
// length and the name; every server already there answers with a CtrlMsg
// Partitioning whose Data is the first channel of the list it has too, or
// nothing. The start fails on a conflict. nats-streaming-server servers
// speak the same exchange, so the two can share a cluster ID.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nuid"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"github.com/stanza-io/stanza/storage"
	"github.com/stanza-io/stanza/transport"
	"google.golang.org/protobuf/proto"
)

const (
	// partitionWait is how long a starting server waits for the answers
	// to its list, after the last one that came.
	partitionWait = time.Second
	// partitionSettle is how long after the NATS cluster grew a server
	// checks its channels again (nats-streaming-server's wait).
	partitionSettle = 500 * time.Millisecond
	// partitionProbeWait is how long a partitioned server waits for a
	// server that is not partitioned to answer its probe (as ensureAlone).
	partitionProbeWait = 250 * time.Millisecond
	// partitionListBytes bounds the Data of one list message; a longer
	// list goes in several, each answered on its own.
	partitionListBytes = 64 << 10
	// partitionIDFile, in a FILE store's directory, holds the scope of the
	// server's private subjects (node.Config.SubjectScope).
	partitionIDFile = "partition.id"
)

func partitionSubject(clusterID string) string { return "_STAN.part." + clusterID }

// partitionChannels are the channels a partitioned server serves: the
// names and patterns of its per-channel limits, sorted.
func partitionChannels(opts Options) []string {
	var chans []string
	for c := range opts.Limits.PerChannel {
		chans = append(chans, c)
	}
	slices.Sort(chans)
	return chans
}

// partitions answers the lists of the servers that start after this one.
type partitions struct {
	conn     transport.Conn
	serverID string
	subject  string
	opts     Options
	channels []string
	log      *slog.Logger
	sub      transport.Subscription
	done     chan struct{} // closed by close
	// malformed limits the warnings about malformed lists (answer runs on
	// the subscription's one goroutine).
	malformed rateLimit
}

// startPartitions starts answering other servers' lists on conn, then
// sends this server's and fails if another server has any of its channels.
func startPartitions(conn transport.Conn, opts Options, serverID string, log *slog.Logger) (*partitions, error) {
	subject := partitionSubject(opts.ClusterID)
	p := &partitions{conn: conn, serverID: serverID, subject: subject, opts: opts, channels: partitionChannels(opts), log: log, done: make(chan struct{})}
	sub, err := conn.Subscribe(subject, p.answer)
	if err != nil {
		return nil, fmt.Errorf("partitioning: subscribe to %s: %w", subject, err)
	}
	p.sub = sub
	if err := p.checkUnique(subject); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	if err := p.checkAllPartitioned(opts); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	log.Info("partitioning: serving channels", "channels", strings.Join(p.channels, ","))
	return p, nil
}

func (p *partitions) close() {
	close(p.done)
	p.sub.Unsubscribe()
}

// watch checks the channels again each time the NATS cluster grows (a
// server with some of them may be in the part that joined), after
// partitionSettle for the routes to form, until close. A conflict goes to
// abort: the server must stop, as nats-streaming-server does. The other
// server checks too, and stops as well if this one is still there to
// answer.
func (p *partitions) watch(discovered <-chan struct{}, abort chan<- error) {
	for {
		select {
		case <-p.done:
			return
		case <-discovered:
		}
		select {
		case <-p.done:
			return
		case <-time.After(partitionSettle):
		}
		p.log.Info("partitioning: the NATS cluster grew; checking the channels again")
		err := p.checkUnique(p.subject)
		if err == nil {
			err = p.checkAllPartitioned(p.opts)
		}
		if err != nil {
			p.log.Error("partitioning: the NATS cluster grew, and another server has some of this server's channels", "err", err)
			select {
			case abort <- err:
			default: // the server is stopping for another reason already
			}
			return
		}
	}
}

// answer answers one other server's list with the first of its channels
// that overlaps one of ours, or with nothing.
func (p *partitions) answer(m transport.Msg) {
	typ, from, data, ok := decodeCtrlMsg(m.Data)
	if !ok || typ != ctrlMsgPartitioning || m.Reply == "" {
		if p.malformed.ok() {
			p.log.Warn("partitioning: dropping a malformed channels list", "reply", m.Reply)
		}
		return
	}
	if from == p.serverID {
		return
	}
	theirs, err := decodeChannelList(data)
	if err != nil {
		if p.malformed.ok() {
			p.log.Warn("partitioning: dropping a malformed channels list", "server", from, "err", err)
		}
		return
	}
	var conflict []byte
	if c, found := overlap(theirs, p.channels); found {
		conflict = []byte(c)
		p.log.Warn("partitioning: another server starts with a channel this one has", "server", from, "channel", c)
	}
	if err := p.conn.Publish(m.Reply, "", encodeCtrlMsg(ctrlMsgPartitioning, p.serverID, conflict)); err != nil {
		p.log.Warn("partitioning: answer not sent", "err", err)
	}
}

// checkUnique sends this server's list and waits for the answers.
func (p *partitions) checkUnique(subject string) error {
	lists, err := encodeChannelLists(p.channels, partitionListBytes)
	if err != nil {
		return err
	}
	// Every answer moves the deadline (heard); one conflict is enough to
	// stop (conflict), so neither channel needs more than one waiting.
	heard := make(chan struct{}, 1)
	conflict := make(chan error, 1)
	inbox, sub, err := subscribeInbox(p.conn, func(m transport.Msg) {
		typ, from, channel, ok := decodeCtrlMsg(m.Data)
		if !ok || typ != ctrlMsgPartitioning {
			p.log.Warn("partitioning: dropping a malformed answer")
			return
		}
		if len(channel) > 0 {
			select {
			case conflict <- fmt.Errorf("channel %q causes conflict with channels on server %q", channel, from):
			default:
			}
		}
		select {
		case heard <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("partitioning: %w", err)
	}
	defer sub.Unsubscribe()
	for _, l := range lists {
		if err := p.conn.Publish(subject, inbox, encodeCtrlMsg(ctrlMsgPartitioning, p.serverID, l)); err != nil {
			return fmt.Errorf("partitioning: send the channels list: %w", err)
		}
	}
	if err := p.conn.Flush(); err != nil {
		return fmt.Errorf("partitioning: send the channels list: %w", err)
	}
	timer := time.NewTimer(partitionWait)
	defer timer.Stop()
	for {
		select {
		case err := <-conflict:
			return err
		case <-heard:
			timer.Reset(partitionWait)
		case <-timer.C:
			select {
			case err := <-conflict:
				return err
			default:
				return nil
			}
		}
	}
}

// checkAllPartitioned fails if a server that is not partitioned serves
// the cluster ID: it takes publishes on every channel, so it answers one
// on a channel that no partition has (a partition whose list would match
// it overlaps every other and fails checkUnique). A server that is not
// partitioned refuses to start beside partitions already (ensureAlone);
// this covers the other order, which nats-streaming-server does not.
func (p *partitions) checkAllPartitioned(opts Options) error {
	channel := "_STANZA.partition.probe." + nuid.Next()
	for _, c := range p.channels {
		if statemachine.MatchChannel(c, channel) {
			return nil // this server would answer the probe itself
		}
	}
	// From no client: a server refuses it, and stores nothing.
	found, err := anyAnswer(p.conn, "_STAN.pub."+opts.ClusterID+"."+channel, partitionProbeWait, func(string) ([]byte, error) {
		return proto.Marshal(&pb.PubMsg{ClientID: "stanza.probe", Guid: nuid.Next(), Subject: channel})
	})
	if err != nil {
		return fmt.Errorf("partitioning: %w", err)
	}
	if found {
		return fmt.Errorf("discovered a streaming server with cluster ID %q that is not partitioned", opts.ClusterID)
	}
	return nil
}

// overlap returns the first channel (name or pattern) of a that some
// channel matches together with one of b.
func overlap(a, b []string) (string, bool) {
	for _, x := range a {
		for _, y := range b {
			if statemachine.PatternsOverlap(x, y) {
				return x, true
			}
		}
	}
	return "", false
}

// encodeChannelLists encodes channels as nats-streaming-server does, each
// as a little-endian uint16 length and its bytes, in as few pieces of at
// most maxBytes as whole channels allow.
func encodeChannelLists(channels []string, maxBytes int) ([][]byte, error) {
	var lists [][]byte
	var cur []byte
	for _, c := range channels {
		n := 2 + len(c)
		if len(c) > 0xffff || n > maxBytes {
			return nil, fmt.Errorf("partitioning: channel name of %d bytes is too long to send", len(c))
		}
		if len(cur)+n > maxBytes {
			lists, cur = append(lists, cur), nil
		}
		cur = binary.LittleEndian.AppendUint16(cur, uint16(len(c)))
		cur = append(cur, c...)
	}
	if len(cur) > 0 {
		lists = append(lists, cur)
	}
	return lists, nil
}

func decodeChannelList(data []byte) ([]string, error) {
	var chans []string
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("truncated length")
		}
		n := int(binary.LittleEndian.Uint16(data))
		data = data[2:]
		if n > len(data) {
			return nil, fmt.Errorf("channel of %d bytes in %d", n, len(data))
		}
		chans = append(chans, string(data[:n]))
		data = data[n:]
	}
	return chans, nil
}

// partitionScope returns the scope of a partitioned server's private
// subjects: kept in a FILE store's directory, since its subscriptions'
// ack inboxes carry it, and new at every start for a MEMORY store, which
// keeps nothing. A FILE store written without partitioning is refused:
// its subscriptions' ack inboxes are not scoped, and another server's
// could be the same.
func partitionScope(opts Options) (string, error) {
	if opts.StoreType != StoreFile {
		return nuid.Next(), nil
	}
	path := filepath.Join(opts.Dir, partitionIDFile)
	data, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(data))
		if !statemachine.ValidClientID(id) {
			return "", fmt.Errorf("partitioning: %s holds %q, not a partition ID", path, data)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("partitioning: %w", err)
	}
	if used, err := storeUsed(opts.Dir); err != nil {
		return "", fmt.Errorf("partitioning: %w", err)
	} else if used {
		return "", fmt.Errorf("partitioning: the store in %s was written without partitioning; start a partitioned server on a new directory", opts.Dir)
	}
	if err := storage.MkdirAllSync(storage.OSFS{}, opts.Dir); err != nil {
		return "", fmt.Errorf("partitioning: %w", err)
	}
	id := nuid.Next()
	if err := storage.WriteFileSync(storage.OSFS{}, path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("partitioning: %w", err)
	}
	return id, nil
}

// storeUsed reports whether dir holds a FILE store (node.OpenFileStorage's
// directories).
func storeUsed(dir string) (bool, error) {
	for _, sub := range []string{"wal", "snap", "msgs"} {
		_, err := os.Stat(filepath.Join(dir, sub))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	return false, nil
}
