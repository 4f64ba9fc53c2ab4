package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Faults is the fault configuration one seed chose (swarm testing: each
// class on or off, with its own rates). Rates are per step unless said.
type Faults struct {
	LossRate float64 // per packet
	// RaftLoss is lost on top of LossRate, per raft packet: only the
	// degraded phase sets it (see degradedPhase).
	RaftLoss    float64
	DupRate     float64 // per raft packet
	ReorderRate float64 // per raft packet: ignore the pair's FIFO order
	DelayMin    int64   // steps
	DelayMax    int64   // steps
	DelaySpike  float64 // per packet: a delay of up to 50 steps

	CrashRate     float64 // per step: crash a random node (losing unsynced writes)
	TornWrites    bool    // a crash may tear the last unsynced write
	RestartSteps  int     // a crashed node restarts after up to this many steps
	PauseRate     float64 // per step: pause a random node
	PauseSteps    int     // for up to this many steps
	PartitionRate float64 // per step: a new partition (symmetric, asymmetric, or isolate one)
	HealRate      float64 // per step: heal the network
	DiskErrorRate float64 // per step: a write error on a minority node's disk
	BitFlipRate   float64 // per step: flip a bit in a minority node's log
	ClockSkewMax  int64   // nanoseconds: each node's clock is off by up to this
	ClientCrash   float64 // per step: a client process dies
}

// swarm draws a fault configuration: every class on with probability 1/2.
func swarm(r *rand.Rand) *Faults {
	f := &Faults{DelayMin: 1, DelayMax: 1 + int64(r.IntN(3))}
	on := func() bool { return r.IntN(2) == 0 }
	if on() {
		f.LossRate = []float64{0.001, 0.01, 0.05}[r.IntN(3)]
	}
	if on() {
		f.DupRate = 0.01 + 0.04*r.Float64()
	}
	if on() {
		f.ReorderRate = 0.05 + 0.2*r.Float64()
	}
	if on() {
		f.DelayMax += int64(r.IntN(10))
		f.DelaySpike = 0.002
	}
	if on() {
		f.CrashRate = []float64{0.0005, 0.002, 0.005}[r.IntN(3)]
		f.TornWrites = on()
		f.RestartSteps = 50 + r.IntN(500)
	}
	if on() {
		f.PauseRate = 0.001 + 0.003*r.Float64()
		f.PauseSteps = 20 + r.IntN(300)
	}
	if on() {
		f.PartitionRate = 0.001 + 0.004*r.Float64()
		f.HealRate = 0.005 + 0.02*r.Float64()
	}
	if r.IntN(4) == 0 {
		f.DiskErrorRate = 0.0005
	}
	if r.IntN(4) == 0 {
		f.BitFlipRate = 0.0005
	}
	if on() {
		f.ClockSkewMax = int64(r.IntN(3000)) * 1_000_000
	}
	if on() {
		f.ClientCrash = 0.0005 + 0.002*r.Float64()
	}
	return f
}

func (f *Faults) delay(r *rand.Rand) int64 {
	d := f.DelayMin
	if f.DelayMax > f.DelayMin {
		d += r.Int64N(f.DelayMax - f.DelayMin + 1)
	}
	if f.DelaySpike > 0 && r.Float64() < f.DelaySpike {
		d += r.Int64N(50)
	}
	return d * stepNanos
}

// String lists the configuration, one class per field, for the run header.
func (f *Faults) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loss=%.3f dup=%.3f reorder=%.3f delay=%d..%d steps spike=%.3f", f.LossRate, f.DupRate, f.ReorderRate, f.DelayMin, f.DelayMax, f.DelaySpike)
	fmt.Fprintf(&b, " crash=%.4f torn=%v restart<=%d pause=%.4f/%d partition=%.4f heal=%.4f", f.CrashRate, f.TornWrites, f.RestartSteps, f.PauseRate, f.PauseSteps, f.PartitionRate, f.HealRate)
	fmt.Fprintf(&b, " disk_errors=%.4f bit_flips=%.4f clock_skew<=%dms client_crash=%.4f", f.DiskErrorRate, f.BitFlipRate, f.ClockSkewMax/1_000_000, f.ClientCrash)
	return b.String()
}
