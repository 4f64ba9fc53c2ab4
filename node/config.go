package node

import (
	"fmt"
	"hash/fnv"
	"log/slog"

	"github.com/stanza-io/stanza/statemachine"
)

// Config configures one replica's core. Durations are in ticks inside the
// core; the shell decides how long a tick is (TickNanos).
// DefaultSnapshotBytes is Config.SnapshotBytes by default. Snapshots hold
// no messages, so they are cheap to take.
const DefaultSnapshotBytes = 64 << 20

type Config struct {
	// ClusterID is the STAN cluster ID clients connect with.
	ClusterID string
	// DiscoverPrefix is where clients send connect requests
	// (default "_STAN.discover").
	DiscoverPrefix string
	// NodeName names this replica; Peers name every voter, this one
	// included. A single node has Peers = [NodeName].
	NodeName string
	Peers    []string
	Limits   statemachine.Limits
	// TickNanos is the length of one tick, used to turn the durations below
	// into ticks and to stamp nothing else.
	TickNanos int64
	// Heartbeats to clients (nats-streaming-server's hb_interval, hb_timeout,
	// hb_fail_count).
	HBIntervalNanos int64
	HBTimeoutNanos  int64
	HBFailCount     int
	// DupProbeNanos is how long the old client of a duplicate client ID has
	// to answer before it is replaced (500 ms in nats-streaming-server).
	DupProbeNanos int64
	// ElectionTicks and HeartbeatTicks configure raft.
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEntries: take a snapshot and compact the log every this many
	// applied entries (0 = never).
	SnapshotEntries uint64
	// SnapshotBytes: also take one once the entries applied since the
	// last hold this many bytes, so that the log (whose entries the WAL
	// keeps in memory) stays bounded however large the batches are
	// (0 = DefaultSnapshotBytes, negative = never).
	SnapshotBytes int64
	// TrailingEntries are kept in the log behind a snapshot, so a slightly
	// lagging follower catches up from the log instead of a snapshot.
	TrailingEntries uint64
	Logger          *slog.Logger
	// MetricsClock reads the time for the commit latency metric, whose
	// proposal and apply can fall in one Process call (always, on a single
	// node): the shell passes its clock. It decides nothing. Nil (the
	// simulator) uses the time passed to Process.
	MetricsClock func() int64
	// Join starts a replica with an empty log as a new member of a running
	// cluster: it does not bootstrap, and waits for the leader, once an
	// operator added it (node.add), to send it the log or a snapshot.
	Join bool
	// AllowMembershipChanges serves the node.add and node.remove requests
	// (nats-streaming-server's cluster_allow_add_remove_node).
	AllowMembershipChanges bool
	// Bugs plants deliberate bugs for the simulator's tests (stanzabugs
	// builds only; see statemachine/bugs.go).
	Bugs statemachine.Bug
	// ReplaceDurable: a subscription request for a plain durable already
	// online for its client closes that one and resumes it, instead of
	// failing with a duplicate durable error (--replace_durable).
	ReplaceDurable bool
	// Partitions, when set, are the channels (names or patterns) this
	// server serves, as nats-streaming-server's channel partitioning has
	// it: servers sharing a cluster ID on one NATS each serve their own
	// channels (partition.go). Only a single node can be partitioned.
	Partitions []string
	// SubjectScope, when set, is added to the subjects only this server
	// uses (ack inboxes, heartbeat replies, raft), so that servers sharing
	// a cluster ID, as partitions do, do not hear each other's. It must be
	// the same at every start of a store: the stored subscriptions' ack
	// inboxes carry it.
	SubjectScope string
}

