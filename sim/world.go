// Package sim runs stanza inside a deterministic simulation: one seed
// decides the cluster size, the workload, the faults and every random
// choice; simulated time advances in steps; nothing reads the wall clock.
// It drives the real node core, state machine and storage code (on the
// crashable in-memory file system), with simulated STAN clients speaking
// the real wire protocol through a simulated NATS.
//
// A run has a safety phase with faults and a liveness phase that heals
// the cluster and requires convergence. Checkers run every step (one leader
// per term, committed entries agree, equal state at equal applied index,
// a channel's message at a sequence never changes) and at the end
// (porcupine over the publish history, lost / unexpected / duplicate /
// out-of-order / gap / unseen deliveries).
package sim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"

	"github.com/stanza-io/stanza/node"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/storage"
)

const (
	stepNanos = 10_000_000 // one step is 10 ms of simulated time
	// The degraded phase (see degradedPhase) lasts degradedSteps, loses
	// degradedLoss of the raft packets, probes every degradedProbe steps
	// (cutting the leader's raft traffic to one follower for
	// degradedCutSteps, less than an election timeout, at every other
	// probe), and allows degradedLag steps (30 election timeouts) for an
	// entry to be applied everywhere and degradedAnswer (10) for a probe's
	// publish to be answered by the leader it was sent to. Over the 100
	// degraded seeds of the first 200, the longest answer took 43 steps, a
	// cut probe included.
	degradedSteps    = 4000
	degradedLoss     = 0.2
	degradedProbe    = 400
	degradedCutSteps = 4
	degradedLag      = 300
	degradedAnswer   = 100
	startNanos       = 1_750_000_000_000_000_000
)

// FailureKind says what kind of failure ended a run; each has its own exit
// code in stanza-sim.
type FailureKind int

const (
	failNone FailureKind = iota
	failCrash
	failSafety
	failLiveness
	failNondeterminism
)

// Exported failure kinds.
const (
	FailCrash          = failCrash
	FailSafety         = failSafety
	FailLiveness       = failLiveness
	FailNondeterminism = failNondeterminism
)

func (k FailureKind) String() string {
	return [...]string{"none", "crash", "safety", "liveness", "nondeterminism"}[k]
}

// Config of one run. Zero values are chosen by the seed.
type Config struct {
	Seed          uint64
	Nodes         int // 3 or 5
	Clients       int
	SafetySteps   int
	LivenessSteps int       // the convergence budget
	Trace         io.Writer // one line per event, if set
	// Bugs plants deliberate bugs (stanzabugs builds only), to prove the
	// checkers find them.
	Bugs statemachine.Bug
	// Faults replaces the seed's fault configuration (scripted scenarios).
	Faults *Faults
}

// Failure describes why a run failed.
type Failure struct {
	Kind    FailureKind
	Step    int
	Message string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("%s failure at step %d: %s", f.Kind, f.Step, f.Message)
}

// Result of one run.
type Result struct {
	Seed      uint64
	Nodes     int
	Clients   int
	Faults    string
	Failure   *Failure
	TraceHash string
	Steps     int
	Stats     Stats
	History   History
}

// Stats summarize a run.
type Stats struct {
	Published, Acked, Rejected, Indefinite int
	Deliveries, Redeliveries               int
	NodeCrashes, NodeRestarts, Partitions  int
	LeaderChanges                          int
	PacketsSent, PacketsDropped            uint64
	ConvergedAtStep                        int
	DegradedMaxLag                         int // steps from the leader's log to every running node, in the degraded phase
	DegradedMaxAnswer                      int // steps a probe of the degraded phase waited for its answer (sampled every 10)
}

// World is one simulation run.
type World struct {
	cfg      Config
	r        *rand.Rand
	faults   *Faults
	net      *network
	nodes    []*simNode
	clients  []*client
	channels []string
	subjects node.Subjects
	now      int64
	step     int
	hist     history
	failure  *Failure
	trace    hash.Hash
	traceOut io.Writer
	stats    Stats
	// degraded: this seed runs the degraded phase before the full heal.
	degraded bool

	durables      map[string]*durableInfo
	durableEpochs map[string]int
	subInstances  int

	committed map[uint64][32]byte // raft index -> hash of (term, data), as first applied
	stateAt   map[uint64][32]byte // applied index -> state hash, as first seen
	contents  map[chanSeq]string  // (channel, seq) -> payload, as first seen
	leaders   map[uint64]string   // term -> leader
	lastLead  string
}

type chanSeq struct {
	channel string
	seq     uint64
}

type durableInfo struct {
	kind                    subKind
	base                    string // identity without the epoch
	channel, durable, queue string
	client                  string
}

