// Package node is one stanza replica: it drives a raft.RawNode, turns STAN
// requests into commands, applies committed commands to the state machine
// and sends what they decided.
//
// Core is synchronous and deterministic, like raft.RawNode: Tick, Receive
// and Process are called from one goroutine, with the time passed in, and
// everything it sends goes through one Outbox function in order. Server
// (shell.go) is the thin goroutine shell that runs a Core on real NATS; the
// simulator drives the same Core directly.
package node

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// Outbox sends one message on the bus. The core calls it in order; the
// environment must keep that order per subject. data is the caller's only
// until Outbox returns: the core reuses the buffer of its raft messages
// (a transport copies what it sends; nats.go into its write buffer).
type Outbox func(subject, reply string, data []byte)

// Core is one replica. It is not safe for concurrent use.
type Core struct {
	cfg   Config
	id    uint64
	subj  Subjects
	log   *slog.Logger
	rn    *raft.RawNode
	store Storage
	sm    *statemachine.State
	out   Outbox
	reasm reassembler
	// recAsm rebuilds fetched records that came in chunks; catching is the
	// snapshot this follower fetches messages for, if any (catchup.go).
	recAsm   reassembler
	catching *catchUp
	ticks    uint64
	// snapSent is, by follower, the tick this leader sent it a snapshot or
	// last heard a fetch request from it since (reportSnapshots).
	snapSent map[uint64]uint64
	nextID   uint64 // raft message IDs for chunking
	// heartbeatAnswered: followers whose heartbeat response the leader
	// stepped since it last sent them an empty append (see commitOnly).
	heartbeatAnswered map[uint64]bool
	// wire is the buffer raft messages are encoded into (see send), ackBuf
	// the one PubAcks are (see carryOut).
	wire, ackBuf []byte
	pubSlab      []pb.PubMsg   // what publishRequest decodes into
	cmdSlab      []publishSlot // what publishRequest builds a new Publish command in

	confState     *raftpb.ConfState
	applied       uint64
	snapshotIndex uint64
	sinceSnapshot int64 // bytes of entries applied since the last snapshot
	// confChanged: the configuration changed since the last snapshot. A
	// new member can only start from a snapshot that includes it, so one
	// is taken at once.
	confChanged bool
	// campaignSoon: a single-voter cluster campaigns at once instead of
	// waiting out an election timeout.
	campaignSoon bool
	// quietUntil: entries at or below it were applied before a restart;
	// their replies and deliveries were already sent.
	quietUntil uint64

	leader     bool
	term       uint64
	readyIndex uint64 // serving starts once this index (the leader's first entry) is applied
	serving    bool

	// Leader-only state, reset when serving starts.
	queue      []*pb.Command // proposals not yet handed to raft, in arrival order
	proposed   []proposal    // handed to raft and not yet applied, in order, from proposedAt
	proposedAt int
	prop       *raftpb.Message // see propose
	raws       []*rawPublish   // the client bytes of the queued Publish commands
	pubRaw     *rawPublish     // of the last queued command, if it is a Publish
	nAck       uint64
	nReply     uint64
	hb         map[string]*hbState
	waits      map[string]*wait // outstanding heartbeat and probe replies, by reply subject
	probing    map[string]bool  // client IDs under a duplicate probe
	checkEach  bool             // CheckInvariants after every batch of applied entries
	stats      Stats            // what this replica received and sent while leading (monitor.go)
	onApply    func(index, term uint64, data []byte)

	// queuedAcks counts the acks in the last queued command, while it is
	// an Acks command (queueAck bounds a command at acksBatchMax).
	queuedAcks int

	listen        []string // what Listen returned, for listenServing
	listenServing bool

	// Partitioned servers only (partition.go): requests waiting for their
	// client's connect, in arrival order, and how many each client has.
	held      []heldRequest
	heldFor   map[string]int
	releasing bool // releaseHeld is handing a request on
	// The connections this server registered, oldest first, bounded by
	// seenConnsMax (answersUnknownPing).
	seenConns map[string]bool
	seenOrder []string
}