// Defaults fills what is unset with nats-streaming-server's defaults.
func (c *Config) Defaults() {
	if c.DiscoverPrefix == "" {
		c.DiscoverPrefix = "_STAN.discover"
	}
	if c.TickNanos == 0 {
		c.TickNanos = 100_000_000
	}
	if c.HBIntervalNanos == 0 {
		c.HBIntervalNanos = 30_000_000_000
	}
	if c.HBTimeoutNanos == 0 {
		c.HBTimeoutNanos = 10_000_000_000
	}
	if c.HBFailCount == 0 {
		c.HBFailCount = 10
	}
	if c.DupProbeNanos == 0 {
		c.DupProbeNanos = 500_000_000
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = DefaultSnapshotBytes
	}
	if c.TrailingEntries == 0 {
		c.TrailingEntries = 1000
	}
	if len(c.Peers) == 0 {
		c.Peers = []string{c.NodeName}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration the core cannot run with.
func (c *Config) Validate() error {
	if c.ClusterID == "" || !statemachine.ValidChannel(c.ClusterID) {
		return fmt.Errorf("node: invalid cluster ID %q", c.ClusterID)
	}
	if c.NodeName == "" || !statemachine.ValidClientID(c.NodeName) {
		return fmt.Errorf("node: invalid node name %q: only alphanumeric and `-` or `_` characters allowed", c.NodeName)
	}
	seen := map[uint64]string{}
	self := false
	for _, p := range c.Peers {
		if !statemachine.ValidClientID(p) {
			return fmt.Errorf("node: invalid peer name %q", p)
		}
		id := RaftID(p)
		if other, dup := seen[id]; dup {
			return fmt.Errorf("node: peers %q and %q are the same node", other, p)
		}
		seen[id] = p
		self = self || p == c.NodeName
	}
	if !self && !c.Join {
		return fmt.Errorf("node: peers %v do not include this node %q", c.Peers, c.NodeName)
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if len(c.Partitions) > 0 && (len(c.Peers) != 1 || c.Join) {
		return fmt.Errorf("node: channels partitioning needs a single node, not a cluster")
	}
	for _, p := range c.Partitions {
		if !statemachine.ValidChannelPattern(p) {
			return fmt.Errorf("node: invalid partition channel %q", p)
		}
	}
	if c.SubjectScope != "" && !statemachine.ValidClientID(c.SubjectScope) {
		return fmt.Errorf("node: invalid subject scope %q: only alphanumeric and `-` or `_` characters allowed", c.SubjectScope)
	}
	if c.HBFailCount < 1 || c.HBIntervalNanos <= 0 || c.HBTimeoutNanos <= 0 {
		return fmt.Errorf("node: heartbeat interval, timeout and fail count must be positive")
	}
	return nil
}

// RaftID is the raft ID of a node name: stable, and the same on every node.
func RaftID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	id := h.Sum64()
	if id == 0 {
		id = 1
	}
	return id
}

// Subjects are the NATS subjects a cluster serves clients on.
type Subjects struct {
	Discover, Pings             string
	PubPrefix                   string // publishes arrive on PubPrefix + ".<channel>"
	Sub, Unsub, SubClose, Close string
	AckPrefix                   string // ack inboxes are AckPrefix + ".<term>.<n>"
	HBPrefix                    string // heartbeat and probe replies
	RaftPrefix                  string // raft traffic: RaftPrefix + ".<raft id>"
	NodeAdd, NodeRemove         string // membership requests: payload = node name, reply "+OK" or "-ERR ..."
}

// subjects are the subjects of this server: its cluster's, with its
// private ones scoped by SubjectScope.
func (c Config) subjects() Subjects {
	s := SubjectsFor(c.DiscoverPrefix, c.ClusterID)
	if c.SubjectScope != "" {
		s.AckPrefix += "." + c.SubjectScope
		s.HBPrefix += "." + c.SubjectScope
		s.RaftPrefix += "." + c.SubjectScope
	}
	return s
}

// SubjectsFor returns the subjects of a cluster ID, following
// nats-streaming-server's names for everything a client sees.
func SubjectsFor(discoverPrefix, clusterID string) Subjects {
	return Subjects{
		Discover:   discoverPrefix + "." + clusterID,
		Pings:      discoverPrefix + "." + clusterID + ".pings",
		PubPrefix:  "_STAN.pub." + clusterID,
		Sub:        "_STAN.sub." + clusterID,
		Unsub:      "_STAN.unsub." + clusterID,
		SubClose:   "_STAN.subclose." + clusterID,
		Close:      "_STAN.close." + clusterID,
		AckPrefix:  "_STAN.ack." + clusterID,
		HBPrefix:   "_STANZA.hb." + clusterID,
		RaftPrefix: "_STANZA.raft." + clusterID,
		NodeAdd:    "_STANZA.node.add." + clusterID,
		NodeRemove: "_STANZA.node.remove." + clusterID,
	}
}
