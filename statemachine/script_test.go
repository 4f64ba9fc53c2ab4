package statemachine

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stanza-io/stanza/statemachine/pb"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/*.txt scripts")

// TestScripts runs the scripts in testdata: each case is a command line, a
// "----" line, and the canonical text of what the state machine decided,
// ending at a blank line. Run with -rewrite to regenerate the expected text
// (then review the diff).
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) { runScript(t, file) })
	}
}

type scriptCase struct {
	line, cmd, want string
}

func parseScript(t *testing.T, data string) (cases []scriptCase, header string) {
	lines := strings.Split(data, "\n")
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		c := scriptCase{line: strings.Join(pre, "\n"), cmd: l}
		pre = nil
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("line %d: want ---- after %q", i+1, l)
		}
		var out []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		c.want = strings.Join(out, "\n")
		cases = append(cases, c)
	}
	return cases, strings.Join(pre, "\n")
}

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cases, trailer := parseScript(t, string(data))
	h := newHarness()
	var b strings.Builder
	for _, c := range cases {
		got := h.run(t, c.cmd)
		if err := h.s.CheckInvariants(); err != nil {
			t.Fatalf("%s: after %q: invariant broken: %v", file, c.cmd, err)
		}
		if !*rewrite && got != c.want {
			t.Errorf("%s: %s\ngot:\n%s\nwant:\n%s", file, c.cmd, got, c.want)
		}
		if c.line != "" {
			b.WriteString(strings.TrimLeft(c.line, "\n") + "\n")
		}
		fmt.Fprintf(&b, "%s\n----\n%s\n\n", c.cmd, got)
	}
	if trailer != "" {
		b.WriteString(trailer)
	}
	// Every script ends with a snapshot round trip.
	r := New(h.s.cfg)
	if err := r.Restore(h.s.SnapshotWithMessages()); err != nil {
		t.Fatalf("%s: restore: %v", file, err)
	}
	if string(r.SnapshotWithMessages()) != string(h.s.SnapshotWithMessages()) {
		t.Fatalf("%s: snapshot changed across restore", file)
	}
	if *rewrite {
		out := strings.TrimRight(b.String(), "\n") + "\n"
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type harness struct {
	s      *State
	nowSec int64
	nAck   int
}

func newHarness() *harness {
	return &harness{s: New(Config{Limits: DefaultLimits()})}
}

// args parses "key=value" and bare words.
func args(fields []string) (pos []string, kv map[string]string) {
	kv = map[string]string{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, f)
		}
	}
	return pos, kv
}

func num(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}

func (h *harness) apply(op any) Result {
	return h.applyCommand(NewCommand(h.nowSec*nanosPerSecond, op))
}

func (h *harness) applyCommand(cmd *pb.Command) Result {
	// Every command goes through the wire encoding, as it does through raft.
	dec, err := DecodeCommand(EncodeCommand(cmd))
	if err != nil {
		panic(err)
	}
	return h.s.Apply(dec)
}