// proposal is a command the leader proposed: when raft hands back the very
// same bytes to apply, the command is used as it is, not decoded again.
type proposal struct {
	data []byte
	cmd  *pb.Command
}

// ownCommand returns the command the leader encoded into e, if e is the
// next of its proposals: raft hands back the same bytes (or, at times, a
// copy of them; comparing costs far less than decoding).
// Every command entry of the leader's term is its own proposal (proposal
// forwarding is off), in proposal order.
func (c *Core) ownCommand(e *raftpb.Entry) *pb.Command {
	data := e.GetData()
	if !c.leader || e.GetTerm() != c.term || c.proposedAt == len(c.proposed) || len(data) == 0 {
		return nil
	}
	p := c.proposed[c.proposedAt]
	c.proposed[c.proposedAt] = proposal{}
	c.proposedAt++
	if c.proposedAt == len(c.proposed) {
		// All applied: the next proposals reuse the array.
		c.proposed, c.proposedAt = c.proposed[:0], 0
	}
	if len(p.data) != len(data) || &p.data[0] != &data[0] && !bytes.Equal(p.data, data) {
		return nil
	}
	if c.checkEach {
		// The simulator checks that the shortcut changes nothing.
		if dec, err := statemachine.DecodeCommand(data); err != nil || !proto.Equal(dec, p.cmd) {
			panic(fmt.Sprintf("node %s: a proposed command does not round-trip: %v", c.cfg.NodeName, err))
		}
	}
	return p.cmd
}

type hbState struct {
	nextNanos int64
	waiting   string // reply subject of the outstanding heartbeat, if any
	failures  int
}

type wait struct {
	clientID      string
	hbInbox       string // the connection heartbeated (empty for a probe)
	deadlineNanos int64
	probe         *probe // nil for a heartbeat
}

type probe struct {
	req     *pb.ConnectRequest
	replyTo string
}

// ErrStopped is returned when the core cannot go on (its storage failed).
var ErrStopped = errors.New("node: stopped")

// New builds a core over storage. A storage holding state restarts the
// replica from it; an empty one bootstraps a new cluster of cfg.Peers.
func New(cfg Config, storage Storage, out Outbox) (*Core, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Core{
		cfg: cfg, id: RaftID(cfg.NodeName), subj: cfg.subjects(),
		log: cfg.Logger, store: storage, out: out, heartbeatAnswered: map[uint64]bool{},
		sm: statemachine.New(statemachine.Config{Limits: cfg.Limits, Bugs: cfg.Bugs, Log: storage.Messages()}),
	}
	hs, cs, err := storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("node: read initial state: %w", err)
	}
	snap, err := storage.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("node: read snapshot: %w", err)
	}
	if !raft.IsEmptySnap(snap) {
		if err := c.sm.Restore(snap.GetData()); err != nil {
			return nil, fmt.Errorf("node: restore snapshot at index %d: %w", snap.GetMetadata().GetIndex(), err)
		}
		c.applied = snap.GetMetadata().GetIndex()
		c.snapshotIndex = c.applied
	}
	c.confState = cs
	c.quietUntil = hs.GetCommit()
	rc := &raft.Config{
		ID: c.id, ElectionTick: cfg.ElectionTicks, HeartbeatTick: cfg.HeartbeatTicks, Storage: storage,
		Applied: c.applied, MaxSizePerMsg: 256 * 1024, MaxInflightMsgs: 256, MaxUncommittedEntriesSize: 1 << 30,
		MaxCommittedSizePerReady: 64 << 20, CheckQuorum: true, PreVote: true, StepDownOnRemoval: true,
		// A replica that still believes it leads must not get its proposals
		// committed by the real leader: both may have received the same
		// request, which would then be applied twice.
		DisableProposalForwarding: true, Logger: raftLogger{c.log.With("component", "raft")},
	}
	c.rn, err = raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	last, _ := storage.LastIndex()
	if last == 0 && raft.IsEmptySnap(snap) && !cfg.Join {
		var peers []raft.Peer
		for _, p := range cfg.Peers {
			peers = append(peers, raft.Peer{ID: RaftID(p)})
		}
		sort.Slice(peers, func(i, j int) bool { return peers[i].ID < peers[j].ID })
		if err := c.rn.Bootstrap(peers); err != nil {
			return nil, fmt.Errorf("node: bootstrap: %w", err)
		}
	}
	// A single voter needs no election timeout to lead: it campaigns as
	// soon as raft lets it (once its bootstrap configuration is applied).
	c.campaignSoon = len(cfg.Peers) == 1 && !cfg.Join
	return c, nil
}

