// Command compare runs the same workloads against stanza and
// nats-streaming-server v0.25.6 on loopback and prints one table with both
// and the ratio stanza/STAN (make bench).
//
// It builds stanza, stanza-bench and nats-streaming-server (in a temporary
// module, so it never becomes a dependency of ours) into a temporary
// directory. Then, for each round and each configuration, it starts one
// server (fresh data directory), runs every workload with stanza-bench, stops
// it, and does the same with the other server; the order of the two servers
// flips from one round to the next. The table shows medians over the rounds.
//
// With -ack-only (the default), each round also runs the publish workloads
// against stanza-bench's ack-only server, in the same places (the
// acknowledging process on node a with that node's nats-server inside it,
// plain nats-servers as b and c, the clients on b): what the same NATS
// servers carry for a server that has nothing to do but acknowledge.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/stan.go"
)

const nssModule = "github.com/nats-io/nats-streaming-server@v0.25.6"

// A setup is one server configuration: how to start each node of each server.
type setup struct {
	name, title string
	nodes       int
	stan        func(dir string, i int) []string // node i's flags
	stanza      func(dir string, i int) []string
	n           map[string]int // messages per workload, chosen for a few seconds a run
}

// A workload is one stanza-bench run; its rate is the publishers' (pub) or
// the subscriber's (sub).
type workload struct {
	key, label string
	args       []string
	metric     string
}

var workloads = []workload{
	{"async128", "async pub 128 B", []string{"-np", "1", "-ms", "128"}, "pub"},
	{"async1k", "async pub 1 KiB", []string{"-np", "1", "-ms", "1024"}, "pub"},
	{"sync1", "sync pub 128 B, 1 pub", []string{"-np", "1", "-ms", "128", "-sync"}, "pub"},
	{"sync4", "sync pub 128 B, 4 pubs", []string{"-np", "4", "-ms", "128", "-sync"}, "pub"},
	{"pubsub", "async pub 128 B + 1 sub", []string{"-np", "1", "-ns", "1", "-ms", "128"}, "sub"},
	{"replay", "replay to a new sub", []string{"-replay"}, "sub"},
}

const (
	clientPort = 24222 // node i listens on clientPort+i
	routePort  = 26222
	ids        = "abc"
)

func listen(i int) []string {
	return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(clientPort + i)}
}

func routeURL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", routePort+i) }

// clusterArgs are the flags both servers share in a three-node cluster.
func clusterArgs(i int, peers, routes []string) []string {
	return append(listen(i), "--clustered", "--cluster_node_id", ids[i:i+1], "--cluster_peers", strings.Join(peers, ","),
		"--cluster", routeURL(i), "--routes", strings.Join(routes, ","))
}

// stanCluster starts nats-streaming-server node i; its --cluster_peers and
// --routes name the other nodes.
func stanCluster(sync bool) func(string, int) []string {
	return func(dir string, i int) []string {
		var peers, routes []string
		for j := range 3 {
			if j != i {
				peers, routes = append(peers, ids[j:j+1]), append(routes, routeURL(j))
			}
		}
		a := append(clusterArgs(i, peers, routes), "-st", "FILE", "--dir", filepath.Join(dir, "store"),
			"--cluster_log_path", filepath.Join(dir, "raft"))
		if sync {
			a = append(a, "--cluster_sync")
		}
		return a
	}
}

// stanzaCluster starts stanza node i; it fsyncs unless told otherwise.
func stanzaCluster(dir string, i int) []string {
	return append(clusterArgs(i, []string{"a", "b", "c"}, []string{routeURL(0), routeURL(1), routeURL(2)}),
		"-st", "FILE", "--dir", dir)
}

// natsArgs start plain nats-server node i of nodes, routed like the
// servers' embedded ones: the ack-only server runs on them.
func natsArgs(nodes, i int) []string {
	if nodes == 1 {
		return listen(i)
	}
	return append(listen(i), "--cluster", routeURL(i), "--routes", strings.Join([]string{routeURL(0), routeURL(1), routeURL(2)}, ","))
}

// ackArgs start the ack-only server as node a of nodes, its nats-server
// embedded and routed like the servers' node a.
func ackArgs(nodes int) []string {
	a := []string{"-ack-server", "-embed", fmt.Sprintf("127.0.0.1:%d", clientPort)}
	if nodes > 1 {
		a = append(a, "-embed-cluster", routeURL(0), "-embed-routes", strings.Join([]string{routeURL(1), routeURL(2)}, ","))
	}
	return a
}

