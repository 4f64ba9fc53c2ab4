//go:build stanzabugs

package sim

import (
	"fmt"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/stanza-io/stanza/statemachine"
)

// TestPlantedBugsAreCaught plants realistic bugs one at a time and requires
// the simulator to catch each within a stated number of seeds: checkers
// that cannot fail prove nothing. Run with: go test -tags stanzabugs ./sim
func TestPlantedBugsAreCaught(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bug      statemachine.Bug
		maxSeeds int
	}{
		{"PubAck before commit", statemachine.BugPubAckBeforeCommit, 10},
		{"skipped fsync", statemachine.BugSkipFsync, 10},
		{"redelivery without the redelivered flag", statemachine.BugRedeliveryNotFlagged, 10},
		{"queue member leaves without handing over its pending messages", statemachine.BugQueueLeaveDropsPending, 10},
		{"snapshot omits a channel's newest message", statemachine.BugSnapshotDropsNewest, 10},
		{"lost appends found only by the next proposal", statemachine.BugHeartbeatAppendDropped, 20},
		{"no PubAck while a follower is down", statemachine.BugPubAckNeedsAllReplicas, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= uint64(tc.maxSeeds); seed++ {
				var res Result
				t.Run(fmt.Sprint(seed), func(t *testing.T) {
					cryptotest.SetGlobalRandom(t, seed)
					res = New(Config{Seed: seed, Bugs: tc.bug}).Run()
				})
				if res.Failure != nil {
					t.Logf("caught by seed %d: %v", seed, res.Failure)
					return
				}
				if lin := res.History.Linearizable(time.Minute); !lin.Ok() {
					t.Logf("caught by seed %d: history not linearizable", seed)
					return
				}
			}
			t.Fatalf("%s: not caught within %d seeds", tc.name, tc.maxSeeds)
		})
	}
}