func (c *Core) planted(b statemachine.Bug) bool {
	return statemachine.Config{Bugs: c.cfg.Bugs}.Planted(b)
}

// SetCheckInvariants makes the core verify the state machine after every
// batch of applied entries (the simulator turns it on).
func (c *Core) SetCheckInvariants(on bool) { c.checkEach = on }

// SetApplyObserver makes the core call f for every entry it applies, in
// order, before applying it (the simulator checks that replicas agree on
// every committed entry).
func (c *Core) SetApplyObserver(f func(index, term uint64, data []byte)) { c.onApply = f }

// ID is this replica's raft ID.
func (c *Core) ID() uint64 { return c.id }

// Serving reports whether this replica is the leader and serves clients.
func (c *Core) Serving() bool { return c.serving }

// State is the state machine, for monitoring and checkers. Callers must not
// change it.
func (c *Core) State() *statemachine.State { return c.sm }

// Applied is the index of the last applied entry.
func (c *Core) Applied() uint64 { return c.applied }

// Status is raft's status of this replica.
func (c *Core) Status() raft.Status { return c.rn.Status() }

// Subjects are the cluster's subjects.
func (c *Core) Subjects() Subjects { return c.subj }

// Listen returns the subjects this replica must be subscribed to now: its
// raft and reply subjects always, the client subjects while serving.
// It is built again only when serving starts or stops (the shell asks
// after every batch); callers must not change it.
func (c *Core) Listen() []string {
	if c.listen != nil && c.listenServing == c.serving {
		return c.listen
	}
	c.listen, c.listenServing = c.listenSubjects(), c.serving
	return c.listen
}

func (c *Core) listenSubjects() []string {
	s := []string{c.raftSubject(c.id), c.subj.HBPrefix + "." + strconv.FormatUint(c.id, 16) + ".>"}
	if c.serving {
		s = append(s, c.subj.Discover, c.subj.Pings)
		if c.partitioned() {
			// Publishes on this server's channels only: the others go to
			// the servers that have them.
			for _, p := range c.cfg.Partitions {
				s = append(s, c.subj.PubPrefix+"."+p)
			}
		} else {
			s = append(s, c.subj.PubPrefix+".>")
		}
		s = append(s, c.subj.Sub, c.subj.Unsub, c.subj.SubClose, c.subj.Close, c.subj.AckPrefix+".>")
		if c.cfg.AllowMembershipChanges {
			s = append(s, c.subj.NodeAdd, c.subj.NodeRemove)
		}
	}
	return s
}

// under reports whether subject starts with prefix and a dot,
// without building prefix+"." for every message.
func under(subject, prefix string) bool {
	return len(subject) > len(prefix) && subject[len(prefix)] == '.' && subject[:len(prefix)] == prefix
}

// NeedsBarrier reports whether a message on subject must wait until
// everything received before it on other subjects was handed to the core.
func (c *Core) NeedsBarrier(subject string) bool {
	return subject == c.subj.Close || subject == c.subj.Unsub || subject == c.subj.SubClose
}

func (c *Core) raftSubject(id uint64) string {
	return c.cfg.subjectRaft(c.subj, id)
}

func (cfg Config) subjectRaft(s Subjects, id uint64) string {
	return s.RaftPrefix + "." + strconv.FormatUint(id, 16)
}

