// Package statemachine is the pure heart of stanza: every decision a NATS
// Streaming server makes, as a deterministic function of replicated commands.
//
// Apply(command) changes the state and returns a Result: the reply to the
// request (or the protocol rejection, an exact "stan: ..." string), PubAcks,
// and the deliveries to send. Deliveries and acks are decided inside Apply, so
// every replica knows exactly what was sent and what is still pending; a new
// leader redelivers only what is really unacked.
//
// Time enters only as Command.NowNanos, stamped by the leader. Time-driven
// work (AckWait redelivery, MaxAge expiry, MaxInactivity deletion) is found by
// the pure query Due(now), which returns the commands the leader proposes.
//
// The package does no I/O, reads no clock, draws no random numbers and starts
// no goroutines; map iteration never reaches its output (keys are sorted).
// Applying the same commands in the same order on any replica gives
// byte-identical snapshots.
package statemachine
