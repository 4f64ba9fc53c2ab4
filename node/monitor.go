package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stanza-io/stanza/statemachine"
	"go.etcd.io/raft/v3"
)

// Monitoring endpoints: nats-streaming-server's, with its JSON field names,
// plus a raft section in serverz and Prometheus metrics.
const (
	MonitorRootPath  = "/streaming"
	ServerzPath      = MonitorRootPath + "/serverz"
	StorezPath       = MonitorRootPath + "/storez"
	ClientszPath     = MonitorRootPath + "/clientsz"
	ChannelszPath    = MonitorRootPath + "/channelsz"
	IsFTActivePath   = MonitorRootPath + "/isFTActive"
	MetricsPath      = "/metrics"
	monitorLimitMax  = 1024 // default page size of clientsz and channelsz, as in nats-streaming-server
	callbackBytesMax = 128
)

// Stats counts what a replica received and sent while it was the leader:
// publishes stored (in) and messages delivered (out), with their encoded
// sizes. The core is single-threaded, so these are plain counters.
type Stats struct {
	InMsgs, InBytes   uint64
	OutMsgs, OutBytes uint64
	Acks, Redelivered uint64
	// CommitLatency is the time from a command's proposal to its apply on
	// this leader, from the leader's own clock stamps (so the core stays
	// free of clocks).
	CommitLatency Histogram
}

// Stats returns what this replica received and sent while leading.
func (c *Core) Stats() Stats { return c.stats }

// MonitorInfo is what the monitoring endpoints report besides the replica's
// state: identity and configuration the core does not know.
type MonitorInfo struct {
	ClusterID string
	ServerID  string // unique per process start
	NodeID    string // the cluster node ID; reported only when Clustered
	Version   string
	Clustered bool
	FT        bool   // fault-tolerant mode: this server is the active one of its group
	StoreType string // "MEMORY" or "FILE"
	Start     time.Time
}

// RegisterMonitoring adds the monitoring endpoints to mux. Every state read
// runs on the core's goroutine (Server.Do).
func (s *Server) RegisterMonitoring(mux *http.ServeMux, info MonitorInfo) {
	m := &monitor{s: s, info: info}
	mux.HandleFunc(MonitorRootPath, m.handleRoot)
	mux.HandleFunc(ServerzPath, m.handleServerz)
	mux.HandleFunc(StorezPath, m.handleStorez)
	mux.HandleFunc(ClientszPath, m.handleClientsz)
	mux.HandleFunc(ChannelszPath, m.handleChannelsz)
	mux.HandleFunc(IsFTActivePath, m.handleIsFTActive)
	mux.HandleFunc(MetricsPath, m.handleMetrics)
}

type monitor struct {
	s    *Server
	info MonitorInfo
}

// Serverz describes the server (nats-streaming-server's /streaming/serverz,
// plus Raft).
type Serverz struct {
	ClusterID     string    `json:"cluster_id"`
	ServerID      string    `json:"server_id"`
	Version       string    `json:"version"`
	GoVersion     string    `json:"go"`
	State         string    `json:"state"`
	Role          string    `json:"role,omitempty"`
	NodeID        string    `json:"node_id,omitempty"`
	Now           time.Time `json:"now"`
	Start         time.Time `json:"start_time"`
	Uptime        string    `json:"uptime"`
	Clients       int       `json:"clients"`
	Subscriptions int       `json:"subscriptions"`
	Channels      int       `json:"channels"`
	TotalMsgs     int       `json:"total_msgs"`
	TotalBytes    uint64    `json:"total_bytes"`
	InMsgs        uint64    `json:"in_msgs"`
	InBytes       uint64    `json:"in_bytes"`
	OutMsgs       uint64    `json:"out_msgs"`
	OutBytes      uint64    `json:"out_bytes"`
	Raft          *Raftz    `json:"raft"`
}

// Raftz is this replica's raft status. Raft IDs are in hex, as in the logs.
type Raftz struct {
	ID      string `json:"id"`
	State   string `json:"state"` // Leader, Follower or Candidate
	Serving bool   `json:"serving"`
	Term    uint64 `json:"term"`
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
	Leader  string `json:"leader"` // empty when no leader is known
	// Progress is the leader's view of every voter's log, itself included;
	// empty on a follower.
	Progress []Progressz `json:"progress,omitempty"`
	// CatchUp is the snapshot a follower fetches messages for before it
	// restores it, while it does.
	CatchUp *CatchUpz `json:"catch_up,omitempty"`
}

