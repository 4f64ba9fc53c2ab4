package node

import (
	"errors"
	"fmt"

	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/storage"
	"go.etcd.io/raft/v3/raftpb"
)

// A snapshot carries the state, not the messages it refers to. A follower
// that receives one fetches the messages its own log lacks from the
// replica that sent it, a bounded piece (fetchRecordsBytes) per request,
// one request at a time, puts them in its message log, and only then steps
// the snapshot into raft, whose restore finds them there. So a catch-up
// costs memory for one piece, not for the channels' contents, and the
// sender answers each request with a bounded read instead of building the
// whole store into one message.
//
// Nothing is lost when it is interrupted: the messages already put are
// committed ones, which a later apply of the same entries puts again as a
// no-op, and raft sends the snapshot again (the sender reports a snapshot
// done once the follower has sent no fetch request for a while, see
// reportSnapshots; raft then probes the follower and, finding it still
// behind, sends its newest one), which starts the fetch where the log now
// ends.

// catchUp is the snapshot a follower fetches messages for.
type catchUp struct {
	snap   *raftpb.Message // the MsgSnap, stepped once the messages are in
	needs  []statemachine.SnapshotNeed
	next   uint64 // the next seq of needs[0]
	sentAt uint64 // the tick the last request went at
}

// fetchRetryTicks is how many ticks a follower waits for an answer before
// it asks again.
const fetchRetryTicks = 3

// beginCatchUp takes a snapshot from the leader. It returns false when the
// snapshot can be stepped at once (the log holds every message it refers
// to, or it carries them itself); otherwise it starts fetching.
func (c *Core) beginCatchUp(m *raftpb.Message) bool {
	if c.leader {
		return false
	}
	msgs := c.store.Messages()
	needs, err := statemachine.SnapshotNeeds(m.GetSnapshot().GetData(), func(log string) uint64 {
		_, last := msgs.FirstLast(log)
		return last
	})
	if err != nil || len(needs) == 0 {
		// A snapshot that does not decode fails its restore, which stops
		// the replica with the reason. One whose messages are all here
		// is restored at once, but they may not be durable yet (a
		// replica syncs its message log before it takes a snapshot of
		// its own, not after each apply), and a restart restores the
		// saved snapshot again.
		c.catching = nil
		if err == nil {
			if err := msgs.Sync(); err != nil {
				c.log.Error("snapshot: sync message log", "err", err)
				return true // not restored: raft sends it again
			}
		}
		return false
	}
	idx := m.GetSnapshot().GetMetadata().GetIndex()
	if cu := c.catching; cu != nil && cu.snap.GetSnapshot().GetMetadata().GetIndex() == idx && cu.snap.GetFrom() == m.GetFrom() &&
		cu.needs[0].LogID == needs[0].LogID && cu.needs[0].To == needs[0].To && cu.next == needs[0].From {
		// The same snapshot again (raft sends it each time it probes a
		// follower that is still behind) while its fetch is under way:
		// the request in flight stands.
		cu.snap = m
		return true
	}
	c.catching = &catchUp{snap: m, needs: needs, next: needs[0].From}
	c.log.Info("fetching the messages of a snapshot", "index", idx, "from", fmt.Sprintf("%x", m.GetFrom()),
		"logs", len(needs), "first_log", needs[0].Log, "first_seq", needs[0].From)
	c.requestFetch()
	return true
}

func (c *Core) requestFetch() {
	cu := c.catching
	n := cu.needs[0]
	cu.sentAt = c.ticks
	c.out(c.raftSubject(cu.snap.GetFrom()), "", encodeFetch(fetchReq{from: c.id, snapIndex: cu.snap.GetSnapshot().GetMetadata().GetIndex(),
		logID: n.LogID, seq: cu.next, to: n.To}))
}

// retryFetch asks again when an answer is overdue (lost, or its sender
// gone); raft's next snapshot from a new leader replaces it.
func (c *Core) retryFetch() {
	if c.catching != nil && c.ticks-c.catching.sentAt >= fetchRetryTicks {
		c.requestFetch()
	}
}

