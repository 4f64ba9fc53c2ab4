package node

import (
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// savesStorage records every Save.
type savesStorage struct {
	*MemStorage
	saves []string
}

func (s *savesStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, mustSync bool) error {
	s.saves = append(s.saves, fmt.Sprintf("entries=%d state=%v sync=%v", len(ents), hs != nil, mustSync))
	return s.MemStorage.Save(hs, ents, mustSync)
}

// TestLogWriteSyncsItsLastWrite checks that one fsync covers a whole
// LogWrite and goes with its last append that writes something. An append
// raft makes for responses alone (a follower answering entries it already
// has) writes nothing: a sync left to it would be skipped, and the entries
// before it acknowledged without being durable (the simulator found this,
// seed 57).
func TestLogWriteSyncsItsLastWrite(t *testing.T) {
	entry := func(i uint64) []*raftpb.Entry { return []*raftpb.Entry{{Index: new(i), Term: new(uint64(1))}} }
	state := func(m *raftpb.Message) *raftpb.Message {
		m.Term, m.Vote, m.Commit = new(uint64(1)), new(uint64(1)), new(uint64(1))
		return m
	}
	respOnly := &raftpb.Message{Responses: []*raftpb.Message{{}}}
	for _, tc := range []struct {
		name    string
		appends []pendingAppend
		noSync  bool
		want    []string
	}{
		{"responses last", []pendingAppend{{m: &raftpb.Message{Entries: entry(1)}, sync: true}, {m: respOnly}},
			false, []string{"entries=1 state=false sync=true"}},
		{"state last", []pendingAppend{{m: &raftpb.Message{Entries: entry(1)}, sync: true}, {m: state(&raftpb.Message{})}, {m: respOnly}},
			false, []string{"entries=1 state=false sync=false", "entries=0 state=true sync=true"}},
		{"two appends", []pendingAppend{{m: &raftpb.Message{Entries: entry(1)}, sync: true}, {m: &raftpb.Message{Entries: entry(2)}, sync: true}},
			false, []string{"entries=1 state=false sync=false", "entries=1 state=false sync=true"}},
		{"commit only", []pendingAppend{{m: state(&raftpb.Message{})}},
			false, []string{"entries=0 state=true sync=false"}},
		{"nothing to write", []pendingAppend{{m: respOnly}}, false, nil},
		{"sync skipped (planted bug)", []pendingAppend{{m: &raftpb.Message{Entries: entry(1)}, sync: true}},
			true, []string{"entries=1 state=false sync=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &savesStorage{MemStorage: NewMemStorage()}
			w := &LogWrite{store: st, appends: tc.appends, noSync: tc.noSync}
			if err := w.Do(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(st.saves, tc.want) {
				t.Errorf("saves %q, want %q", st.saves, tc.want)
			}
		})
	}
}