// simNode is one replica: its disk survives crashes, its process does not.
type simNode struct {
	name         string
	ep           endpoint
	fs           *storage.MemFS
	st           *node.FileStorage
	core         *node.Core
	up           bool
	broken       bool // its disk is corrupt: it stays down
	diskFaults   bool // this node may get disk faults (a minority)
	crashedUntil int64
	pausedUntil  int64
	skew         int64
	applied      uint64
	writeErrors  bool
	join         bool // added to a running cluster: starts without bootstrapping
	retired      bool // removed from the cluster: stopped, no longer checked
	// replaceDurable: this node runs with --replace_durable. Each node
	// draws its own: the leader's flag goes in the command, so replicas
	// that differ must still agree.
	replaceDurable bool
}

// errInjected is the error injected into disks.
var errInjected = errors.New("sim: injected disk error")

// New builds the world of a seed.
func New(cfg Config) *World {
	root := rand.New(rand.NewPCG(cfg.Seed, 0x5741_4e5a_41))
	stream := func(n uint64) *rand.Rand { return rand.New(rand.NewPCG(cfg.Seed, n)) }
	w := &World{cfg: cfg, r: root, now: startNanos, trace: sha256.New(), traceOut: cfg.Trace,
		durables: map[string]*durableInfo{}, durableEpochs: map[string]int{},
		committed: map[uint64][32]byte{}, stateAt: map[uint64][32]byte{}, contents: map[chanSeq]string{}, leaders: map[uint64]string{}}
	w.hist.now = func() int64 { return w.now }
	if w.cfg.Nodes == 0 {
		w.cfg.Nodes = []int{3, 3, 5}[root.IntN(3)]
	}
	if w.cfg.Clients == 0 {
		w.cfg.Clients = 2 + root.IntN(4)
	}
	if w.cfg.SafetySteps == 0 {
		w.cfg.SafetySteps = 2000 + root.IntN(2000)
	}
	if w.cfg.LivenessSteps == 0 {
		w.cfg.LivenessSteps = 10000
	}
	w.faults = swarm(stream(1))
	w.degraded = stream(3).IntN(2) == 0
	if cfg.Faults != nil {
		f := *cfg.Faults
		w.faults = &f
	}
	w.net = newNetwork(stream(2), w.faults)
	w.subjects = node.SubjectsFor("_STAN.discover", "sim")
	for i := 0; i < 1+root.IntN(3); i++ {
		w.channels = append(w.channels, fmt.Sprintf("ch%d", i))
	}
	diskFaulty := (w.cfg.Nodes - 1) / 2
	replacing := stream(4)
	for i := 0; i < w.cfg.Nodes; i++ {
		n := &simNode{name: fmt.Sprintf("n%d", i), ep: endpoint(i),
			fs:         storage.NewMemFS(storage.MemFSOptions{Rand: stream(100 + uint64(i))}),
			diskFaults: i < diskFaulty && (w.faults.DiskErrorRate > 0 || w.faults.BitFlipRate > 0)}
		if !w.faults.TornWrites {
			n.fs = storage.NewMemFS(storage.MemFSOptions{})
		}
		if w.faults.ClockSkewMax > 0 {
			n.skew = root.Int64N(2*w.faults.ClockSkewMax+1) - w.faults.ClockSkewMax
		}
		n.replaceDurable = replacing.IntN(2) == 0
		w.nodes = append(w.nodes, n)
	}
	for i := 0; i < w.cfg.Clients; i++ {
		c := &client{w: w, r: stream(200 + uint64(i)), id: fmt.Sprintf("c%d", i), ep: clientBase + endpoint(i), async: root.IntN(2) == 0,
			pubs: map[string]*pubOp{}, requests: map[string]*subRequest{}}
		w.clients = append(w.clients, c)
	}
	return w
}

func (w *World) tracef(format string, args ...any) {
	line := fmt.Sprintf("%d ", w.step) + fmt.Sprintf(format, args...)
	w.trace.Write([]byte(line))
	w.trace.Write([]byte{'\n'})
	if w.traceOut != nil {
		fmt.Fprintln(w.traceOut, line)
	}
}

func (w *World) fail(kind FailureKind, format string, args ...any) {
	if w.failure != nil {
		return
	}
	w.failure = &Failure{Kind: kind, Step: w.step, Message: fmt.Sprintf(format, args...)}
	w.tracef("FAIL %s: %s", kind, w.failure.Message)
}

func (w *World) nextSubInstance() int {
	w.subInstances++
	return w.subInstances
}

func (w *World) rememberDurable(s *simSub, clientID string) {
	if _, ok := w.durables[s.identity]; !ok {
		base, _, _ := strings.Cut(s.identity, "#")
		w.durables[s.identity] = &durableInfo{kind: s.kind, base: base, channel: s.channel, durable: s.durable, queue: s.queue, client: clientID}
	}
}