// CatchUpz is a follower's fetch of the messages of a snapshot.
type CatchUpz struct {
	SnapshotIndex uint64 `json:"snapshot_index"`
	From          string `json:"from"` // the raft ID of the node it fetches from
	Logs          int    `json:"logs"` // message logs still to fetch, the current one included
	Log           string `json:"log"`
	NextSeq       uint64 `json:"next_seq"`
	LastSeq       uint64 `json:"last_seq"`
}

// Progressz is one voter's log as the leader sees it.
type Progressz struct {
	ID     string `json:"id"`
	NodeID string `json:"node_id,omitempty"`
	Match  uint64 `json:"match"`
	Next   uint64 `json:"next"`
	State  string `json:"state"` // StateProbe, StateReplicate or StateSnapshot
}

// Storez describes the store (/streaming/storez).
type Storez struct {
	ClusterID  string    `json:"cluster_id"`
	ServerID   string    `json:"server_id"`
	Now        time.Time `json:"now"`
	Type       string    `json:"type"`
	Limits     Limitsz   `json:"limits"`
	TotalMsgs  int       `json:"total_msgs"`
	TotalBytes uint64    `json:"total_bytes"`
}

// Limitsz are the store limits, durations in nanoseconds. In Channels zero
// means "inherit" and a negative value unlimited.
type Limitsz struct {
	MaxChannels int `json:"max_channels"`
	ChannelLimitsz
	Channels map[string]*ChannelLimitsz `json:"channels,omitempty"`
}

// ChannelLimitsz are the limits of one channel (or the defaults).
type ChannelLimitsz struct {
	MaxMsgs          int   `json:"max_msgs"`
	MaxBytes         int64 `json:"max_bytes"`
	MaxAge           int64 `json:"max_age"`
	MaxSubscriptions int   `json:"max_subscriptions"`
	MaxInactivity    int64 `json:"max_inactivity"`
}

// Clientsz lists clients (/streaming/clientsz).
type Clientsz struct {
	ClusterID string     `json:"cluster_id"`
	ServerID  string     `json:"server_id"`
	Now       time.Time  `json:"now"`
	Offset    int        `json:"offset"`
	Limit     int        `json:"limit"`
	Count     int        `json:"count"`
	Total     int        `json:"total"`
	Clients   []*Clientz `json:"clients"`
}

// Clientz describes one client; Subscriptions (by channel) only with subs=1.
type Clientz struct {
	ID            string                      `json:"id"`
	HBInbox       string                      `json:"hb_inbox"`
	SubsCount     int                         `json:"subs_count"`
	Subscriptions map[string][]*Subscriptionz `json:"subscriptions,omitempty"`
}

// Channelsz lists channels (/streaming/channelsz): Names without subs=1,
// Channels with it.
type Channelsz struct {
	ClusterID string      `json:"cluster_id"`
	ServerID  string      `json:"server_id"`
	Now       time.Time   `json:"now"`
	Offset    int         `json:"offset"`
	Limit     int         `json:"limit"`
	Count     int         `json:"count"`
	Total     int         `json:"total"`
	Names     []string    `json:"names,omitempty"`
	Channels  []*Channelz `json:"channels,omitempty"`
}

// Channelz describes one channel.
type Channelz struct {
	Name          string           `json:"name"`
	Msgs          int              `json:"msgs"`
	Bytes         uint64           `json:"bytes"`
	FirstSeq      uint64           `json:"first_seq"`
	LastSeq       uint64           `json:"last_seq"`
	SubsCount     int              `json:"subs_count"`
	Subscriptions []*Subscriptionz `json:"subscriptions,omitempty"`
}

