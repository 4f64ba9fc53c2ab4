package statemachine

// Bug names a deliberately planted bug. The simulator's tests plant them one
// at a time to prove its checkers find real bugs. They exist only in
// binaries built with the stanzabugs build tag; elsewhere Config.Bugs is
// ignored.
type Bug uint32

// Planted bugs, in the state machine and in the node.
const (
	// BugRedeliveryNotFlagged sends redeliveries without the redelivered
	// flag.
	BugRedeliveryNotFlagged Bug = 1 << iota
	// BugQueueLeaveDropsPending forgets a leaving queue member's unacked
	// messages instead of handing them to the other members.
	BugQueueLeaveDropsPending
	// BugSnapshotDropsNewest leaves each channel's newest message out of
	// snapshots.
	BugSnapshotDropsNewest
	// BugPubAckBeforeCommit (node) acknowledges a publish when it is
	// proposed, before it is committed.
	BugPubAckBeforeCommit
	// BugSkipFsync (node) never fsyncs the raft log.
	BugSkipFsync
	// BugHeartbeatAppendDropped (node) drops every commit-only append, also
	// the one after a heartbeat response that lets raft find out that
	// entries in flight were lost: with a minority down, a lost append then
	// stalls the commit until something else is proposed.
	BugHeartbeatAppendDropped
	// BugPubAckNeedsAllReplicas (node) holds back PubAcks while any
	// follower is unreachable: a cluster with a minority down commits but
	// answers no publisher.
	BugPubAckNeedsAllReplicas
)