// Tick advances raft by one tick and does the leader's time-driven work at
// nowNanos: client heartbeats, duplicate-ID probes, and what the state
// machine says is due.
func (c *Core) Tick(nowNanos int64) {
	c.rn.Tick()
	c.ticks++
	c.retryFetch()
	if c.leader {
		c.reportSnapshots()
	}
	if !c.serving {
		return
	}
	c.tickHeartbeats(nowNanos)
	c.queue = append(c.queue, c.sm.Due(nowNanos)...)
	c.releaseHeld(nowNanos)
}

// Receive hands the core one message from the bus.
func (c *Core) Receive(nowNanos int64, m Msg) {
	switch {
	case under(m.Subject, c.subj.RaftPrefix):
		if len(m.Data) > 0 && m.Data[0] >= wireFetch {
			c.fetchMessage(m.Data)
			return
		}
		rm, err := c.reasm.add(m.Data)
		if err != nil {
			c.log.Warn("dropping raft message", "err", err)
			return
		}
		if rm == nil {
			return
		}
		if rm.GetType() == raftpb.MsgSnap && c.beginCatchUp(rm) {
			return
		}
		if err := c.rn.Step(rm); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			c.log.Debug("raft step", "err", err)
		}
		if rm.GetType() == raftpb.MsgHeartbeatResp && c.leader {
			c.heartbeatAnswered[rm.GetFrom()] = true
		}
	case under(m.Subject, c.subj.HBPrefix):
		c.reply(nowNanos, m)
	case !c.serving:
		// Not the leader (any more): the client's request times out and it
		// retries, finding the new leader.
	default:
		c.request(nowNanos, m)
	}
}

// ChangeMembership proposes adding or removing the node with that name; when
// the change is applied, the leader answers on replyTo (if set) with "+OK".
// Only the serving leader can propose it, and raft takes one change at a
// time.
func (c *Core) ChangeMembership(add bool, name, replyTo string) error {
	if !c.serving {
		return fmt.Errorf("node: not the leader")
	}
	if !statemachine.ValidClientID(name) {
		return fmt.Errorf("node: invalid node name %q", name)
	}
	typ := raftpb.ConfChangeType_ConfChangeRemoveNode
	if add {
		typ = raftpb.ConfChangeType_ConfChangeAddNode
	}
	id := RaftID(name)
	cc := &raftpb.ConfChange{Type: &typ, NodeId: &id, Context: []byte(name + "\x00" + replyTo)}
	if err := c.rn.ProposeConfChange(cc); err != nil {
		return fmt.Errorf("node: propose membership change: %w", err)
	}
	return nil
}

// Msg is one message from the bus.
type Msg struct {
	Subject, Reply string
	Data           []byte
}