// Subscriptionz describes one subscription. AckWait is in seconds.
type Subscriptionz struct {
	ClientID     string `json:"client_id"`
	Inbox        string `json:"inbox"`
	AckInbox     string `json:"ack_inbox"`
	DurableName  string `json:"durable_name,omitempty"`
	QueueName    string `json:"queue_name,omitempty"`
	IsDurable    bool   `json:"is_durable"`
	IsOffline    bool   `json:"is_offline"`
	MaxInflight  int    `json:"max_inflight"`
	AckWait      int    `json:"ack_wait"`
	LastSent     uint64 `json:"last_sent"`
	PendingCount int    `json:"pending_count"`
	IsStalled    bool   `json:"is_stalled"`
}

func subscriptionz(si statemachine.SubInfo) *Subscriptionz {
	return &Subscriptionz{
		ClientID: si.ClientID, Inbox: si.Inbox, AckInbox: si.AckInbox, DurableName: si.DurableName,
		QueueName: si.QueueName, IsDurable: si.IsDurable, IsOffline: si.IsOffline, MaxInflight: int(si.MaxInflight),
		AckWait: int(si.AckWaitNanos / int64(time.Second)), LastSent: si.LastSent, PendingCount: si.PendingCount,
		IsStalled: si.IsStalled,
	}
}

// read runs f on the core's goroutine; false (after answering 503) when the
// replica has stopped.
func (m *monitor) read(w http.ResponseWriter, f func(*Core)) bool {
	if err := m.s.Do(f); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return false
	}
	return true
}

func (m *monitor) handleRoot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<html lang="en">
  <head><title>stanza</title></head>
  <body>
    <h1>stanza</h1>
    <a href=".%s">server</a><br/>
    <a href=".%s">store</a><br/>
    <a href=".%s">clients</a><br/>
    <a href=".%s">channels</a><br/>
    <a href="%s">metrics</a><br/>
  </body>
