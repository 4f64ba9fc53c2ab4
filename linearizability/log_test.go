package linearizability

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestChannelLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"sequential publishes and a read", []Op{
			{Kind: Publish, Channel: "a", Seq: 1, Payload: "x", Call: 0, Return: 10},
			{Kind: Publish, Channel: "a", Seq: 2, Payload: "y", Call: 11, Return: 20},
			{Kind: Read, Channel: "a", Seq: 2, Payload: "y", Call: 21, Return: 21},
		}, porcupine.Ok},
		{"concurrent publishes may take either order", []Op{
			{Client: 0, Kind: Publish, Channel: "a", Seq: 2, Call: 0, Return: 10},
			{Client: 1, Kind: Publish, Channel: "a", Seq: 1, Call: 1, Return: 9},
		}, porcupine.Ok},
		{"a later publish got an earlier sequence", []Op{
			{Kind: Publish, Channel: "a", Seq: 2, Call: 0, Return: 10},
			{Kind: Publish, Channel: "a", Seq: 1, Call: 11, Return: 20},
		}, porcupine.Illegal},
		{"delivered before it was published", []Op{
			{Kind: Read, Channel: "a", Seq: 1, Call: 5, Return: 5},
			{Kind: Publish, Channel: "a", Seq: 1, Call: 10, Return: 20},
		}, porcupine.Illegal},
		{"an indefinite publish that happened, late", []Op{
			{Kind: Publish, Channel: "a", Seq: 1, Call: 0, Return: math.MaxInt64},
			{Kind: Publish, Channel: "a", Seq: 2, Call: 5, Return: 10},
			{Kind: Read, Channel: "a", Seq: 2, Call: 12, Return: 12},
		}, porcupine.Ok},
		{"channels are independent", []Op{
			{Kind: Publish, Channel: "a", Seq: 1, Call: 0, Return: 10},
			{Kind: Publish, Channel: "b", Seq: 1, Call: 11, Return: 20},
		}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Check(tc.ops, 10*time.Second).Verdict; got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