var setups = []setup{
	{
		name: "memory", title: "memory, 1 node", nodes: 1,
		stan:   func(_ string, i int) []string { return append(listen(i), "-st", "MEMORY") },
		stanza: func(_ string, i int) []string { return append(listen(i), "-st", "MEMORY") },
		n:      map[string]int{"async128": 500000, "async1k": 300000, "sync1": 15000, "sync4": 40000, "pubsub": 300000},
	},
	{
		name: "file", title: "file + fsync, 1 node", nodes: 1,
		// STAN's file store syncs on flush by default; stanza always fsyncs.
		stan:   func(dir string, i int) []string { return append(listen(i), "-st", "FILE", "--dir", dir) },
		stanza: func(dir string, i int) []string { return append(listen(i), "-st", "FILE", "--dir", dir) },
		n:      map[string]int{"async128": 300000, "async1k": 200000, "sync1": 3000, "sync4": 8000, "pubsub": 200000},
	},
	{
		name: "cluster-sync", title: "3 nodes + fsync (STAN --cluster_sync)", nodes: 3,
		stan: stanCluster(true), stanza: stanzaCluster,
		n: map[string]int{"async128": 100000, "async1k": 60000, "sync1": 600, "sync4": 2000, "pubsub": 80000},
	},
	{
		name: "cluster-default", title: "3 nodes, defaults (STAN no fsync, stanza fsync)", nodes: 3,
		stan: stanCluster(false), stanza: stanzaCluster,
		n: map[string]int{"async128": 150000, "async1k": 100000, "sync1": 2500, "sync4": 6000, "pubsub": 120000},
	},
}