</html>
`, ServerzPath, StorezPath, ClientszPath, ChannelszPath, MetricsPath)
}

func (m *monitor) handleServerz(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	z := &Serverz{
		ClusterID: m.info.ClusterID, ServerID: m.info.ServerID, Version: m.info.Version, GoVersion: runtime.Version(),
		State: "STANDALONE", Now: now, Start: m.info.Start, Uptime: uptime(now.Sub(m.info.Start)),
	}
	ok := m.read(w, func(c *Core) {
		sm := c.State()
		msgs, bytes := sm.Totals()
		z.Clients, z.Subscriptions, z.Channels = sm.NumClients(), sm.NumSubscriptions(), sm.NumChannels()
		z.TotalMsgs, z.TotalBytes = msgs, uint64(bytes)
		st := c.Stats()
		z.InMsgs, z.InBytes, z.OutMsgs, z.OutBytes = st.InMsgs, st.InBytes, st.OutMsgs, st.OutBytes
		z.Raft = raftz(c)
	})
	if !ok {
		return
	}
	if m.info.Clustered {
		z.State, z.Role, z.NodeID = "CLUSTERED", z.Raft.State, m.info.NodeID
	}
	if m.info.FT {
		z.State = "FT_ACTIVE"
	}
	writeJSON(w, r, z)
}

// MonitorPaths are the paths RegisterMonitoring and
// RegisterStandbyMonitoring serve.
var MonitorPaths = []string{MonitorRootPath, ServerzPath, StorezPath, ClientszPath, ChannelszPath, IsFTActivePath, MetricsPath}

// RegisterStandbyMonitoring adds the monitoring endpoints of a server that
// stands by in an FT group, before it has opened the store: serverz says
// FT_STANDBY, isFTActive answers 204, and the endpoints that would read
// the state answer 503.
func RegisterStandbyMonitoring(mux *http.ServeMux, info MonitorInfo) {
	standby := func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "stanza: standby server of an FT group: the active server has the state", http.StatusServiceUnavailable)
	}
	mux.HandleFunc(MonitorRootPath, (&monitor{info: info}).handleRoot)
	mux.HandleFunc(ServerzPath, func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		writeJSON(w, r, &Serverz{ClusterID: info.ClusterID, ServerID: info.ServerID, Version: info.Version, GoVersion: runtime.Version(),
			State: "FT_STANDBY", Now: now, Start: info.Start, Uptime: uptime(now.Sub(info.Start))})
	})
	mux.HandleFunc(StorezPath, standby)
	mux.HandleFunc(ClientszPath, standby)
	mux.HandleFunc(ChannelszPath, standby)
	mux.HandleFunc(IsFTActivePath, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc(MetricsPath, func(w http.ResponseWriter, r *http.Request) {
		x := ftActiveMetric(0)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", x.name, x.help, x.name, x.kind, x.name, x.value)
	})
}

func ftActiveMetric(v uint64) metric {
	return metric{"stanza_ft_active", "gauge", "1 if this server is the active one of its FT group, 0 while it stands by.", v}
}

func raftz(c *Core) *Raftz {
	st := c.Status()
	z := &Raftz{
		ID: hexID(st.ID), State: roleName(st.RaftState), Serving: c.Serving(), Term: st.GetTerm(),
		Commit: st.GetCommit(), Applied: c.Applied(),
	}
	if st.Lead != raft.None {
		z.Leader = hexID(st.Lead)
	}
	names := map[uint64]string{}
	for _, p := range c.cfg.Peers {
		names[RaftID(p)] = p
	}
	ids := make([]uint64, 0, len(st.Progress))
	for id := range st.Progress {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		pr := st.Progress[id]
		z.Progress = append(z.Progress, Progressz{ID: hexID(id), NodeID: names[id], Match: pr.Match, Next: pr.Next, State: pr.State.String()})
	}
	if cu := c.catching; cu != nil {
		n := cu.needs[0]
		z.CatchUp = &CatchUpz{SnapshotIndex: cu.snap.GetSnapshot().GetMetadata().GetIndex(), From: hexID(cu.snap.GetFrom()),
			Logs: len(cu.needs), Log: n.Log, NextSeq: cu.next, LastSeq: n.To}
	}
	return z
}

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// roleName spells the raft state as nats-streaming-server's serverz does
// (a pre-candidate is a candidate to the operator).
func roleName(st raft.StateType) string {
	switch st {
	case raft.StateLeader:
		return "Leader"
	case raft.StateCandidate, raft.StatePreCandidate:
		return "Candidate"
	}
	return "Follower"
}

// uptime formats d like nats-streaming-server: "1y2d3h4m5s", leading zero
// units dropped.
func uptime(d time.Duration) string {
	secs := int64(d / time.Second)
	units := []struct {
		n      int64
		suffix string
	}{
		{secs / (365 * 86400), "y"}, {secs / 86400 % 365, "d"}, {secs / 3600 % 24, "h"}, {secs / 60 % 60, "m"}, {secs % 60, "s"},
	}
	var b strings.Builder
	for i, u := range units {
		if b.Len() > 0 || u.n > 0 || i == len(units)-1 {
			fmt.Fprintf(&b, "%d%s", u.n, u.suffix)
		}
	}
	return b.String()
}

func (m *monitor) handleStorez(w http.ResponseWriter, r *http.Request) {
	typ := m.info.StoreType
	if m.info.Clustered {
		typ = "RAFT_" + typ
	}
	z := &Storez{ClusterID: m.info.ClusterID, ServerID: m.info.ServerID, Now: time.Now(), Type: typ}
	ok := m.read(w, func(c *Core) {
		l := c.cfg.Limits
		z.Limits = Limitsz{MaxChannels: l.MaxChannels, ChannelLimitsz: channelLimitsz(l.ChannelLimits)}
		if len(l.PerChannel) > 0 {
			z.Limits.Channels = map[string]*ChannelLimitsz{}
			for name, cl := range l.PerChannel {
				v := channelLimitsz(cl)
				z.Limits.Channels[name] = &v
			}
		}
		msgs, bytes := c.State().Totals()
		z.TotalMsgs, z.TotalBytes = msgs, uint64(bytes)
	})
	if ok {
		writeJSON(w, r, z)
	}
}

func channelLimitsz(cl statemachine.ChannelLimits) ChannelLimitsz {
	return ChannelLimitsz{MaxMsgs: cl.MaxMsgs, MaxBytes: cl.MaxBytes, MaxAge: cl.MaxAgeNanos,
		MaxSubscriptions: cl.MaxSubscriptions, MaxInactivity: cl.MaxInactivityNanos}
}

// page returns the offset and limit query parameters: a negative offset is
// zero, a missing or non-positive limit is the default.
func page(r *http.Request) (offset, limit int) {
	q := r.URL.Query()
	offset, _ = strconv.Atoi(q.Get("offset"))
	offset = max(offset, 0)
	limit, _ = strconv.Atoi(q.Get("limit"))
	if limit <= 0 {
		limit = monitorLimitMax
	}
	return offset, limit
}

// bounds returns the slice [lo:hi] of a list of n items for offset and limit.
func bounds(offset, limit, n int) (lo, hi int) {
	lo = min(offset, n)
	hi = min(lo+limit, n)
	return lo, hi
}

func withSubs(r *http.Request) bool {
	v, _ := strconv.Atoi(r.URL.Query().Get("subs"))
	return v == 1
}

func clientz(sm *statemachine.State, cl statemachine.Client, subs bool) *Clientz {
	infos := sm.ClientSubs(cl.ID)
	z := &Clientz{ID: cl.ID, HBInbox: cl.HbInbox, SubsCount: len(infos)}
	if subs && len(infos) > 0 {
		z.Subscriptions = map[string][]*Subscriptionz{}
		for _, si := range infos {
			z.Subscriptions[si.Channel] = append(z.Subscriptions[si.Channel], subscriptionz(si))
		}
	}
	return z
}

func (m *monitor) handleClientsz(w http.ResponseWriter, r *http.Request) {
	subs := withSubs(r)
	if id := r.URL.Query().Get("client"); id != "" {
		var z *Clientz
		ok := m.read(w, func(c *Core) {
			if cl, found := c.State().ClientByID(id); found {
				z = clientz(c.State(), cl, subs)
			}
		})
		switch {
		case !ok:
		case z == nil:
			http.Error(w, fmt.Sprintf("Client %s not found", id), http.StatusNotFound)
		default:
			writeJSON(w, r, z)
		}
		return
	}
	offset, limit := page(r)
	z := &Clientsz{ClusterID: m.info.ClusterID, ServerID: m.info.ServerID, Now: time.Now(), Offset: offset, Limit: limit,
		Clients: []*Clientz{}}
	ok := m.read(w, func(c *Core) {
		all := c.State().Clients()
		z.Total = len(all)
		lo, hi := bounds(offset, limit, len(all))
		for _, cl := range all[lo:hi] {
			z.Clients = append(z.Clients, clientz(c.State(), cl, subs))
		}
	})
	if ok {
		z.Count = len(z.Clients)
		writeJSON(w, r, z)
	}
}

func channelz(sm *statemachine.State, name string, subs bool) *Channelz {
	info, _ := sm.Channel(name)
	infos := sm.ChannelSubs(name)
	z := &Channelz{Name: name, Msgs: info.Msgs, Bytes: uint64(info.Bytes), FirstSeq: info.First, LastSeq: info.Last, SubsCount: len(infos)}
	if info.Last == 0 {
		z.FirstSeq = 0 // a channel that never held a message reports 0, 0, as nats-streaming-server does
	}
	if subs {
		for _, si := range infos {
			z.Subscriptions = append(z.Subscriptions, subscriptionz(si))
		}
	}
	return z
}

func (m *monitor) handleChannelsz(w http.ResponseWriter, r *http.Request) {
	subs := withSubs(r)
	if name := r.URL.Query().Get("channel"); name != "" {
		var z *Channelz
		ok := m.read(w, func(c *Core) {
			if _, found := c.State().Channel(name); found {
				z = channelz(c.State(), name, subs)
			}
		})
		switch {
		case !ok:
		case z == nil:
			http.Error(w, fmt.Sprintf("Channel %s not found", name), http.StatusNotFound)
		default:
			writeJSON(w, r, z)
		}
		return
	}
	offset, limit := page(r)
	z := &Channelsz{ClusterID: m.info.ClusterID, ServerID: m.info.ServerID, Now: time.Now(), Offset: offset, Limit: limit}
	ok := m.read(w, func(c *Core) {
		names := c.State().ChannelNames()
		z.Total = len(names)
		lo, hi := bounds(offset, limit, len(names))
		names = names[lo:hi]
		z.Count = len(names)
		if !subs {
			z.Names = names
			return
		}
		for _, name := range names {
			z.Channels = append(z.Channels, channelz(c.State(), name, true))
		}
	})
	if ok {
		writeJSON(w, r, z)
	}
}

// handleIsFTActive answers 200 for the active server of an FT group and 204
// otherwise, as nats-streaming-server does.
func (m *monitor) handleIsFTActive(w http.ResponseWriter, r *http.Request) {
	if m.info.FT {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeJSON sends v as nats-streaming-server does: indented JSON, any origin
// allowed, wrapped in the ?callback= function for JSONP.
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, fmt.Sprintf("node: monitoring: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if cb := r.URL.Query().Get("callback"); cb != "" {
		if !validCallback(cb) {
			http.Error(w, "invalid callback name", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/javascript")
		fmt.Fprintf(w, "%s(%s)", cb, b)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// validCallback accepts JavaScript identifiers and dotted paths only, so the
// callback cannot inject script.
func validCallback(cb string) bool {
	if len(cb) > callbackBytesMax {
		return false
	}
	for i := 0; i < len(cb); i++ {
		c := cb[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c == '.') {
			return false
		}
	}
	return true
}

// metric is one line of the Prometheus text exposition format, with its
// HELP and TYPE lines.
type metric struct {
	name, kind, help string
	value            uint64
}

// handleMetrics serves the Prometheus text exposition format (version
// 0.0.4), written by hand to keep the dependency list short.
func (m *monitor) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var ms []metric
	var st Stats
	var save Histogram
	ok := m.read(w, func(c *Core) {
		sm := c.State()
		msgs, bytes := sm.Totals()
		st = c.Stats()
		save = m.s.saveLatency()
		bs := c.Status().BasicStatus
		leader := uint64(0)
		if bs.RaftState == raft.StateLeader {
			leader = 1
		}
		ms = []metric{
			{"stanza_clients", "gauge", "Registered clients.", uint64(sm.NumClients())},
			{"stanza_subscriptions", "gauge", "Subscriptions, offline durables and durable queue groups without members included.", uint64(sm.NumSubscriptions())},
			{"stanza_channels", "gauge", "Channels.", uint64(sm.NumChannels())},
			{"stanza_msgs_total", "gauge", "Messages stored in all channels.", uint64(msgs)},
			{"stanza_bytes_total", "gauge", "Bytes stored in all channels.", uint64(bytes)},
			{"stanza_in_msgs_total", "counter", "Messages published and stored while this replica led.", st.InMsgs},
			{"stanza_in_bytes_total", "counter", "Bytes of the messages published and stored while this replica led.", st.InBytes},
			{"stanza_out_msgs_total", "counter", "Messages delivered to subscribers while this replica led.", st.OutMsgs},
			{"stanza_out_bytes_total", "counter", "Bytes of the messages delivered to subscribers while this replica led.", st.OutBytes},
			{"stanza_acks_total", "counter", "Acks applied while this replica led.", st.Acks},
			{"stanza_redeliveries_total", "counter", "Messages redelivered while this replica led.", st.Redelivered},
			{"stanza_raft_term", "gauge", "Current raft term.", bs.GetTerm()},
			{"stanza_raft_commit_index", "gauge", "Highest raft log index known committed.", bs.GetCommit()},
			{"stanza_raft_applied_index", "gauge", "Highest raft log index applied to the state machine.", c.Applied()},
			{"stanza_raft_is_leader", "gauge", "1 if this replica is the raft leader, else 0.", leader},
			{"stanza_catchup_msgs_pending", "gauge", "Messages a follower still fetches before it restores a snapshot, in the log it fetches now (0 when it fetches none).", c.catchUpPending()},
		}
		if m.info.FT {
			ms = append(ms, ftActiveMetric(1))
		}
	})
	if !ok {
		return
	}
	var b strings.Builder
	for _, x := range ms {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", x.name, x.help, x.name, x.kind, x.name, x.value)
	}
	st.CommitLatency.writeProm(&b, "stanza_commit_latency_seconds", "From proposal to apply on the leader: replication, fsync on a quorum, commit.")
	save.writeProm(&b, "stanza_log_save_seconds", "Writing one raft Ready batch to the log, fsync included.")
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}