func (w *World) forgetDurable(identity, clientID string) {
	if d := w.durables[identity]; d != nil && d.client == clientID {
		delete(w.durables, identity)
		w.durableEpochs[d.base]++
	}
}

func (w *World) durablesOf(clientID string) []string {
	var out []string
	for _, id := range sortedKeys(w.durables) {
		if d := w.durables[id]; d.client == clientID || d.kind == durableQueueSub {
			out = append(out, id)
		}
	}
	return out
}

func (w *World) nodeConfig(n *simNode) node.Config {
	var peers []string
	for _, o := range w.nodes {
		peers = append(peers, o.name)
	}
	limits := statemachine.DefaultLimits()
	limits.MaxMsgs, limits.MaxBytes = 0, 0 // nothing is trimmed: every acked message must stay
	return node.Config{ClusterID: "sim", NodeName: n.name, Peers: peers, Limits: limits, TickNanos: stepNanos,
		HBIntervalNanos: 1_000_000_000, HBTimeoutNanos: 500_000_000, HBFailCount: 3, DupProbeNanos: 500_000_000,
		SnapshotEntries: 200, SnapshotBytes: 64 << 10, TrailingEntries: 50, Logger: slog.New(slog.DiscardHandler), Bugs: w.cfg.Bugs,
		Join: n.join, AllowMembershipChanges: true, ReplaceDurable: n.replaceDurable}
}

func (w *World) nodeNow(n *simNode) int64 { return w.now + n.skew }

// addNode starts a new, empty replica that joins the running cluster once
// the leader adds it.
func (w *World) addNode() *simNode {
	i := len(w.nodes)
	n := &simNode{name: fmt.Sprintf("n%d", i), ep: endpoint(i), fs: storage.NewMemFS(storage.MemFSOptions{}), join: true}
	w.nodes = append(w.nodes, n)
	w.tracef("node %s added, empty", n.name)
	w.startNode(n)
	return n
}

// retire stops a replica removed from the cluster.
func (w *World) retire(n *simNode) {
	w.tracef("node %s retired", n.name)
	n.retired, n.up, n.core, n.st = true, false, nil, nil
	n.crashedUntil = 1 << 62
	w.net.setSubs(n.ep, nil)
}

func (w *World) startNode(n *simNode) {
	st, err := node.OpenFileStorage(n.fs, "/data", node.FileStorageOptions{SegmentBytesMax: 32 * 1024, Preallocate: true,
		Msgs: storage.FileMsgStoreOptions{SegmentBytesMax: 4096, OpenSegmentsMax: 4}})
	if err != nil {
		if n.diskFaults && errors.Is(err, storage.ErrCorrupt) {
			// Corruption found at open: the node refuses to run on it,
			// loudly, rather than lose acknowledged entries. It stays down.
			w.tracef("node %s refuses to start on a corrupt log: %v", n.name, err)
			n.broken = true
			return
		}
		w.fail(failSafety, "node %s cannot reopen its storage after a crash: %v", n.name, err)
		return
	}
	core, err := node.New(w.nodeConfig(n), st, func(subject, reply string, data []byte) {
		w.net.publish(w.now, n.ep, subject, reply, data)
	})
	if err != nil {
		w.fail(failSafety, "node %s cannot restart: %v", n.name, err)
		return
	}
	core.SetCheckInvariants(true)
	n.applied = core.Applied()
	core.SetApplyObserver(func(index, term uint64, data []byte) { w.observeApply(n, index, term, data) })
	n.st, n.core, n.up = st, core, true
	w.net.setSubs(n.ep, core.Listen())
}

func (w *World) crashNode(n *simNode, why string) {
	w.tracef("node %s crashes: %s", n.name, why)
	w.stats.NodeCrashes++
	n.up, n.core, n.st = false, nil, nil // no Close: unsynced writes must not be flushed
	n.fs.Crash()
	n.fs.ClearFaults()
	n.writeErrors = false
	n.crashedUntil = w.now + int64(1+w.r.IntN(max(1, w.faults.RestartSteps)))*stepNanos
	w.net.setSubs(n.ep, nil)
}

func (w *World) observeApply(n *simNode, index, term uint64, data []byte) {
	if index <= n.applied {
		w.fail(failSafety, "node %s applied index %d after %d", n.name, index, n.applied)
	}
	n.applied = index
	h := sha256.New()
	fmt.Fprintf(h, "%d:", term)
	h.Write(data)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if prev, ok := w.committed[index]; ok && prev != sum {
		w.fail(failSafety, "node %s applied a different entry at index %d (term %d) than another replica", n.name, index, term)
	}
	w.committed[index] = sum
	w.tracef("apply %s %d %x", n.name, index, sum[:6])
}