// Process hands queued proposals to raft and carries out every Ready: it
// persists, sends, applies and replies. It returns an error only when the
// replica cannot go on (its storage failed); the caller must stop it.
func (c *Core) Process(nowNanos int64) (err error) {
	defer func() {
		// A message store that fails mid-apply leaves the state unusable:
		// stop, and restart from storage.
		if r := recover(); r != nil {
			f, ok := r.(*statemachine.LogFailure)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%w: %v", ErrStopped, f)
		}
	}()
	for {
		c.flushQueue(nowNanos)
		for c.rn.HasReady() {
			rd := c.rn.Ready()
			if rd.SoftState != nil {
				c.setLeader(rd.SoftState.Lead == c.id && rd.SoftState.RaftState == raft.StateLeader)
			}
			if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
				c.term = rd.HardState.GetTerm()
			}
			if rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot) {
				if err := c.store.ApplySnapshot(rd.Snapshot); err != nil {
					return fmt.Errorf("%w: apply snapshot: %v", ErrStopped, err)
				}
				if err := c.sm.Restore(rd.Snapshot.GetData()); err != nil {
					// Every replica restores the same bytes; a snapshot that
					// does not restore is a bug or corruption in transit.
					return fmt.Errorf("%w: restore snapshot at %d: %v", ErrStopped, rd.Snapshot.GetMetadata().GetIndex(), err)
				}
				c.applied = rd.Snapshot.GetMetadata().GetIndex()
				c.snapshotIndex = c.applied
				c.sinceSnapshot = 0
				c.confState = rd.Snapshot.GetMetadata().GetConfState()
				c.log.Info("restored snapshot", "index", c.applied)
			}
			// A follower persists BEFORE sending: a vote or an ack must never
			// be forgotten. The leader sends its appends first and writes its
			// own disk meanwhile (raft thesis 10.2.1): its term and vote were
			// durable before it could lead, and it applies, so answers
			// clients, only after the Save below.
			sendFirst := c.leader
			if sendFirst {
				c.send(rd.Messages)
			}
			// The leader's committed entries are on its disk already (raft
			// counts the leader's own copy only after the Save that wrote it),
			// so it applies them, and answers, before writing the new ones: an
			// acknowledgement waits for one fsync of the leader, not two.
			early, late := c.splitDurable(rd)
			if err := c.apply(nowNanos, early); err != nil {
				return err
			}
			mustSync := rd.MustSync && !c.planted(statemachine.BugSkipFsync)
			if err := c.store.Save(rd.HardState, rd.Entries, mustSync); err != nil {
				return fmt.Errorf("%w: save: %v", ErrStopped, err)
			}
			if c.leader && c.readyIndex == 0 {
				c.readyIndex, _ = c.store.LastIndex()
			}
			if !sendFirst {
				c.send(rd.Messages)
			}
			if err := c.apply(nowNanos, late); err != nil {
				return err
			}
			c.rn.Advance(rd)
			c.maybeCampaign()
			c.updateServing(nowNanos)
			if err := c.maybeSnapshot(); err != nil {
				return err
			}
			c.flushQueue(nowNanos)
		}
		// A connect applied above may let held requests go (partition.go).
		if !c.releaseApplied(nowNanos) {
			return nil
		}
	}
}

// splitDurable splits the committed entries of rd into those the leader may
// apply before saving rd (already durable in its log, and not about to be
// overwritten) and the rest. A follower applies everything after saving:
// an entry may be committed by the same message that brought it.
func (c *Core) splitDurable(rd raft.Ready) (early, late []*raftpb.Entry) {
	ents := rd.CommittedEntries
	if !c.leader || len(ents) == 0 {
		return nil, ents
	}
	stable, err := c.store.LastIndex()
	if err != nil {
		return nil, ents
	}
	if len(rd.Entries) > 0 {
		stable = min(stable, rd.Entries[0].GetIndex()-1)
	}
	n := sort.Search(len(ents), func(i int) bool { return ents[i].GetIndex() > stable })
	return ents[:n], ents[n:]
}

func (c *Core) maybeCampaign() {
	if !c.campaignSoon {
		return
	}
	bs := c.rn.BasicStatus()
	if bs.RaftState != raft.StateFollower {
		c.campaignSoon = bs.RaftState != raft.StateLeader
		return
	}
	voters := c.confState.GetVoters()
	if len(voters) == 1 && voters[0] == c.id && c.applied >= bs.HardState.GetCommit() {
		if err := c.rn.Campaign(); err != nil {
			c.log.Debug("campaign", "err", err)
		}
	}
}

func (c *Core) setLeader(leader bool) {
	if leader == c.leader {
		return
	}
	c.leader = leader
	c.readyIndex = 0
	c.proposed, c.proposedAt = nil, 0
	c.held, c.heldFor = nil, nil
	c.catching = nil
	c.snapSent = nil
	clear(c.heartbeatAnswered)
	if leader {
		c.log.Info("became leader", "node", c.cfg.NodeName)
	} else {
		c.log.Info("not the leader", "node", c.cfg.NodeName, "leader", fmt.Sprintf("%x", c.rn.BasicStatus().Lead))
	}
}