// sample is one run's figures.
type sample struct {
	Rate  float64 `json:"rate"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	// CPUus is the CPU time (user and system) all the server's processes
	// spent during the workload, per message: unlike a rate, it hardly
	// moves when other tenants load the machine.
	CPUus float64 `json:"cpu_us_per_msg"`
	// ClientCPUus is the same for the stanza-bench process (publishers and
	// subscribers): the stock stan.go client's share of the work.
	ClientCPUus float64 `json:"client_cpu_us_per_msg"`
}

// totalCPU is what the whole run cost the machine per message.
func (s sample) totalCPU() float64 { return s.CPUus + s.ClientCPUus }

// results[setup][workload][server] are the samples of every round; rss the
// peak resident memory (MiB, largest node) of each server start.
type results struct {
	Samples map[string]map[string]map[string][]sample `json:"samples"`
	RSS     map[string]map[string][]float64           `json:"rss_mib"`
	Errors  []string                                  `json:"errors,omitempty"`
}

type driver struct {
	tmp, out string
	bins     map[string]string // server name or "bench" -> binary
	mu       sync.Mutex        // guards procs: the signal handler stops them too
	procs    []*exec.Cmd
	scale    float64
	replay   int
	ackOnly  bool
	res      results
}

func main() {
	rounds := flag.Int("rounds", 3, "Rounds: each runs every workload once per server and configuration")
	replay := flag.Int("replay", 200000, "Messages stored and then replayed to a new subscriber (the issue asks for 1000000)")
	scale := flag.Float64("scale", 1, "Multiply every other message count by this")
	configs := flag.String("configs", "memory,file,cluster-sync,cluster-default", "Configurations to run, comma separated")
	out := flag.String("out", "", "Directory for the table, raw results, logs and plot (default: a new temporary one)")
	nss := flag.String("nss", "", "Use this nats-streaming-server binary instead of building v0.25.6")
	stanza := flag.String("stanza", "", "Use this stanza binary instead of building ./cmd/stanza")
	ackOnly := flag.Bool("ack-only", true, "Also run the publish workloads against stanza-bench's ack-only server, placed like the leader, with that node's nats-server embedded")
	flag.Parse()
	log.SetFlags(log.Ltime)

	var chosen []setup
	for _, name := range strings.Split(*configs, ",") {
		i := slices.IndexFunc(setups, func(s setup) bool { return s.name == name })
		if i < 0 {
			log.Fatalf("unknown configuration %q", name)
		}
		chosen = append(chosen, setups[i])
	}
	d := &driver{scale: *scale, replay: *replay, bins: map[string]string{}, ackOnly: *ackOnly}
	d.res.Samples = map[string]map[string]map[string][]sample{}
	d.res.RSS = map[string]map[string][]float64{}
	var err error
	if d.tmp, err = os.MkdirTemp("", "stanza-bench-"); err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(d.tmp)
	d.out = *out
	if d.out == "" {
		d.out = filepath.Join(os.TempDir(), "stanza-bench-results-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(filepath.Join(d.out, "logs"), 0o755); err != nil {
		log.Fatal(err)
	}
	// Stop the servers on ^C too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		d.stopAll()
		os.RemoveAll(d.tmp)
		os.Exit(1)
	}()

	if err := d.build(*nss, *stanza); err != nil {
		os.RemoveAll(d.tmp)
		log.Fatal(err)
	}
	start := time.Now()
	for r := range *rounds {
		for ci, s := range chosen {
			order := []string{"stan", "stanza"}
			if (r+ci)%2 == 1 {
				order = []string{"stanza", "stan"}
			}
			if *ackOnly {
				order = append(order, "ackonly")
			}
			for _, srv := range order {
				d.runSetup(r, s, srv)
			}
		}
		log.Printf("round %d done after %v", r+1, time.Since(start).Round(time.Second))
	}
	table := d.table(chosen, *rounds)
	fmt.Print("\n" + table)
	d.save(chosen, table)
}

// build puts the three binaries into the temporary directory.
func (d *driver) build(nss, stanza string) error {
	run := func(dir string, args ...string) error {
		log.Printf("%s", strings.Join(args, " "))
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(), "GOWORK=off")
		return cmd.Run()
	}
	d.bins["stanza"] = filepath.Join(d.tmp, "stanza")
	d.bins["bench"] = filepath.Join(d.tmp, "stanza-bench")
	if stanza != "" {
		d.bins["stanza"] = stanza
	} else if err := run("", "go", "build", "-o", d.bins["stanza"], "./cmd/stanza"); err != nil {
		return err
	}
	if err := run("", "go", "build", "-o", d.bins["bench"], "./cmd/stanza-bench"); err != nil {
		return err
	}
	if d.ackOnly {
		// The nats-server stanza embeds, from our own go.mod.
		d.bins["ackonly"] = filepath.Join(d.tmp, "nats-server")
		if err := run("", "go", "build", "-o", d.bins["ackonly"], "github.com/nats-io/nats-server/v2"); err != nil {
			return err
		}
	}
	if nss != "" {
		d.bins["stan"] = nss
		return nil
	}
	mod := filepath.Join(d.tmp, "nssmod")
	d.bins["stan"] = filepath.Join(d.tmp, "nats-streaming-server")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"go", "mod", "init", "tmp"},
		{"go", "get", nssModule},
		{"go", "build", "-o", d.bins["stan"], "github.com/nats-io/nats-streaming-server"},
	} {
		if err := run(mod, args...); err != nil {
			return fmt.Errorf("building nats-streaming-server: %v", err)
		}
	}
	return nil
}

// runSetup starts server srv in configuration s, runs every workload and
// stops it.
func (d *driver) runSetup(round int, s setup, srv string) {
	tag := fmt.Sprintf("r%d-%s-%s", round+1, s.name, srv)
	load, _ := os.ReadFile("/proc/loadavg") // others' load makes numbers noisy
	log.Printf("%s: starting %d node(s); load average %s", tag, s.nodes, strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	dir := filepath.Join(d.tmp, tag)
	defer os.RemoveAll(dir)
	defer d.stopAll()
	for i := range s.nodes {
		ndir := filepath.Join(dir, ids[i:i+1])
		var args []string
		switch srv {
		case "stan":
			args = s.stan(ndir, i)
		case "stanza":
			args = s.stanza(ndir, i)
		case "ackonly":
			args = natsArgs(s.nodes, i)
		}
		bin := srv
		if srv == "ackonly" && i == 0 {
			// The acknowledging process sits on node a, like a leader,
			// and runs that node's nats-server inside itself, as both
			// servers do; the clients go to b.
			bin, args = "bench", ackArgs(s.nodes)
		}
		if err := d.start(bin, filepath.Join(d.out, "logs", fmt.Sprintf("%s-%c.log", tag, ids[i])), args); err != nil {
			d.fail(tag, err)
			return
		}
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", clientPort)
	if srv == "ackonly" {
		url = fmt.Sprintf("nats://127.0.0.1:%d", clientPort+(1%s.nodes))
	}
	if err := waitReady(url, 60*time.Second); err != nil {
		d.fail(tag, err)
		return
	}
	if s.nodes > 1 && srv != "ackonly" {
		// Where the client sits against the leader changes every figure
		// (a client on a follower's NATS server reaches the leader over
		// routes, both ways): the clients connect to a follower, whichever
		// node the election chose, for both servers alike.
		leader, err := d.findLeader(tag, s.nodes, 30*time.Second)
		if err != nil {
			d.fail(tag, err)
			return
		}
		client := (leader + 1) % s.nodes
		url = fmt.Sprintf("nats://127.0.0.1:%d", clientPort+client)
		if err := waitReady(url, 60*time.Second); err != nil {
			d.fail(tag, err)
			return
		}
		log.Printf("%s: leader %c, clients on %c", tag, ids[leader], ids[client])
	}
	for _, w := range workloads {
		if srv == "ackonly" && w.metric != "pub" {
			continue // it keeps nothing to deliver
		}
		n := d.replay
		if w.key != "replay" {
			n = int(float64(s.n[w.key]) * d.scale)
		} else {
			// Store the messages first, with one async publisher.
			pre := []string{"-np", "1", "-ms", "128", "-n", strconv.Itoa(n)}
			if _, _, err := d.bench(tag+"-preload", url, "replay", pre); err != nil {
				d.fail(tag+" preload", err)
				continue
			}
		}
		args := append(slices.Clone(w.args), "-n", strconv.Itoa(n))
		cpu0 := d.serverCPU()
		r, clientSeconds, err := d.bench(tag+"-"+w.key, url, w.key, args)
		cpuSeconds := d.serverCPU() - cpu0
		if err != nil {
			d.fail(tag+" "+w.key, err)
			continue
		}
		smp := sample{Rate: float64(r.PubRate), P50us: r.PubToAck.Micro["p50"], P99us: r.PubToAck.Micro["p99"]}
		if w.metric == "sub" {
			smp = sample{Rate: float64(r.SubRate), P50us: r.PubToDeliv.Micro["p50"], P99us: r.PubToDeliv.Micro["p99"]}
		}
		smp.CPUus = cpuSeconds * 1e6 / float64(n)
		smp.ClientCPUus = clientSeconds * 1e6 / float64(n)
		log.Printf("%s %-8s %9.0f msgs/s  p50 %8.0fµs  p99 %8.0fµs  cpu %5.1fµs/msg (client %4.1f)", tag, w.key, smp.Rate, smp.P50us, smp.P99us, smp.CPUus, smp.ClientCPUus)
		m := d.res.Samples[s.name]
		if m == nil {
			m = map[string]map[string][]sample{}
			d.res.Samples[s.name] = m
		}
		if m[w.key] == nil {
			m[w.key] = map[string][]sample{}
		}
		m[w.key][srv] = append(m[w.key][srv], smp)
	}
	var rss float64
	d.mu.Lock()
	for _, p := range d.procs {
		rss = max(rss, peakRSS(p.Process.Pid))
	}
	d.mu.Unlock()
	if d.res.RSS[s.name] == nil {
		d.res.RSS[s.name] = map[string][]float64{}
	}
	d.res.RSS[s.name][srv] = append(d.res.RSS[s.name][srv], rss)
}

func (d *driver) fail(what string, err error) {
	log.Printf("FAILED %s: %v", what, err)
	d.res.Errors = append(d.res.Errors, fmt.Sprintf("%s: %v", what, err))
}

func (d *driver) start(srv, logFile string, args []string) error {
	f, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(d.bins[srv], args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return err
	}
	d.mu.Lock()
	d.procs = append(d.procs, cmd)
	d.mu.Unlock()
	return nil
}

// stopAll interrupts every server it started, then kills those that are
// still there after 15 seconds.
func (d *driver) stopAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.procs {
		_ = p.Process.Signal(os.Interrupt)
	}
	for _, p := range d.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	d.procs = nil
}

// waitReady connects a streaming client until the server (the cluster's
// leader, for a cluster) answers.
func waitReady(url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		sc, err := stan.Connect("test-cluster", "bench-ready", stan.NatsURL(url), stan.ConnectWait(time.Second))
		if err == nil {
			return sc.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leaderLine is in what both servers log when a node becomes the leader
// ("became leader", "STREAM: server became leader").
const leaderLine = "became leader"

// findLeader reads the nodes' logs for the last node that became the
// leader.
func (d *driver) findLeader(tag string, nodes int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		leader, at := -1, ""
		for i := range nodes {
			data, _ := os.ReadFile(filepath.Join(d.out, "logs", fmt.Sprintf("%s-%c.log", tag, ids[i])))
			// Log lines start with a time of day: the latest wins.
			if j := strings.LastIndex(string(data), leaderLine); j >= 0 {
				start := strings.LastIndex(string(data[:j]), "\n") + 1
				if t := lineTime(string(data[start:j])); leader < 0 || t > at {
					leader, at = i, t
				}
			}
		}
		if leader >= 0 {
			return leader, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no node logged that it became the leader within %v", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lineTime is the time of day a log line starts with, as text: STAN
// writes "15:04:05.000000", stanza "T15:04:05.000Z", both zero-padded and
// of a fixed width, so the text sorts as the time does. "" if none.
func lineTime(line string) string {
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	for i := 0; i+8 <= len(line); i++ {
		t := line[i : i+8]
		if digit(t[0]) && digit(t[1]) && t[2] == ':' && digit(t[3]) && digit(t[4]) && t[5] == ':' && digit(t[6]) && digit(t[7]) {
			j := i + 8
			for j < len(line) && (line[j] == '.' || digit(line[j])) {
				j++
			}
			return line[i:j]
		}
	}
	return ""
}

// benchResult is the part of stanza-bench's -json output used here.
type benchResult struct {
	PubRate  int64 `json:"pub_rate"`
	SubRate  int64 `json:"sub_rate"`
	PubToAck struct {
		Micro map[string]float64 `json:"us"`
	} `json:"pub_to_ack"`
	PubToDeliv struct {
		Micro map[string]float64 `json:"us"`
	} `json:"pub_to_delivery"`
}

// bench runs stanza-bench and returns its results and the CPU time (user
// and system, seconds) it used.
func (d *driver) bench(tag, url, subject string, args []string) (*benchResult, float64, error) {
	js := filepath.Join(d.tmp, tag+".json")
	args = append([]string{"-s", url, "-id", tag, "-progress", "0", "-timeout", "3m", "-json", js}, args...)
	args = append(args, subject)
	cmd := exec.Command(d.bins["bench"], args...)
	outFile := filepath.Join(d.out, "logs", tag+".txt")
	f, err := os.Create(outFile)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(outFile)
		return nil, 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(string(b)))
	}
	cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	b, err := os.ReadFile(js)
	if err != nil {
		return nil, 0, err
	}
	r := &benchResult{}
	return r, cpu, json.Unmarshal(b, r)
}

// peakRSS reads a process's peak resident set size in MiB.
// serverCPU is the CPU time, in seconds, the running servers have used.
func (d *driver) serverCPU() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	total := 0.0
	for _, p := range d.procs {
		total += processCPU(p.Process.Pid)
	}
	return total
}

// processCPU reads utime + stime of a process from /proc (0 elsewhere).
func processCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after it. utime and stime are fields 14 and 15, in clock ticks.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicksPerSecond
}

// clockTicksPerSecond is USER_HZ, 100 on every Linux this runs on.
const clockTicksPerSecond = 100

func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func byRate(s sample) float64 { return s.Rate }
func byCPU(s sample) float64  { return s.CPUus }

// med returns the median of one field of the samples and how many there are.
func med(ss []sample, f func(sample) float64) (float64, int) {
	var v []float64
	for _, s := range ss {
		v = append(v, f(s))
	}
	return median(v), len(v)
}

func rate(v float64, n int) string {
	switch {
	case n == 0:
		return "—"
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func micros(us float64) string {
	switch {
	case us >= 10000:
		return fmt.Sprintf("%.0f ms", us/1000)
	case us >= 1000:
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return fmt.Sprintf("%.2f ms", us/1000)
}

func lat(ss []sample) string {
	p50, n := med(ss, func(s sample) float64 { return s.P50us })
	p99, _ := med(ss, func(s sample) float64 { return s.P99us })
	if n == 0 || p50 == 0 {
		return "—"
	}
	return micros(p50) + " / " + micros(p99)
}

// table renders the medians as Markdown.
func (d *driver) table(chosen []setup, rounds int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Medians of %d round(s); rates in msgs/s; latency p50 / p99 is publish-to-ack for publish rows and publish-to-delivery for the pub+sub row. The ack-only server is stanza-bench -ack-server, placed like the leader and with that node's nats-server inside its process, as both servers run theirs: it acknowledges every publish at once, storing and replicating nothing (a reference for what the transport costs, not a hard bound: a server that batches its work, as stanza does, can pass it).\n\n", rounds)
	b.WriteString("| configuration | workload | STAN | stanza | stanza/STAN | ack-only server | STAN p50 / p99 | stanza p50 / p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range chosen {
		for _, w := range workloads {
			m := d.res.Samples[s.name][w.key]
			st, ns := med(m["stan"], byRate)
			sz, nz := med(m["stanza"], byRate)
			ratio := "—"
			if ns > 0 && nz > 0 && st > 0 {
				ratio = fmt.Sprintf("%.2fx", sz/st)
			}
			label := w.label
			if w.key == "replay" {
				label = fmt.Sprintf("replay %dk stored msgs to a new sub", d.replay/1000)
			}
			ao, na := med(m["ackonly"], byRate)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.title, label, rate(st, ns), rate(sz, nz), ratio, rate(ao, na), lat(m["stan"]), lat(m["stanza"]))
		}
	}
	b.WriteString("\nServer CPU per message (user + system time of every node of the server during the workload, divided by its messages; median, µs). It measures work, not speed: it moves far less than the rates when the machine is shared.\n\n")
	b.WriteString("| configuration | workload | STAN | stanza | stanza/STAN | ack-only server |\n|---|---|---:|---:|---:|---:|\n")
	for _, s := range chosen {
		for _, w := range workloads {
			m := d.res.Samples[s.name][w.key]
			st, ns := med(m["stan"], byCPU)
			sz, nz := med(m["stanza"], byCPU)
			if ns == 0 || nz == 0 || st == 0 {
				continue
			}
			ack := "—"
			if ao, na := med(m["ackonly"], byCPU); na > 0 {
				ack = fmt.Sprintf("%.1f", ao)
			}
			fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.2fx | %s |\n", s.title, w.label, st, sz, sz/st, ack)
		}
	}
	d.ceilingTable(&b, chosen)
	b.WriteString("\nPeak resident memory of the largest node over all workloads of a start (median, MiB):\n\n| configuration | STAN | stanza |\n|---|---:|---:|\n")
	for _, s := range chosen {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f |\n", s.title, median(d.res.RSS[s.name]["stan"]), median(d.res.RSS[s.name]["stanza"]))
	}
	if len(d.res.Errors) > 0 {
		b.WriteString("\nFailed runs:\n\n")
		for _, e := range d.res.Errors {
			fmt.Fprintf(&b, "- %s\n", firstLine(e))
		}
	}
	return b.String()
}

// asyncPub reports whether w is an async publish workload: one whose rate
// the machine's CPU bounds (a sync publisher waits on latency instead).
func asyncPub(w workload) bool { return w.metric == "pub" && !slices.Contains(w.args, "-sync") }

func byTotalCPU(s sample) float64 { return s.totalCPU() }

// byCores is how many cores a run kept busy: its CPU per message times its
// rate.
func byCores(s sample) float64 { return s.totalCPU() * s.Rate / 1e6 }

// ceilingTable writes, for the async publish rows, what the whole run cost
// per message for each server and the ceiling the transport puts on
// stanza/STAN.
func (d *driver) ceilingTable(b *strings.Builder, chosen []setup) {
	var rows []string
	for _, s := range chosen {
		for _, w := range workloads {
			m := d.res.Samples[s.name][w.key]
			st, ns := med(m["stan"], byTotalCPU)
			sz, nz := med(m["stanza"], byTotalCPU)
			ao, na := med(m["ackonly"], byTotalCPU)
			if !asyncPub(w) || ns == 0 || nz == 0 || na == 0 || ao == 0 {
				continue
			}
			cs, _ := med(m["stan"], byCores)
			cz, _ := med(m["stanza"], byCores)
			ca, _ := med(m["ackonly"], byCores)
			rows = append(rows, fmt.Sprintf("| %s | %s | %.1f | %.1f | %.1f | %.2f / %.2f / %.2f | %.2fx |\n", s.title, w.label, st, sz, ao, cs, cz, ca, st/ao))
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("\nWhat the machine leaves a server, for the async publish rows: CPU per message of the whole run (the client's and every server process's user + system time, µs; median), the cores that kept busy (CPU per message times rate) and the transport ceiling, STAN's CPU per message over the ack-only server's. Where the runs keep about the same cores busy, the rate goes as the inverse of the CPU per message, so a server that reaches the clients through these NATS servers beats STAN by about the ceiling at most: the ack-only run is what carrying a publish and its PubAck costs with no storing or replication at all. It is an estimate, not a proof: a server that batches more than the ack-only one (which answers each publish from its NATS callback) can spend a little less.\n\n")
	b.WriteString("| configuration | workload | STAN | stanza | ack-only | cores busy (STAN / stanza / ack-only) | ceiling for stanza/STAN |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		b.WriteString(r)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// save writes the table, the raw samples, a gnuplot data file and script
// and, where gnuplot is installed, the plot.
func (d *driver) save(chosen []setup, table string) {
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(d.out, name), []byte(s), 0o644); err != nil {
			log.Print(err)
		}
	}
	write("table.md", table)
	raw, _ := json.MarshalIndent(d.res, "", " ")
	write("results.json", string(raw))

	var dat, gp strings.Builder
	for i, s := range chosen {
		if i > 0 {
			dat.WriteString("\n\n")
		}
		fmt.Fprintf(&dat, "# %s\n", s.title)
		for _, w := range workloads {
			m := d.res.Samples[s.name][w.key]
			st, ns := med(m["stan"], byRate)
			sz, nz := med(m["stanza"], byRate)
			ao, na := med(m["ackonly"], byRate)
			fmt.Fprintf(&dat, "%q %s %s %s\n", w.key, num(st, ns), num(sz, nz), num(ao, na))
		}
	}
	write("throughput.dat", dat.String())
	fmt.Fprintf(&gp, `set terminal pngcairo size 1400,1000 font "sans,11"
set output "throughput.png"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [50:2000000]
set format y "%%.0s%%c"
set ylabel "msgs/s (log scale)"
set grid ytics
set key top right noenhanced
set termoption noenhanced
lbl(v) = v >= 1000 ? sprintf("%%.3gk", v/1000) : sprintf("%%.0f", v)
set multiplot layout 2,2 title "stanza vs nats-streaming-server v0.25.6, loopback, 2 cores: throughput per configuration (median msgs/s)" font "sans,13"
`)
	for i, s := range chosen {
		fmt.Fprintf(&gp, "set title %q\n", s.title)
		fmt.Fprintf(&gp, "plot 'throughput.dat' index %d using 2:xtic(1) title 'STAN v0.25.6' lc rgb '#9e9e9e', "+
			"'' index %d using 3 title 'stanza' lc rgb '#1f6fb4', "+
			"'' index %d using 4 title 'ack-only server (transport reference)' lc rgb '#e8b04a', "+
			"'' index %d using ($0-0.25):($2*1.2):(lbl($2)) notitle with labels center font ',9', "+
			"'' index %d using ($0):($3*1.2):(lbl($3)) notitle with labels center font ',9'\n", i, i, i, i, i)
	}
	gp.WriteString("unset multiplot\n")
	write("throughput.gp", gp.String())
	if _, err := exec.LookPath("gnuplot"); err == nil {
		cmd := exec.Command("gnuplot", "throughput.gp")
		cmd.Dir, cmd.Stderr = d.out, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Printf("gnuplot: %v", err)
		}
	} else {
		log.Printf("gnuplot not installed: run it on %s/throughput.gp for the plot", d.out)
	}
	log.Printf("results in %s", d.out)
}

func num(v float64, n int) string {
	if n == 0 {
		return "?"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}