func (h *harness) run(t *testing.T, line string) string {
	fields := strings.Fields(line)
	pos, kv := args(fields[1:])
	need := func(n int) {
		if len(pos) < n {
			t.Fatalf("%q: want %d arguments", line, n)
		}
	}
	switch fields[0] {
	case "clock":
		need(1)
		h.nowSec = num(t, pos[0])
		return "ok"
	case "limits":
		l := h.s.cfg.Limits
		set := func(cl *ChannelLimits, k, v string) {
			switch k {
			case "subs":
				cl.MaxSubscriptions = int(num(t, v))
			case "msgs":
				cl.MaxMsgs = int(num(t, v))
			case "bytes":
				cl.MaxBytes = num(t, v)
			case "age":
				cl.MaxAgeNanos = num(t, v) * nanosPerSecond
			case "inactivity":
				cl.MaxInactivityNanos = num(t, v) * nanosPerSecond
			case "channels":
				l.MaxChannels = int(num(t, v))
			default:
				t.Fatalf("%q: unknown limit %q", line, k)
			}
		}
		if len(pos) == 1 { // per-channel: limits <pattern> k=v...
			if l.PerChannel == nil {
				l.PerChannel = map[string]ChannelLimits{}
			}
			cl := l.PerChannel[pos[0]]
			for _, k := range sortedKeys(kv) {
				set(&cl, k, kv[k])
			}
			l.PerChannel[pos[0]] = cl
		} else {
			for _, k := range sortedKeys(kv) {
				set(&l.ChannelLimits, k, kv[k])
			}
		}
		if err := l.Validate(); err != nil {
			return "error: " + err.Error()
		}
		h.s.cfg.Limits = l
		return "ok"
	case "connect":
		need(1)
		req := &pb.ConnectRequest{ClientID: pos[0], HeartbeatInbox: "hb." + pos[0], Protocol: 1, ConnID: []byte("conn-" + pos[0])}
		if v, ok := kv["hb"]; ok {
			req.HeartbeatInbox = v
		}
		if v, ok := kv["conn"]; ok {
			req.ConnID = []byte(v)
		}
		return render(h.apply(&pb.Connect{Request: req, Replace: kv["replace"] == "true"}))
	case "close":
		need(1)
		return render(h.apply(&pb.CloseClient{ClientID: pos[0]}))
	case "health":
		need(2)
		return render(h.apply(&pb.ClientHealth{ClientID: pos[0], Failed: pos[1] == "failed"}))
	case "publish":
		need(3)
		msg := &pb.PubMsg{ClientID: pos[0], Guid: "g", Subject: pos[1], Data: []byte(pos[2]), ConnID: []byte("conn-" + pos[0])}
		if v, ok := kv["conn"]; ok {
			msg.ConnID = []byte(v)
		}
		if v, ok := kv["guid"]; ok {
			msg.Guid = v
		}
		n := 1
		if v, ok := kv["n"]; ok {
			n = int(num(t, v))
		}
		batch := &pb.Publish{}
		for i := 0; i < n; i++ {
			m := &pb.PubMsg{ClientID: msg.ClientID, Guid: msg.Guid, Subject: msg.Subject, Data: msg.Data, ConnID: msg.ConnID}
			if n > 1 {
				m.Data = []byte(fmt.Sprintf("%s%d", pos[2], i+1))
			}
			batch.Msgs = append(batch.Msgs, m)
		}
		return render(h.apply(batch))
	case "sub":
		need(2)
		h.nAck++
		req := &pb.SubscriptionRequest{ClientID: pos[0], Subject: pos[1], Inbox: fmt.Sprintf("in.%s.%d", pos[0], h.nAck),
			MaxInFlight: 1024, AckWaitInSecs: 30, DurableName: kv["durable"], QGroup: kv["queue"]}
		ack := fmt.Sprintf("ack.%d", h.nAck)
		for k, v := range kv {
			switch k {
			case "inbox":
				req.Inbox = v
			case "ack":
				ack = v
			case "inflight":
				req.MaxInFlight = int32(num(t, v))
			case "ackwait":
				req.AckWaitInSecs = int32(num(t, v))
			case "start":
				kind, arg, _ := strings.Cut(v, ":")
				switch kind {
				case "new":
					req.StartPosition = pb.StartPosition_NewOnly
				case "last":
					req.StartPosition = pb.StartPosition_LastReceived
				case "first":
					req.StartPosition = pb.StartPosition_First
				case "seq":
					req.StartPosition, req.StartSequence = pb.StartPosition_SequenceStart, uint64(num(t, arg))
				case "delta":
					req.StartPosition, req.StartTimeDelta = pb.StartPosition_TimeDeltaStart, num(t, arg)*nanosPerSecond
				case "raw":
					req.StartPosition = pb.StartPosition(num(t, arg))
				default:
					t.Fatalf("%q: bad start %q", line, v)
				}
			}
		}
		cmd := NewCommand(h.nowSec*nanosPerSecond, &pb.Subscribe{Request: req, AckInbox: ack})
		cmd.ReplaceDurable = kv["replace"] == "true"
		return render(h.applyCommand(cmd))
	case "unsub", "subclose":
		need(3)
		return render(h.apply(&pb.Unsubscribe{Request: &pb.UnsubscribeRequest{ClientID: pos[0], Subject: pos[1], Inbox: pos[2]}, CloseOnly: fields[0] == "subclose"}))
	case "ack":
		need(3) // ack <ackInbox> <channel> <seq>...
		acks := &pb.Acks{}
		for _, q := range pos[2:] {
			acks.Acks = append(acks.Acks, &pb.AckFrom{AckInbox: pos[0], Ack: &pb.Ack{Subject: pos[1], Sequence: uint64(num(t, q))}})
		}
		return render(h.apply(acks))
	case "due":
		// Apply everything time made due, as the leader would.
		var b strings.Builder
		cmds := h.s.Due(h.nowSec * nanosPerSecond)
		if len(cmds) == 0 {
			return "nothing due"
		}
		for i, c := range cmds {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "%s\n%s", describe(c), render(h.s.Apply(c)))
		}
		return b.String()
	case "state":
		return h.dump()
	}
	t.Fatalf("unknown command %q", line)
	return ""
}