func (c *Core) updateServing(nowNanos int64) {
	serve := c.leader && c.readyIndex > 0 && c.applied >= c.readyIndex
	if serve == c.serving {
		return
	}
	c.serving = serve
	c.queue, c.raws, c.pubRaw = nil, nil, nil
	c.waits = map[string]*wait{}
	c.probing = map[string]bool{}
	c.hb = map[string]*hbState{}
	c.nAck = 0
	if serve {
		// Heartbeats start one interval from now for every known client.
		for _, cl := range c.sm.Clients() {
			h := &hbState{nextNanos: nowNanos + c.cfg.HBIntervalNanos}
			if cl.FailedHB {
				// Marked by an earlier leader: the next answered heartbeat
				// (soon) clears it, or the count goes on to expiry.
				h.failures, h.nextNanos = 1, nowNanos
			}
			c.hb[cl.ID] = h
		}
		c.log.Info("serving clients", "term", c.term)
	}
}

func (c *Core) send(msgs []*raftpb.Message) {
	for _, m := range msgs {
		if c.commitOnly(m) {
			continue
		}
		// A snapshot goes without the messages it refers to: the follower
		// fetches those it lacks before it restores it (beginCatchUp).
		c.nextID++
		chunks, used, err := encodeRaft(m, c.nextID, c.wire)
		if err != nil {
			c.log.Error("raft message not sent", "err", err)
			continue
		}
		subject := c.raftSubject(m.GetTo())
		for _, ch := range chunks {
			c.out(subject, "", ch)
		}
		if used != nil && cap(used) <= chunkBytesMax+1 {
			// Kept for the next message: an append of a batch costs an
			// allocation (cleared, as large ones are) no more. A chunked
			// message leaves the buffer as it was.
			c.wire = used
		}
		if m.GetType() == raftpb.MsgSnap {
			// The bus gives no delivery report: raft hears of the
			// snapshot once the follower restored it, and the follower's
			// fetch requests say it is still at it (see reportSnapshots).
			c.log.Info("snapshot sent", "to", fmt.Sprintf("%x", m.GetTo()), "index", m.GetSnapshot().GetMetadata().GetIndex())
			if c.snapSent == nil {
				c.snapSent = map[uint64]uint64{}
			}
			c.snapSent[m.GetTo()] = c.ticks
		}
	}
}

// snapshotQuietTicks is how long a follower sent a snapshot may stay
// silent (no fetch request) before the leader takes the snapshot as lost.
const snapshotQuietTicks = 10

// reportSnapshots tells raft, for each follower sent a snapshot that has
// not asked for a message for snapshotQuietTicks, that the snapshot is
// done with. raft then probes the follower: one that restored it is
// replicated to from there, one that lost it or was restarted gets the
// newest snapshot again. Until then raft sends such a follower nothing
// but heartbeats, rather than the snapshot again at every probe while it
// fetches the messages.
func (c *Core) reportSnapshots() {
	for _, id := range slices.Sorted(maps.Keys(c.snapSent)) {
		if c.ticks-c.snapSent[id] >= snapshotQuietTicks {
			delete(c.snapSent, id)
			c.rn.ReportSnapshot(id, raft.SnapshotFinish)
		}
	}
}

// commitOnly reports whether m is an append the leader need not send: one
// with no entries, to a follower that raft replicates to (StateReplicate,
// its window not full), so that all it carries is a newer commit index.
// raft sends one to each follower every time the commit index moves, and
// each is answered: with one publisher waiting on its PubAck, that is four
// messages more per publish, on the path of the next one. The follower
// learns the commit index from the next append or the next heartbeat
// (every tick) instead; only its apply waits, never an acknowledgement
// (the leader's commit does not depend on it), and raft survives any lost
// message by design. Two empty appends still go: to a follower in
// StateProbe or with a full window (raft's probes), and the first one after
// a follower answered a heartbeat, which is how raft finds out that entries
// in flight to it were lost (the follower rejects it, and raft resends).
func (c *Core) commitOnly(m *raftpb.Message) bool {
	if !c.leader || m.GetType() != raftpb.MsgApp || len(m.GetEntries()) > 0 {
		return false
	}
	if c.heartbeatAnswered[m.GetTo()] && !c.planted(statemachine.BugHeartbeatAppendDropped) {
		delete(c.heartbeatAnswered, m.GetTo())
		return false
	}
	drop := false
	c.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == m.GetTo() && pr.State == tracker.StateReplicate && !pr.MsgAppFlowPaused {
			drop = true
		}
	})
	return drop
}

