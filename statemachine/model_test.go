package statemachine

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stanza-io/stanza/statemachine/pb"
	"pgregory.net/rapid"
)

// model is a small, obviously correct reference of clients, channel logs and
// plain and durable subscriptions (no limits, no queues, no time): the state
// machine must decide exactly what it decides.
type model struct {
	clients map[string]bool
	logs    map[string][]string
	subs    []*modelSub // creation order, which is ID order
	nextID  uint64
}

type modelSub struct {
	id              uint64
	client, channel string
	durable         string
	ackInbox        string
	inflight        int
	lastSent        uint64
	pending         map[uint64]bool
	offline, gone   bool
}

func (m *model) online(channel string) []*modelSub {
	var out []*modelSub
	for _, s := range m.subs {
		if !s.gone && !s.offline && (channel == "" || s.channel == channel) {
			out = append(out, s)
		}
	}
	return out
}

// send delivers what the subscription has room for, as text lines.
func (m *model) send(s *modelSub, out *[]string) {
	log := m.logs[s.channel]
	for len(s.pending) < s.inflight && s.lastSent < uint64(len(log)) {
		s.lastSent++
		s.pending[s.lastSent] = true
		*out = append(*out, fmt.Sprintf("deliver %d %d %s", s.id, s.lastSent, log[s.lastSent-1]))
	}
}

func resultLines(r Result) []string {
	var out []string
	if r.Err != "" {
		out = append(out, "error "+r.Err)
	}
	for _, a := range r.PubAcks {
		out = append(out, fmt.Sprintf("puback %d %s", a.Seq, a.Err))
	}
	for _, d := range r.Deliveries {
		m := d.Message()
		l := fmt.Sprintf("deliver %d %d %s", d.SubID, m.Sequence, m.Data)
		if m.Redelivered {
			l += " redelivered"
		}
		out = append(out, l)
	}
	return out
}

func TestModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := New(Config{Limits: DefaultLimits()})
		m := &model{clients: map[string]bool{}, logs: map[string][]string{}, nextID: 1}
		nAck := 0
		client := rapid.SampledFrom([]string{"a", "b", "c"})
		channel := rapid.SampledFrom([]string{"foo", "bar"})
		check := func(what string, r Result, want []string) {
			if got := resultLines(r); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%s:\nstate machine:\n%s\nmodel:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if err := s.CheckInvariants(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		apply := func(op any) Result { return s.Apply(NewCommand(0, op)) }

		t.Repeat(map[string]func(*rapid.T){
			"connect": func(t *rapid.T) {
				c := client.Draw(t, "client")
				r := apply(&pb.Connect{Request: &pb.ConnectRequest{ClientID: c, HeartbeatInbox: "hb"}})
				var want []string
				if m.clients[c] {
					want = []string{"error " + ErrInvalidClient}
				}
				m.clients[c] = true
				check("connect "+c, r, want)
			},
			"close": func(t *rapid.T) {
				c := client.Draw(t, "client")
				r := apply(&pb.CloseClient{ClientID: c})
				var want []string
				if !m.clients[c] {
					want = []string{"error " + ErrUnknownClient}
				}
				delete(m.clients, c)
				for _, sb := range m.online("") {
					if sb.client == c {
						sb.offline = true
						sb.gone = sb.durable == ""
					}
				}
				check("close "+c, r, want)
			},
			"publish": func(t *rapid.T) {
				c, ch := client.Draw(t, "client"), channel.Draw(t, "channel")
				data := rapid.StringMatching(`[a-z]{1,3}`).Draw(t, "data")
				r := apply(&pb.Publish{Msgs: []*pb.PubMsg{{ClientID: c, Guid: "g", Subject: ch, Data: []byte(data)}}})
				if !m.clients[c] {
					check("publish", r, []string{"puback 0 " + ErrInvalidPubReq})
					return
				}
				m.logs[ch] = append(m.logs[ch], data)
				want := []string{fmt.Sprintf("puback %d ", len(m.logs[ch]))}
				for _, sb := range m.online(ch) {
					m.send(sb, &want)
				}
				check("publish", r, want)
			},
			"subscribe": func(t *rapid.T) {
				c, ch := client.Draw(t, "client"), channel.Draw(t, "channel")
				durable := rapid.SampledFrom([]string{"", "", "d"}).Draw(t, "durable")
				start := rapid.SampledFrom([]pb.StartPosition{pb.StartPosition_NewOnly, pb.StartPosition_LastReceived,
					pb.StartPosition_SequenceStart, pb.StartPosition_First}).Draw(t, "start")
				startSeq := rapid.Uint64Range(0, 8).Draw(t, "startSeq")
				inflight := rapid.IntRange(1, 3).Draw(t, "inflight")
				nAck++
				ack := fmt.Sprintf("ack.%d", nAck)
				r := apply(&pb.Subscribe{AckInbox: ack, Request: &pb.SubscriptionRequest{ClientID: c, Subject: ch, Inbox: "in." + ack,
					MaxInFlight: int32(inflight), AckWaitInSecs: 30, DurableName: durable, StartPosition: start, StartSequence: startSeq}})
				if !m.clients[c] {
					check("subscribe", r, []string{"error " + ErrUnknownClient})
					return
				}
				var want []string
				var found *modelSub
				for _, sb := range m.subs {
					if durable != "" && !sb.gone && sb.durable == durable && sb.client == c && sb.channel == ch {
						found = sb
					}
				}
				if found != nil && !found.offline {
					check("subscribe", r, []string{"error " + ErrDupDurable})
					return
				}
				if found != nil {
					found.offline, found.inflight, found.ackInbox = false, inflight, ack
					var seqs []uint64
					for q := range found.pending {
						seqs = append(seqs, q)
					}
					sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
					for _, q := range seqs {
						want = append(want, fmt.Sprintf("deliver %d %d %s redelivered", found.id, q, m.logs[ch][q-1]))
					}
					m.send(found, &want)
					check("resume", r, want)
					return
				}
				last := uint64(len(m.logs[ch]))
				sb := &modelSub{id: m.nextID, client: c, channel: ch, durable: durable, ackInbox: ack, inflight: inflight, pending: map[uint64]bool{}}
				m.nextID++
				switch start {
				case pb.StartPosition_NewOnly:
					sb.lastSent = last
				case pb.StartPosition_LastReceived:
					sb.lastSent = max(last, 1) - 1
				case pb.StartPosition_SequenceStart:
					sb.lastSent = min(max(startSeq, 1)-1, last)
				}
				m.subs = append(m.subs, sb)
				m.send(sb, &want)
				check("subscribe", r, want)
			},
			"ack": func(t *rapid.T) {
				subs := m.online("")
				if len(subs) == 0 {
					t.Skip("no subscription")
				}
				sb := rapid.SampledFrom(subs).Draw(t, "sub")
				seq := rapid.Uint64Range(0, uint64(len(m.logs[sb.channel]))+1).Draw(t, "seq")
				r := apply(&pb.Acks{Acks: []*pb.AckFrom{{AckInbox: sb.ackInbox, Ack: &pb.Ack{Subject: sb.channel, Sequence: seq}}}})
				delete(sb.pending, seq)
				var want []string
				m.send(sb, &want)
				check("ack", r, want)
			},
			"unsubscribe": func(t *rapid.T) {
				subs := m.online("")
				if len(subs) == 0 {
					t.Skip("no subscription")
				}
				sb := rapid.SampledFrom(subs).Draw(t, "sub")
				closeOnly := rapid.Bool().Draw(t, "closeOnly")
				r := apply(&pb.Unsubscribe{CloseOnly: closeOnly, Request: &pb.UnsubscribeRequest{ClientID: sb.client, Subject: sb.channel, Inbox: sb.ackInbox}})
				sb.offline = true
				sb.gone = !closeOnly || sb.durable == ""
				check("unsubscribe", r, nil)
			},
		})
	})
}
