package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/stanza-io/stanza/statemachine"
	"github.com/stanza-io/stanza/statemachine/pb"
	"github.com/stanza-io/stanza/transport"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ackServer speaks just enough of the STAN protocol for publishers: it
// answers connects, pings and closes, and acknowledges every publish at
// once. It stores nothing, replicates nothing and refuses subscriptions.
// make bench runs it on the same NATS servers, in the same places, as the
// real servers: what a publisher gets from it is what the transport carries
// for a server with nothing else to do.
type ackServer struct {
	nc     *nats.Conn
	prefix string // of the subjects it hands out
	subs   []*nats.Subscription
	buf    []byte // ack's PubAck
}

// startAckServer subscribes on nc for the cluster clusterID.
func startAckServer(nc *nats.Conn, clusterID string) (*ackServer, error) {
	a := &ackServer{nc: nc, prefix: "_STAN.ack-only." + nats.NewInbox()[len(nats.InboxPrefix):]}
	connected := &pb.ConnectResponse{PubPrefix: a.prefix + ".pub", SubRequests: a.prefix + ".sub",
		UnsubRequests: a.prefix + ".unsub", SubCloseRequests: a.prefix + ".subclose", CloseRequests: a.prefix + ".close",
		PingRequests: a.prefix + ".ping", PingInterval: 5, PingMaxOut: 3, Protocol: 1}
	answer := func(resp proto.Message) nats.MsgHandler {
		b, err := proto.Marshal(resp)
		if err != nil {
			panic(err)
		}
		return func(m *nats.Msg) {
			if m.Reply != "" {
				_ = nc.Publish(m.Reply, b)
			}
		}
	}
	for subject, handle := range map[string]nats.MsgHandler{
		"_STAN.discover." + clusterID: answer(connected),
		connected.PubPrefix + ".>":    a.ack,
		connected.PingRequests:        answer(&pb.PingResponse{}),
		connected.CloseRequests:       answer(&pb.CloseResponse{}),
		connected.SubRequests:         answer(&pb.SubscriptionResponse{Error: "stanza-bench: the ack-only server keeps no messages to subscribe to"}),
		connected.UnsubRequests:       answer(&pb.SubscriptionResponse{}),
		connected.SubCloseRequests:    answer(&pb.SubscriptionResponse{}),
	} {
		sub, err := nc.Subscribe(subject, handle)
		if err != nil {
			a.stop()
			return nil, fmt.Errorf("ack-only server: subscribe %s: %w", subject, err)
		}
		a.subs = append(a.subs, sub)
	}
	return a, nc.Flush()
}

// ack answers a publish with its PubAck; what does not decode is dropped
// (the publisher times out), as a real server would refuse it.
func (a *ackServer) ack(m *nats.Msg) {
	pm, err := statemachine.DecodePubMsg(m.Data)
	if err != nil || m.Reply == "" {
		return
	}
	// A PubAck with only its guid (field 1), encoded by hand into a buffer
	// reused from one publish to the next (nats.go copies what it sends;
	// one subscription's callbacks run one at a time): the acknowledging
	// costs as little as it can, so the reference is a low one.
	a.buf = protowire.AppendString(append(a.buf[:0], 1<<3|byte(protowire.BytesType)), pm.GetGuid())
	_ = a.nc.Publish(m.Reply, a.buf)
}

func (a *ackServer) stop() {
	for _, s := range a.subs {
		_ = s.Unsubscribe()
	}
}

// runAckServer runs an ack-only server on the NATS server at url until
// SIGINT or SIGTERM.
func runAckServer(url, clusterID string) error {
	nc, err := nats.Connect(url, nats.Name("stanza-bench ack-only server"))
	if err != nil {
		return err
	}
	defer nc.Close()
	a, err := startAckServer(nc, clusterID)
	if err != nil {
		return err
	}
	defer a.stop()
	fmt.Fprintf(os.Stderr, "ack-only server for cluster %q on %s\n", clusterID, url)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// startEmbedded starts the nats-server an -embed ack-only server runs in its
// own process: clients on hostPort, routes as a cluster node when
// clusterURL is set.
func startEmbedded(hostPort, clusterURL, routes string) (*transport.Embedded, error) {
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, fmt.Errorf("-embed %q: want host:port", hostPort)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("-embed %q: port: %v", hostPort, err)
	}
	o := transport.EmbeddedOptions{Host: host, Port: port, ClusterListen: clusterURL}
	if routes != "" {
		o.Routes = strings.Split(routes, ",")
	}
	return transport.StartEmbedded(o)
}