// followerUnreachable reports whether raft has not heard from some
// follower lately (planted bug BugPubAckNeedsAllReplicas).
func (c *Core) followerUnreachable() bool {
	unreachable := false
	c.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id != c.id && !pr.RecentActive {
			unreachable = true
		}
	})
	return unreachable
}

func (c *Core) apply(nowNanos int64, ents []*raftpb.Entry) error {
	if c.checkEach && len(ents) > 0 {
		defer func() {
			if err := c.sm.CheckInvariants(); err != nil {
				panic(fmt.Sprintf("node %s: invariant broken after entries %d..%d: %v", c.cfg.NodeName, ents[0].GetIndex(), c.applied, err))
			}
		}()
	}
	for _, e := range ents {
		idx := e.GetIndex()
		if idx <= c.applied {
			continue
		}
		if c.onApply != nil {
			c.onApply(idx, e.GetTerm(), e.GetData())
		}
		c.sinceSnapshot += int64(len(e.GetData()))
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) == 0 {
				break // a new leader's empty entry
			}
			cmd, err := c.ownCommand(e), error(nil)
			if cmd == nil {
				cmd, err = statemachine.DecodeCommand(e.GetData())
			}
			if errors.Is(err, statemachine.ErrNewerCommand) {
				// Skipping it could leave this replica differing from those
				// that apply it; stopping before it keeps the state right for
				// a binary that reads it.
				return fmt.Errorf("%w: entry %d is a command of a later version, which this one cannot apply: %v", ErrStopped, idx, err)
			}
			if err != nil {
				// Bytes no version writes (a bug): every replica refuses them
				// alike and skips the entry, so they stay equal. Nothing was
				// acknowledged for it: replies follow the apply.
				c.log.Error("skipping undecodable entry", "index", idx, "err", err)
				break
			}
			// Only the leader that proposed an entry sends what it decided:
			// an entry of an earlier term may have been carried out by its
			// own leader already. What no one sends is recovered by the
			// client's retry (a reply) or by AckWait (a delivery).
			if c.leader && e.GetTerm() == c.term && idx > c.quietUntil {
				c.carryOut(nowNanos, cmd, c.sm.Apply(cmd))
			} else {
				c.sm.ApplyQuiet(cmd)
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("%w: decode conf change at %d: %v", ErrStopped, idx, err)
			}
			c.confState = c.rn.ApplyConfChange(&cc)
			c.confChanged = true
			name, replyTo, _ := strings.Cut(string(cc.GetContext()), "\x00")
			c.log.Info("membership changed", "change", cc.GetType().String(), "node", name, "id", fmt.Sprintf("%x", cc.GetNodeId()),
				"voters", len(c.confState.GetVoters()))
			if c.leader && e.GetTerm() == c.term && idx > c.quietUntil && replyTo != "" {
				c.out(replyTo, "", []byte("+OK"))
			}
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("%w: decode conf change at %d: %v", ErrStopped, idx, err)
			}
			c.confState = c.rn.ApplyConfChange(&cc)
		}
		c.applied = idx
	}
	return nil
}

