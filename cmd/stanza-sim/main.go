// Command stanza-sim runs stanza's deterministic simulation: one seed, a
// sweep of seeds, or the replay of a failing seed.
//
//	stanza-sim -seed 42                  run one seed, print its summary and trace hash
//	stanza-sim -seed 42 -trace t.log     also write the one-line-per-event trace
//	stanza-sim -seeds 1000 [-from 1]     sweep seeds over every core, report failures
//	stanza-sim -regressions sim/testdata/regressions.txt   run each listed seed twice, compare hashes
//
// Exit codes: 0 pass, 1 usage, 127 crash, 128 liveness, 129 safety,
// 130 nondeterminism.
package main

import (
	"bufio"
	"bytes"
	cryptorand "crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stanza-io/stanza/sim"
)

func exitCode(k sim.FailureKind) int {
	switch k {
	case sim.FailCrash:
		return 127
	case sim.FailLiveness:
		return 128
	case sim.FailSafety:
		return 129
	case sim.FailNondeterminism:
		return 130
	}
	return 0
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stanza-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 0, "run this seed")
	seeds := fs.Int("seeds", 0, "sweep this many seeds")
	from := fs.Uint64("from", 1, "first seed of a sweep")
	budget := fs.Duration("time", 0, "sweep until this much time has passed (instead of -seeds)")
	workers := fs.Int("workers", runtime.NumCPU(), "parallel processes for a sweep")
	traceFile := fs.String("trace", "", "write the event trace of -seed to this file")
	htmlFile := fs.String("html", "", "write porcupine's visualization of -seed's history to this file (written on failure by default)")
	regressions := fs.String("regressions", "", "run every seed in this file twice and compare trace hashes")
	nodes := fs.Int("nodes", 0, "cluster size (default: chosen by the seed)")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	switch {
	case *regressions != "":
		return runRegressions(*regressions, stdout, stderr)
	case *seeds > 0 || *budget > 0:
		return sweep(*from, *seeds, *budget, *workers, *nodes, stdout, stderr)
	case *seed != 0:
		return runOne(*seed, *nodes, *traceFile, *htmlFile, stdout, stderr)
	}
	fs.Usage()
	return 1
}

// seedCryptoRand makes etcd raft's election timeouts (drawn from
// crypto/rand.Reader) a function of the seed. It is process-global: one
// seed per process at a time.
func seedCryptoRand(seed uint64) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	cryptorand.Reader = rand.NewChaCha8(key)
}

func commit() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func runOne(seed uint64, nodes int, traceFile, htmlFile string, stdout, stderr io.Writer) int {
	seedCryptoRand(seed)
	var trace io.Writer
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		bw := bufio.NewWriter(f)
		defer bw.Flush()
		trace = bw
	}
	fmt.Fprintf(stdout, "seed=%d commit=%s\n", seed, commit())
	start := time.Now()
	res := sim.New(sim.Config{Seed: seed, Nodes: nodes, Trace: trace}).Run()
	fmt.Fprintf(stdout, "faults: %s\n", res.Faults)
	res.WriteSummary(stdout)
	if res.Failure == nil {
		lin := res.History.Linearizable(time.Minute)
		fmt.Fprintf(stdout, "  porcupine: %v over %d operations\n", lin.Verdict, lin.Ops())
		if !lin.Ok() {
			res.Failure = &sim.Failure{Kind: sim.FailSafety, Step: res.Steps, Message: "history is not linearizable (channel log model)"}
			if htmlFile == "" {
				htmlFile = fmt.Sprintf("stanza-sim-%d.html", seed)
			}
		}
		if htmlFile != "" {
			if f, err := os.Create(htmlFile); err == nil {
				lin.Visualize(f)
				f.Close()
				fmt.Fprintf(stdout, "  porcupine visualization: %s\n", htmlFile)
			}
		}
	}
	fmt.Fprintf(stdout, "  %.1fs\n", time.Since(start).Seconds())
	if res.Failure != nil {
		fmt.Fprintf(stdout, "FAIL seed=%d commit=%s: %v\n", seed, commit(), res.Failure)
		fmt.Fprintf(stdout, "replay: go run ./cmd/stanza-sim -seed %d -trace trace-%d.log   (or: make replay SEED=%d)\n", seed, seed, seed)
		return exitCode(res.Failure.Kind)
	}
	fmt.Fprintln(stdout, "PASS")
	return 0
}

// sweep runs seeds in child processes (crypto/rand.Reader is global, so one
// seed per process at a time), workers at once.
func sweep(from uint64, n int, budget time.Duration, workers, nodes int, stdout, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	deadline := time.Time{}
	if budget > 0 {
		deadline = time.Now().Add(budget)
	}
	next := from
	var mu sync.Mutex
	var failed []string
	passed := 0
	take := func() (uint64, bool) {
		mu.Lock()
		defer mu.Unlock()
		if n > 0 && next >= from+uint64(n) || !deadline.IsZero() && time.Now().After(deadline) {
			return 0, false
		}
		s := next
		next++
		return s, true
	}
	var wg sync.WaitGroup
	for i := 0; i < max(1, workers); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed, ok := take()
				if !ok {
					return
				}
				args := []string{"-seed", strconv.FormatUint(seed, 10)}
				if nodes > 0 {
					args = append(args, "-nodes", strconv.Itoa(nodes))
				}
				var out bytes.Buffer
				cmd := exec.Command(self, args...)
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				mu.Lock()
				if err != nil {
					code := -1
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					}
					failed = append(failed, fmt.Sprintf("seed %d exit %d", seed, code))
					fmt.Fprintf(stdout, "--- seed %d failed (exit %d)\n%s", seed, code, out.String())
				} else {
					passed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Fprintf(stdout, "sweep: %d passed, %d failed\n", passed, len(failed))
	for _, f := range failed {
		fmt.Fprintln(stdout, "  "+f)
	}
	if len(failed) > 0 {
		return 129
	}
	return 0
}

// runRegressions runs each seed of the file (one per line, # comments)
// twice in separate processes and requires both to pass with the same trace
// hash.
func runRegressions(path string, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	code, passed, failed := 0, 0, 0
	defer func() { fmt.Fprintf(stdout, "regressions: %d passed, %d failed\n", passed, failed) }()
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.SplitN(line, "#", 2)[0])
		if line == "" {
			continue
		}
		var hashes []string
		for i := 0; i < 2; i++ {
			out, err := exec.Command(self, "-seed", line).CombinedOutput()
			if err != nil {
				fmt.Fprintf(stdout, "--- regression seed %s failed\n%s", line, out)
				code = 129
				break
			}
			for _, l := range strings.Split(string(out), "\n") {
				if h, ok := strings.CutPrefix(strings.TrimSpace(l), "trace "); ok {
					hashes = append(hashes, h)
				}
			}
		}
		switch {
		case len(hashes) == 2 && hashes[0] != hashes[1]:
			fmt.Fprintf(stdout, "--- seed %s is nondeterministic: trace %s then %s\n", line, hashes[0], hashes[1])
			code = 130
			failed++
		case len(hashes) == 2:
			fmt.Fprintf(stdout, "seed %s: pass twice, trace %s\n", line, hashes[0])
			passed++
		default:
			failed++
		}
	}
	return code
}
