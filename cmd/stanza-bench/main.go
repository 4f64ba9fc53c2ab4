// Command stanza-bench is a load generator for NATS Streaming servers, stanza
// or nats-streaming-server, built on the stock stan.go client. It takes
// stan-bench's flags and prints its report, and adds publish-to-ack and
// publish-to-delivery latency percentiles, a progress line on long runs and a
// replay mode.
//
//	stanza-bench [flags] <subject>
//
// Each publisher and subscriber has its own NATS connection. Subscribers
// start first (a queue subscription when -qgroup is set), then the
// publishers send -n messages between them, with PublishAsync (at most -mpa
// unacknowledged) or, with -sync, Publish.
//
// Latencies: publish-to-ack runs from the Publish/PublishAsync call to the
// ack (for async publishes it includes the wait for a free slot in the -mpa
// window); publish-to-delivery runs from the same instant, carried in the
// first 8 bytes of the payload (so only with -ms 8 or more), to the
// subscriber's callback. Client and server share this machine's clock.
//
// Replay (-replay): one subscriber asks for every stored message of the
// channel (DeliverAllAvailable) and reads -n of them; the rate is counted
// from the subscription request to the n-th message. Publish the messages
// first, e.g. with a plain run of this tool.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/bench"
	"github.com/nats-io/stan.go"
)

type config struct {
	urls, clusterID, clientID, queue, csvFile, jsonFile string
	numPubs, numSubs, numMsgs, msgSize, maxPubAcks      int
	sync, ignoreOld, replay                             bool
	progress, timeout                                   time.Duration
	creds, certDir, certFile, certKey, user, password   string
	subject                                             string
}

// Result is what -json writes: the aggregate rates and the latencies.
type Result struct {
	Subject    string  `json:"subject"`
	Msgs       int     `json:"msgs"`
	MsgSize    int     `json:"msg_size"`
	Pubs       int     `json:"pubs"`
	Subs       int     `json:"subs"`
	Sync       bool    `json:"sync"`
	Replay     bool    `json:"replay"`
	PubRate    int64   `json:"pub_rate"`
	SubRate    int64   `json:"sub_rate"`
	TotalRate  int64   `json:"total_rate"`
	Seconds    float64 `json:"seconds"`
	PubToAck   Summary `json:"pub_to_ack"`
	PubToDeliv Summary `json:"pub_to_delivery"`
}