// fetchMessage handles a fetch request or an answer to one.
func (c *Core) fetchMessage(data []byte) {
	if data[0] == wireFetch {
		req, err := decodeFetch(data)
		if err != nil {
			c.log.Warn("dropping fetch request", "err", err)
			return
		}
		c.serveFetch(req)
		return
	}
	resp, err := c.recAsm.addRecords(data)
	if err != nil {
		c.log.Warn("dropping fetched messages", "err", err)
		return
	}
	if resp != nil {
		c.takeRecords(resp)
	}
}

// serveFetch answers a follower's request from this replica's message log:
// the messages from seq on, up to to and about fetchRecordsBytes, or gone
// when the log no longer holds seq (a newer snapshot let it go; the
// follower will get that one).
func (c *Core) serveFetch(req fetchReq) {
	if _, ok := c.snapSent[req.from]; ok {
		c.snapSent[req.from] = c.ticks
	}
	resp := fetchResp{from: c.id, snapIndex: req.snapIndex, logID: req.logID, seq: req.seq}
	msgs := c.store.Messages()
	name := statemachine.LogName(req.logID)
	size := 0
	for seq := req.seq; seq <= req.to && (size == 0 || size < fetchRecordsBytes); seq++ {
		rec, err := msgs.Get(name, seq)
		if err != nil {
			if !errors.Is(err, storage.ErrNotFound) {
				c.log.Error("fetch: message log", "log", name, "seq", seq, "err", err)
			}
			break
		}
		resp.records = append(resp.records, rec)
		size += len(rec)
	}
	resp.gone = len(resp.records) == 0
	c.nextID++
	for _, p := range encodeRecords(resp, c.nextID) {
		c.out(c.raftSubject(req.from), "", p)
	}
}

// takeRecords puts an answer's messages in the log and asks for the next
// piece, or steps the snapshot once nothing is missing.
func (c *Core) takeRecords(resp *fetchResp) {
	cu := c.catching
	if cu == nil || resp.from != cu.snap.GetFrom() || resp.snapIndex != cu.snap.GetSnapshot().GetMetadata().GetIndex() ||
		resp.logID != cu.needs[0].LogID || resp.seq != cu.next {
		return // an answer to an earlier request
	}
	n := cu.needs[0]
	if resp.gone {
		c.log.Info("the snapshot's sender no longer holds its messages; waiting for a newer snapshot", "log", n.Log, "seq", cu.next)
		c.catching = nil
		return
	}
	msgs := c.store.Messages()
	if cu.next == n.From {
		// The log may end well before the snapshot's first message (it
		// was trimmed since this replica last applied): it continues there.
		if _, last := msgs.FirstLast(n.Log); last+1 < n.From {
			if err := msgs.TrimBefore(n.Log, n.From); err != nil {
				c.log.Error("fetch: message log", "log", n.Log, "err", err)
				c.catching = nil
				return
			}
		}
	}
	recs := resp.records
	if k := n.To - cu.next + 1; uint64(len(recs)) > k {
		recs = recs[:k]
	}
	if err := statemachine.PutFetched(msgs, n.Log, cu.next, recs); err != nil {
		c.log.Error("fetch: message log", "log", n.Log, "err", err)
		c.catching = nil
		return
	}
	cu.next += uint64(len(recs))
	if cu.next > n.To {
		cu.needs = cu.needs[1:]
		if len(cu.needs) == 0 {
			c.catching = nil
			// The restored snapshot is saved durably, and a restart
			// restores it again: the messages it needs must be durable
			// first.
			if err := msgs.Sync(); err != nil {
				c.log.Error("fetch: sync message log", "err", err)
				return
			}
			c.log.Info("snapshot's messages fetched", "index", cu.snap.GetSnapshot().GetMetadata().GetIndex())
			if err := c.rn.Step(cu.snap); err != nil {
				c.log.Debug("raft step", "err", err)
			}
			return
		}
		cu.next = cu.needs[0].From
	}
	c.requestFetch()
}

// catchUpPending is how many messages of the log being fetched are still
// to come (monitoring).
func (c *Core) catchUpPending() uint64 {
	if c.catching == nil {
		return 0
	}
	return c.catching.needs[0].To - c.catching.next + 1
}
