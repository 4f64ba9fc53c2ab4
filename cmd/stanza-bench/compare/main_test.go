package main

import (
	"strings"
	"testing"
)

// TestCeilingTable renders the table from made-up samples: the ceiling is
// STAN's whole-run CPU per message over the ack-only server's, for async
// publish rows only, and a row the ack-only server did not run has none.
func TestCeilingTable(t *testing.T) {
	d := &driver{replay: 1000, res: results{Samples: map[string]map[string]map[string][]sample{
		"file": {
			"async128": {
				"stan":    {{Rate: 100000, CPUus: 7, ClientCPUus: 3}, {Rate: 90000, CPUus: 8, ClientCPUus: 3}, {Rate: 80000, CPUus: 9, ClientCPUus: 3}},
				"stanza":  {{Rate: 110000, CPUus: 6, ClientCPUus: 3}},
				"ackonly": {{Rate: 150000, CPUus: 5, ClientCPUus: 3}},
			},
			"async1k": { // no ack-only run: no ceiling
				"stan":   {{Rate: 50000, CPUus: 10, ClientCPUus: 4}},
				"stanza": {{Rate: 60000, CPUus: 9, ClientCPUus: 4}},
			},
			"sync1": { // latency-bound: no ceiling even with all three
				"stan":    {{Rate: 1000, CPUus: 70, ClientCPUus: 40}},
				"stanza":  {{Rate: 2000, CPUus: 60, ClientCPUus: 40}},
				"ackonly": {{Rate: 5000, CPUus: 50, ClientCPUus: 40}},
			},
		},
	}}}
	chosen := []setup{setups[1]}
	table := d.table(chosen, 3)
	_, ceiling, ok := strings.Cut(table, "| configuration | workload | STAN | stanza | ack-only | cores busy")
	if !ok {
		t.Fatalf("no ceiling table in:\n%s", table)
	}
	// STAN: median total 11 µs; ack-only 8 µs; cores busy: STAN's median of
	// 1.00, 0.99, 0.96; stanza 0.99; ack-only 1.20.
	want := "| file + fsync, 1 node | async pub 128 B | 11.0 | 9.0 | 8.0 | 0.99 / 0.99 / 1.20 | 1.38x |"
	if !strings.Contains(ceiling, want) {
		t.Errorf("want the row\n%s\nin:\n%s", want, ceiling)
	}
	for _, label := range []string{"async pub 1 KiB", "sync pub 128 B, 1 pub"} {
		if strings.Contains(ceiling, label) {
			t.Errorf("row %q has a ceiling:\n%s", label, ceiling)
		}
	}
	if !strings.Contains(table, "| file + fsync, 1 node | sync pub 128 B, 1 pub | 70.0 | 60.0 | 0.86x | 50.0 |") {
		t.Errorf("server CPU table lacks the ack-only column:\n%s", table)
	}
}