func main() {
	var c config
	fs := flag.CommandLine
	fs.StringVar(&c.clusterID, "c", "test-cluster", "The NATS Streaming cluster ID")
	fs.StringVar(&c.clusterID, "cluster", "test-cluster", "The NATS Streaming cluster ID")
	fs.StringVar(&c.urls, "s", nats.DefaultURL, "The NATS server URLs (separated by comma)")
	fs.IntVar(&c.numPubs, "np", 10, "Number of concurrent publishers")
	fs.IntVar(&c.numSubs, "ns", 0, "Number of concurrent subscribers")
	fs.IntVar(&c.numMsgs, "n", 100000, "Number of messages to publish")
	fs.BoolVar(&c.sync, "sync", false, "Sync message publishing")
	fs.IntVar(&c.msgSize, "ms", 128, "Message size in bytes")
	fs.BoolVar(&c.ignoreOld, "io", false, "Subscribers ignore old messages")
	fs.IntVar(&c.maxPubAcks, "mpa", 512, "Max number of published acks in flight")
	fs.StringVar(&c.clientID, "id", "benchmark", "Benchmark process base client ID")
	fs.StringVar(&c.csvFile, "csv", "", "Save bench data to csv file")
	fs.StringVar(&c.queue, "qgroup", "", "Queue group name")
	fs.StringVar(&c.creds, "creds", "", "Credentials File")
	fs.StringVar(&c.certDir, "cd", "", "path to certs to load")
	fs.StringVar(&c.certFile, "cf", "", "certificate file")
	fs.StringVar(&c.certKey, "ck", "", "certificate key")
	fs.StringVar(&c.user, "u", "", "user id")
	fs.StringVar(&c.password, "pw", "", "password")
	// stanza-bench's own.
	fs.BoolVar(&c.replay, "replay", false, "Replay: one subscriber reads -n stored messages from the start of the channel; no publishers")
	fs.DurationVar(&c.progress, "progress", 2*time.Second, "Print a progress line to stderr this often (0 = never)")
	fs.DurationVar(&c.timeout, "timeout", 0, "Give up (exit 1) after this long (0 = never)")
	fs.StringVar(&c.jsonFile, "json", "", "Write the rates and latencies to this file as JSON")
	cpuProfile := fs.String("cpuprofile", "", "Write a CPU profile of this client to this file")
	ackOnly := fs.Bool("ack-server", false, "Run no benchmark: act as a STAN server on -s that acknowledges every publish at once and stores nothing (make bench's transport reference), until interrupted")
	embed := fs.String("embed", "", "With -ack-server: run a nats-server inside this process, listening for clients on this host:port, and serve on it instead of -s (as stanza and nats-streaming-server run theirs)")
	embedCluster := fs.String("embed-cluster", "", "With -embed: the route listen URL (nats://host:port) of the embedded nats-server")
	embedRoutes := fs.String("embed-routes", "", "With -embed: route URLs of the other nats-servers, separated by commas")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: stanza-bench [flags] <subject>\n")
		fs.PrintDefaults()
	}
	log.SetFlags(0)
	flag.Parse()
	if *ackOnly {
		url := c.urls
		if *embed != "" {
			e, err := startEmbedded(*embed, *embedCluster, *embedRoutes)
			if err != nil {
				log.Fatalf("stanza-bench: %v", err)
			}
			defer e.Shutdown()
			url = e.ClientURL()
		}
		if err := runAckServer(url, c.clusterID); err != nil {
			log.Fatalf("stanza-bench: %v", err)
		}
		return
	}
	if flag.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	c.subject = flag.Arg(0)
	if c.replay {
		c.numPubs = 0
		if c.numSubs == 0 {
			c.numSubs = 1
		}
		c.ignoreOld = false
	}
	if c.numPubs == 0 && c.numSubs == 0 {
		log.Fatal("stanza-bench: nothing to do: -np and -ns are both 0")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(c); err != nil {
		pprof.StopCPUProfile()
		log.Fatalf("stanza-bench: %v", err)
	}
}

// run holds the shared state of one benchmark.
type runner struct {
	config
	natsOpts  []nats.Option
	bm        *bench.Benchmark
	start     time.Time // the run's start: older timestamps are not ours
	ackHist   Histogram
	delivHist Histogram
	acked     atomic.Int64 // acknowledged publishes, for the progress line
	received  atomic.Int64 // delivered messages, all subscribers
	qReceived atomic.Int64 // delivered to the queue group
	qLeft     atomic.Int32
	errs      chan error
}