func describe(c *pb.Command) string {
	switch op := c.Op.(type) {
	case *pb.Command_Redeliver:
		return fmt.Sprintf("> redeliver sub=%d", op.Redeliver.SubID)
	case *pb.Command_Expire:
		return "> expire " + op.Expire.Channel
	case *pb.Command_DeleteChannel:
		return "> delete " + op.DeleteChannel.Channel
	}
	return fmt.Sprintf("> %T", c.Op)
}

func render(r Result) string {
	var lines []string
	if r.Err != "" {
		lines = append(lines, "error: "+r.Err)
	} else if r.PubAcks == nil {
		if r.AckInbox != "" {
			lines = append(lines, "ok ack="+r.AckInbox)
		} else {
			lines = append(lines, "ok")
		}
	}
	for _, a := range r.PubAcks {
		if a.Err != "" {
			lines = append(lines, fmt.Sprintf("puback guid=%s error: %s", a.Guid, a.Err))
		} else {
			lines = append(lines, fmt.Sprintf("puback guid=%s seq=%d", a.Guid, a.Seq))
		}
	}
	for _, c := range r.Closed {
		lines = append(lines, "closed "+c)
	}
	for _, d := range r.Deliveries {
		m := d.Message()
		l := fmt.Sprintf("deliver sub=%d %s seq=%d %q t=%d", d.SubID, d.Inbox, m.Sequence, m.Data, m.Timestamp/nanosPerSecond)
		if m.Redelivered {
			l += fmt.Sprintf(" redelivered=%d", m.RedeliveryCount)
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func (h *harness) dump() string {
	var lines []string
	for _, c := range h.s.Clients() {
		l := "client " + c.ID
		if c.FailedHB {
			l += " failed-hb"
		}
		lines = append(lines, l)
	}
	for _, name := range h.s.ChannelNames() {
		ch := h.s.channels[name]
		lines = append(lines, fmt.Sprintf("channel %s first=%d last=%d msgs=%d bytes=%d", name, ch.first, ch.last, ch.count(), ch.bytes))
		for _, sb := range sortedSubs(ch.subs) {
			l := fmt.Sprintf("  sub=%d client=%s", sb.id, sb.clientID)
			if sb.durableName != "" {
				l += " durable=" + sb.durableName
			}
			sent := sb.lastSent
			if sb.group != nil {
				l += " queue=" + sb.group.name
				sent = sb.group.lastSent
				if sb.group.shadow == sb {
					l += " shadow"
				}
			}
			if sb.offline {
				l += " offline"
			}
			l += fmt.Sprintf(" lastSent=%d pending=%v", sent, sb.sortedPending())
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "empty"
	}
	return strings.Join(lines, "\n")
}
