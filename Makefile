# stanza: thin targets; the logic lives in Go.
GO ?= go
DATA ?= ./data

SEEDS ?= 200

.PHONY: build run cluster test unit sim sweep replay lint proto clean bench microbench

build:
	$(GO) build -o bin/stanza ./cmd/stanza

# One node: embedded NATS on 4222, FILE store in $(DATA).
run:
	$(GO) run ./cmd/stanza -st FILE --dir $(DATA)

# Three nodes on loopback (NATS client ports 4222-4224, routes 6222-6224,
# monitoring 8222-8224), FILE stores in $(DATA)/a..c. Ctrl-C stops them all.
cluster: build
	@mkdir -p $(DATA)
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' INT TERM EXIT; \
	for i in 0 1 2; do \
	  n=$$(echo a b c | cut -d' ' -f$$((i+1))); \
	  ./bin/stanza -a 127.0.0.1 -p $$((4222+i)) -m $$((8222+i)) --cluster nats://127.0.0.1:$$((6222+i)) \
	    --routes nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224 \
	    -st FILE --dir $(DATA)/$$n --clustered --cluster_node_id $$n --cluster_peers a,b,c & \
	done; wait

# Every test, then a bounded simulation sweep and the regression seeds.
test: unit sim

unit:
	$(GO) test -count=1 ./...

# The planted-bug test (each of seven deliberate bugs must be caught within
# ten seeds, twenty for one), $(SEEDS) seeds across the cores, then every seed of the
# regression file twice, comparing trace hashes.
sim:
	$(GO) test -count=1 -tags stanzabugs -run TestPlantedBugsAreCaught ./sim
	$(GO) build -o bin/stanza-sim ./cmd/stanza-sim
	./bin/stanza-sim -seeds $(SEEDS)
	./bin/stanza-sim -regressions sim/testdata/regressions.txt

# A long sweep: make sweep SEEDS=5000 FROM=1000
FROM ?= 1
sweep:
	$(GO) build -o bin/stanza-sim ./cmd/stanza-sim
	./bin/stanza-sim -seeds $(SEEDS) -from $(FROM)

# Replay one seed with its trace: make replay SEED=42
replay:
	$(GO) run ./cmd/stanza-sim -seed $(SEED) -trace trace-$(SEED).log

lint:
	$(GO) test -count=1 -run 'TestLint|TestImportRules' .

proto:
	protoc --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" --go_out=. --go_opt=paths=source_relative statemachine/pb/protocol.proto statemachine/pb/command.proto

# stanza against nats-streaming-server v0.25.6 (built in a temporary module,
# not a dependency of ours), same configurations on loopback, alternating
# servers run by run; prints the table of medians (docs/benchmarks.md). Not
# part of make test. Knobs: make bench BENCH_FLAGS="-rounds 5 -replay 1000000"
BENCH_FLAGS ?=
bench:
	$(GO) run ./cmd/stanza-bench/compare $(BENCH_FLAGS)

# The in-process benchmarks: the cores wired in memory (ns and allocations
# per message, 1 and 3 replicas, with and without a subscriber), the WAL and
# the message stores. Not part of make test.
microbench:
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./node
	$(GO) test -run '^$$' -bench . ./storage

clean:
	rm -rf ./bin