func run(c config) error {
	r := &runner{config: c, errs: make(chan error, 1)}
	r.natsOpts = []nats.Option{nats.Name("NATS Streaming Benchmark")}
	if c.creds != "" {
		r.natsOpts = append(r.natsOpts, nats.UserCredentials(c.creds))
	}
	if c.user != "" && c.password != "" {
		r.natsOpts = append(r.natsOpts, nats.UserInfo(c.user, c.password))
	}
	if strings.Contains(c.urls, "tls://") {
		switch {
		case c.certDir != "":
			files, _ := filepath.Glob(filepath.Join(c.certDir, "*.pem"))
			r.natsOpts = append(r.natsOpts, nats.RootCAs(files...))
		case c.certFile != "" && c.certKey != "":
			r.natsOpts = append(r.natsOpts, nats.ClientCert(c.certFile, c.certKey))
		default:
			return errors.New("tls:// needs -cd or -cf and -ck")
		}
	}
	r.bm = bench.NewBenchmark("NATS Streaming", c.numSubs, c.numPubs)
	r.qLeft.Store(int32(c.numSubs))
	r.start = time.Now()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()

	var ready, done sync.WaitGroup
	ready.Add(c.numSubs)
	done.Add(c.numSubs + c.numPubs)
	for i := 0; i < c.numSubs; i++ {
		go r.subscriber(&ready, &done, fmt.Sprintf("%s-sub-%d", c.clientID, i))
	}
	if err := r.wait(ctx, &ready); err != nil {
		return err
	}
	ready.Add(c.numPubs)
	counts := bench.MsgsPerClient(c.numMsgs, c.numPubs)
	for i := 0; i < c.numPubs; i++ {
		go r.publisher(&ready, &done, fmt.Sprintf("%s-pub-%d", c.clientID, i), counts[i])
	}
	if c.replay {
		log.Printf("Starting replay [msgs=%d, subs=%d]", c.numMsgs, c.numSubs)
	} else {
		log.Printf("Starting benchmark [msgs=%d, msgsize=%d, pubs=%d, subs=%d]", c.numMsgs, c.msgSize, c.numPubs, c.numSubs)
	}
	if c.progress > 0 {
		go r.showProgress(ctx)
	}
	if err := r.wait(ctx, &done); err != nil {
		return err
	}
	r.bm.Close()
	fmt.Print(r.bm.Report())
	if r.ackHist.Count() > 0 {
		fmt.Printf(" Publish-to-ack latency, %v\n", &r.ackHist)
	}
	if r.delivHist.Count() > 0 {
		fmt.Printf(" Publish-to-delivery latency, %v\n", &r.delivHist)
	}
	if c.csvFile != "" {
		if err := os.WriteFile(c.csvFile, []byte(r.bm.CSV()), 0o644); err != nil {
			return err
		}
		fmt.Printf("Saved metric data in csv file %s\n", c.csvFile)
	}
	if c.jsonFile != "" {
		return r.writeJSON()
	}
	return nil
}

// wait waits for wg, an error of a client, the timeout or an interrupt.
func (r *runner) wait(ctx context.Context, wg *sync.WaitGroup) error {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
		return nil
	case err := <-r.errs:
		return err
	case <-ctx.Done():
		return fmt.Errorf("stopped after %v with %d acked and %d received: %w",
			time.Since(r.start).Round(time.Millisecond), r.acked.Load(), r.received.Load(), context.Cause(ctx))
	}
}

// fail reports the first error of any client; run returns it.
func (r *runner) fail(err error) {
	select {
	case r.errs <- err:
	default:
	}
}

func (r *runner) connect(id string, opts ...stan.Option) (stan.Conn, error) {
	nc, err := nats.Connect(r.urls, r.natsOpts...)
	if err != nil {
		return nil, fmt.Errorf("%s can't connect: %w", id, err)
	}
	opts = append(opts, stan.NatsConn(nc), stan.SetConnectionLostHandler(func(_ stan.Conn, err error) {
		r.fail(fmt.Errorf("%s: connection lost: %w", id, err))
	}))
	sc, err := stan.Connect(r.clusterID, id, opts...)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s can't connect: %w", id, err)
	}
	return sc, nil
}

func (r *runner) publisher(ready, done *sync.WaitGroup, id string, n int) {
	sc, err := r.connect(id, stan.MaxPubAcksInflight(r.maxPubAcks))
	if err != nil {
		r.fail(err)
		return
	}
	nc := sc.NatsConn()
	defer nc.Close()
	defer sc.Close()
	ready.Done()

	msg := make([]byte, r.msgSize)
	stamp := r.msgSize >= 8
	start := time.Now()
	if r.sync {
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if stamp {
				binary.LittleEndian.PutUint64(msg, uint64(t0.UnixNano()))
			}
			if err := sc.Publish(r.subject, msg); err != nil {
				r.fail(fmt.Errorf("%s: publish: %w", id, err))
				return
			}
			r.ackHist.Record(time.Since(t0))
			r.acked.Add(1)
		}
	} else {
		allAcked := make(chan struct{})
		var pending atomic.Int64
		pending.Store(int64(n))
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if stamp {
				// PublishAsync marshals the payload before it returns, so
				// the buffer can be reused.
				binary.LittleEndian.PutUint64(msg, uint64(t0.UnixNano()))
			}
			_, err := sc.PublishAsync(r.subject, msg, func(_ string, err error) {
				if err != nil {
					r.fail(fmt.Errorf("%s: publish ack: %w", id, err))
					return
				}
				r.ackHist.Record(time.Since(t0))
				r.acked.Add(1)
				if pending.Add(-1) == 0 {
					close(allAcked)
				}
			})
			if err != nil {
				r.fail(fmt.Errorf("%s: publish: %w", id, err))
				return
			}
		}
		if n > 0 {
			<-allAcked
		}
	}
	r.bm.AddPubSample(bench.NewSample(n, r.msgSize, start, time.Now(), nc))
	done.Done()
}

