package statemachine

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// describeSubs renders the monitoring view of subscriptions, one a line.
func describeSubs(subs []SubInfo) string {
	var lines []string
	for _, si := range subs {
		lines = append(lines, fmt.Sprintf("%d %s client=%s inbox=%q ack=%q durable=%q queue=%q isDurable=%v offline=%v inflight=%d ackwait=%ds sent=%d pending=%d stalled=%v",
			si.ID, si.Channel, si.ClientID, si.Inbox, si.AckInbox, si.DurableName, si.QueueName, si.IsDurable, si.IsOffline,
			si.MaxInflight, si.AckWaitNanos/nanosPerSecond, si.LastSent, si.PendingCount, si.IsStalled))
	}
	return strings.Join(lines, "\n")
}

func TestQueries(t *testing.T) {
	h := newHarness()
	for _, line := range []string{
		"connect a", "connect b", "connect c",
		"sub b foo durable=d",
		"subclose b foo ack.1",
		"sub a foo inflight=2 ackwait=7 start=first",
		"sub c bar queue=g durable=dq",
		"sub c bar queue=q1",
		"sub a baz",
		"publish a foo m n=3",
		"publish a bar m n=2",
		"ack ack.3 bar 1",
	} {
		if out := h.run(t, line); strings.HasPrefix(out, "error") {
			t.Fatalf("%s: %s", line, out)
		}
	}
	before := h.s.SnapshotWithMessages()

	msgs, bytesTotal := h.s.Totals()
	if msgs != 5 || bytesTotal == 0 || h.s.NumClients() != 3 || h.s.NumChannels() != 3 || h.s.NumSubscriptions() != 5 {
		t.Errorf("totals: msgs %d bytes %d clients %d channels %d subs %d; want 5 >0 3 3 5",
			msgs, bytesTotal, h.s.NumClients(), h.s.NumChannels(), h.s.NumSubscriptions())
	}
	for _, tc := range []struct {
		name string
		got  []SubInfo
		want string
	}{
		{"channel foo", h.s.ChannelSubs("foo"), `1 foo client=b inbox="" ack="" durable="d" queue="" isDurable=true offline=true inflight=1024 ackwait=30s sent=0 pending=0 stalled=false
2 foo client=a inbox="in.a.2" ack="ack.2" durable="" queue="" isDurable=false offline=false inflight=2 ackwait=7s sent=2 pending=2 stalled=true`},
		{"channel bar", h.s.ChannelSubs("bar"), `3 bar client=c inbox="in.c.3" ack="ack.3" durable="dq" queue="dq:g" isDurable=true offline=false inflight=1024 ackwait=30s sent=2 pending=1 stalled=false
4 bar client=c inbox="in.c.4" ack="ack.4" durable="" queue="q1" isDurable=false offline=false inflight=1024 ackwait=30s sent=2 pending=2 stalled=false`},
		{"client a", h.s.ClientSubs("a"), `2 foo client=a inbox="in.a.2" ack="ack.2" durable="" queue="" isDurable=false offline=false inflight=2 ackwait=7s sent=2 pending=2 stalled=true
5 baz client=a inbox="in.a.5" ack="ack.5" durable="" queue="" isDurable=false offline=false inflight=1024 ackwait=30s sent=0 pending=0 stalled=false`},
		{"client b", h.s.ClientSubs("b"), ``},
		{"unknown client", h.s.ClientSubs("nobody"), ``},
		{"unknown channel", h.s.ChannelSubs("nope"), ``},
	} {
		if got := describeSubs(tc.got); got != tc.want {
			t.Errorf("%s:\n got: %s\nwant: %s", tc.name, got, tc.want)
		}
	}

	// Queries change nothing, and a restored replica answers the same.
	if !bytes.Equal(before, h.s.SnapshotWithMessages()) {
		t.Error("queries changed the state")
	}
	r := New(Config{Limits: DefaultLimits()})
	if err := r.Restore(before); err != nil {
		t.Fatal(err)
	}
	for _, name := range h.s.ChannelNames() {
		if got, want := describeSubs(r.ChannelSubs(name)), describeSubs(h.s.ChannelSubs(name)); got != want {
			t.Errorf("restored channel %s:\n got: %s\nwant: %s", name, got, want)
		}
	}

	// The last member of a durable queue group leaves a shadow: offline,
	// still counted.
	h.run(t, "close c")
	if got, want := describeSubs(h.s.ChannelSubs("bar")), `3 bar client=c inbox="" ack="" durable="dq" queue="dq:g" isDurable=true offline=true inflight=1024 ackwait=30s sent=2 pending=1 stalled=false`; got != want {
		t.Errorf("after close c:\n got: %s\nwant: %s", got, want)
	}
	if h.s.NumSubscriptions() != 4 {
		t.Errorf("subscriptions after close c: %d, want 4", h.s.NumSubscriptions())
	}
}