func (c *Core) maybeSnapshot() error {
	n := c.cfg.SnapshotEntries
	due := n > 0 && c.applied >= c.snapshotIndex+n ||
		c.cfg.SnapshotBytes > 0 && c.sinceSnapshot >= c.cfg.SnapshotBytes && c.applied > c.snapshotIndex
	if !due && !(c.confChanged && c.applied > c.snapshotIndex) {
		return nil
	}
	c.confChanged = false
	compact := uint64(0)
	if c.applied > c.cfg.TrailingEntries {
		compact = c.applied - c.cfg.TrailingEntries
	}
	// The snapshot records where the messages are, so they must be
	// durable first; once it is, what it no longer needs can go.
	msgs := c.store.Messages()
	if err := msgs.Sync(); err != nil {
		return fmt.Errorf("%w: sync messages for the snapshot at %d: %v", ErrStopped, c.applied, err)
	}
	if err := c.store.CreateSnapshot(c.applied, c.confState, c.sm.Snapshot(), compact); err != nil {
		return fmt.Errorf("%w: snapshot at %d: %v", ErrStopped, c.applied, err)
	}
	c.snapshotIndex = c.applied
	c.sinceSnapshot = 0
	if err := c.retain(); err != nil {
		return err
	}
	c.log.Debug("snapshot", "index", c.applied, "compacted_to", compact)
	return nil
}

// retain frees in the message store what the state no longer refers to:
// whole segments below each channel's first (no write at all when none is
// due), and deleted channels. Only a persisted snapshot of the current
// state makes that safe.
func (c *Core) retain() error {
	msgs := c.store.Messages()
	live := map[string]bool{}
	for _, r := range c.sm.Retention() {
		live[r.Log] = true
		if err := msgs.DropSegmentsBefore(r.Log, r.First); err != nil {
			return fmt.Errorf("%w: trim messages of log %s: %v", ErrStopped, r.Log, err)
		}
	}
	for _, name := range msgs.Channels() {
		if !live[name] {
			if err := msgs.DeleteChannel(name); err != nil {
				return fmt.Errorf("%w: delete messages of log %s: %v", ErrStopped, name, err)
			}
		}
	}
	return nil
}

// flushQueue proposes the queued commands. Consecutive publishes and acks
// were merged as they arrived; each command is one raft entry.
func (c *Core) flushQueue(nowNanos int64) {
	if !c.leader {
		c.queue, c.raws, c.pubRaw = nil, nil, nil
		return
	}
	if len(c.queue) == 0 {
		// Empty since the last flush, which kept the arrays for the next
		// requests: a lone request allocates none of them.
		return
	}
	raws := c.raws
	for _, cmd := range c.queue {
		cmd.NowNanos = nowNanos
		var data []byte
		if len(raws) > 0 && raws[0].cmd == cmd {
			data = encodePublishCommand(nowNanos, raws[0].msgs, cmd.GetPublish().GetAckSubjects())
			raws = raws[1:]
		} else if a, ok := cmd.Op.(*pb.Command_Acks); ok && cmd.ReplyTo == "" && len(a.Acks.GetAcks()) == 0 {
			data = encodeAcksCommand(nowNanos, a.Acks.GetRuns())
		} else {
			data = statemachine.EncodeCommand(cmd)
		}
		if err := c.propose(data); err != nil {
			c.log.Debug("proposal dropped", "err", err)
			continue
		}
		c.proposed = append(c.proposed, proposal{data: data, cmd: cmd})
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	clear(c.raws)
	c.raws, c.pubRaw = c.raws[:0], nil
}

// propose hands data to raft as one entry, as RawNode.Propose does, but in
// a message kept for the next proposal: raft copies the entries it appends
// (raft.appendEntry clones them), and a replica that is not the leader
// drops the proposal rather than keep the message to forward it
// (DisableProposalForwarding), so nothing of it outlives the call. That is
// five allocations fewer for every proposal.
func (c *Core) propose(data []byte) error {
	if c.prop == nil {
		c.prop = &raftpb.Message{Type: raftpb.MsgProp.Enum(), From: proto.Uint64(c.id), Entries: []*raftpb.Entry{{}}}
	}
	e := c.prop.Entries[0]
	e.Data = data
	err := c.rn.Step(c.prop)
	e.Data = nil
	return err
}

type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { r.l.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any) {
	r.l.Error(fmt.Sprintf(f, v...))
	panic(fmt.Sprintf(f, v...))
}
func (r raftLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