func (r *runner) subscriber(ready, done *sync.WaitGroup, id string) {
	sc, err := r.connect(id)
	if err != nil {
		r.fail(err)
		return
	}
	nc := sc.NatsConn()
	defer nc.Close()
	defer sc.Close()

	isQueue := r.queue != ""
	first := make(chan time.Time, 1)
	last := make(chan time.Time, 1)
	received, signalled := 0, false
	cb := func(m *stan.Msg) {
		now := time.Now()
		received++
		r.received.Add(1)
		if received == 1 {
			first <- now
		}
		if len(m.Data) >= 8 {
			// Only our own publishes carry a timestamp of this run.
			if ts := int64(binary.LittleEndian.Uint64(m.Data)); ts >= r.start.UnixNano() && ts <= now.UnixNano() {
				r.delivHist.Record(now.Sub(time.Unix(0, ts)))
			}
		}
		var doneNow bool
		if isQueue {
			doneNow = r.qReceived.Add(1) >= int64(r.numMsgs)
		} else {
			doneNow = received >= r.numMsgs
		}
		if doneNow && !signalled {
			signalled = true
			last <- now
		}
	}
	var opts []stan.SubscriptionOption
	if !r.ignoreOld {
		opts = append(opts, stan.DeliverAllAvailable())
	}
	subStart := time.Now()
	sub, err := sc.QueueSubscribe(r.subject, r.queue, cb, opts...)
	if err != nil {
		r.fail(fmt.Errorf("%s can't subscribe: %w", id, err))
		return
	}
	ready.Done()

	start := <-first
	if r.replay {
		start = subStart
	}
	end := <-last
	r.bm.AddSubSample(bench.NewSample(received, r.msgSize, start, end, nc))
	// A queue member that is done wakes the others, as stan-bench does:
	// each of them waits for the group's total.
	if isQueue && r.qLeft.Add(-1) > 0 {
		_ = sub.Close()
		_ = sc.Publish(r.subject, []byte("done"))
	}
	done.Done()
}

func (r *runner) showProgress(ctx context.Context) {
	t := time.NewTicker(r.progress)
	defer t.Stop()
	var lastAcked, lastRecv int64
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a, rc := r.acked.Load(), r.received.Load()
			secs := now.Sub(last).Seconds()
			line := fmt.Sprintf("progress %5.1fs:", now.Sub(r.start).Seconds())
			if r.numPubs > 0 {
				line += fmt.Sprintf(" acked %d/%d (%.0f msgs/s)", a, r.numMsgs, float64(a-lastAcked)/secs)
			}
			if r.numSubs > 0 {
				line += fmt.Sprintf(" received %d (%.0f msgs/s)", rc, float64(rc-lastRecv)/secs)
			}
			fmt.Fprintln(os.Stderr, line)
			lastAcked, lastRecv, last = a, rc, now
		}
	}
}

func (r *runner) writeJSON() error {
	res := Result{
		Subject: r.subject, Msgs: r.numMsgs, MsgSize: r.msgSize, Pubs: r.numPubs, Subs: r.numSubs,
		Sync: r.sync, Replay: r.replay, Seconds: r.bm.Duration().Seconds(),
		PubToAck: r.ackHist.Summary(), PubToDeliv: r.delivHist.Summary(),
	}
	if r.bm.Pubs.HasSamples() {
		res.PubRate = r.bm.Pubs.Rate()
	}
	if r.bm.Subs.HasSamples() {
		res.SubRate = r.bm.Subs.Rate()
	}
	res.TotalRate = r.bm.Rate()
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(r.jsonFile, append(b, '\n'), 0o644)
}
