package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A running three-node cluster takes a fourth, empty member through a
// node.add request, which catches up with every message; then one of the
// original members is removed with node.remove.
func TestMembershipAddAndRemove(t *testing.T) {
	ns := startSharedNATS(t)
	servers := map[string]*Server{}
	start := func(name string, join bool) {
		servers[name] = startReplica(t, ns, name, []string{"a", "b", "c"}, func(c *Config) {
			c.SnapshotEntries, c.TrailingEntries, c.Join, c.AllowMembershipChanges = 10, 2, join, true
		})
	}
	for _, n := range []string{"a", "b", "c"} {
		start(n, false)
	}
	sc := connect(t, &testServer{url: ns.ClientURL()}, "pub")
	for i := 0; i < 30; i++ {
		if err := sc.Publish("m", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	start("d", true)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subj := SubjectsFor("_STAN.discover", "test-cluster")
	request := func(subject, name string) {
		t.Helper()
		reply, err := nc.Request(subject, []byte(name), 5*time.Second)
		if err != nil || string(reply.Data) != "+OK" {
			t.Fatalf("%s %s: %v %q", subject, name, err, replyData(reply))
		}
	}
	request(subj.NodeAdd, "d")
	lastOf := func(name string) uint64 {
		var last uint64
		if err := servers[name].Do(func(c *Core) {
			if ch, ok := c.State().Channel("m"); ok {
				last = ch.Last
			}
		}); err != nil {
			t.Fatal(err)
		}
		return last
	}
	waitFor(t, "the new member to hold all 30 messages", func() bool { return lastOf("d") == 30 })

	// Remove a member that is not the leader; the cluster goes on with three.
	var leaving string
	for _, name := range []string{"a", "b", "c"} {
		var serving bool
		servers[name].Do(func(c *Core) { serving = c.Serving() })
		if !serving {
			leaving = name
			break
		}
	}
	request(subj.NodeRemove, leaving)
	servers[leaving].Shutdown()
	if err := sc.Publish("m", []byte("after")); err != nil {
		t.Fatalf("publish after removing %s: %v", leaving, err)
	}
	waitFor(t, "the new member to get the next message", func() bool { return lastOf("d") == 31 })

	// A bad name is refused with an error reply.
	reply, err := nc.Request(subj.NodeAdd, []byte("bad name"), 5*time.Second)
	if err != nil || len(reply.Data) < 4 || string(reply.Data[:4]) != "-ERR" {
		t.Fatalf("node.add with a bad name: %v %q", err, replyData(reply))
	}
}

func replyData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}
