package raftnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// Issue 11: a damaged raft log must never turn into acknowledged-and-dropped writes. These
// tests damage the log files of a stopped node the ways a disk or an operator does, and check
// that the node refuses to start (ErrDamagedLog, naming both indexes), and that after a repair
// it starts and writes above the revision it had.

// segments returns the raft-wal segment files of the node in dir, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "raft", "wal", "*.wal"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no raft-wal segments in %s: %v", dir, err)
	}
	sort.Strings(files)
	return files
}

// usedEnd is the offset after the last byte that is not zero (segments are preallocated).
func usedEnd(b []byte) int {
	i := len(b)
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return i
}

// flipMiddle inverts 16 bytes in the middle of the used part of the file.
func flipMiddle(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mid := 32 + (usedEnd(b)-32)/2
	for i := mid; i < mid+16; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// changePayload replaces, in whichever segment holds it, the first occurrence of needle by
// replacement (of the same length): the entry keeps its length and still decodes, as a
// different entry. It returns the file changed.
func changePayload(t *testing.T, files []string, needle, replacement string) string {
	t.Helper()
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, []byte(needle))
		if i < 0 {
			continue
		}
		copy(b[i:], replacement)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		// In place, as a disk would: a running node's open segment sees it too.
		if _, err := f.WriteAt([]byte(replacement), int64(i)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Fatalf("%q is in no segment", needle)
	return ""
}

// writeDocs writes doc:<prefix>NNN#viewer@user:ann for NNN below n through tn, retrying what
// a leadership change refused, and returns the result of the last.
func writeDocs(t *testing.T, tn *testNode, prefix string, n int) store.Result {
	t.Helper()
	var res store.Result
	for i := range n {
		doc := fmt.Sprintf("%s%03d", prefix, i)
		kit.Eventually(t, "write "+doc, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			res, err = write(ctx, tn.node, doc, "ann")
			if errors.Is(err, store.ErrAlreadyExists) { // an earlier attempt was applied
				res.Revision, err = tn.node.ReadIndex(ctx)
			}
			if err != nil && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("write %s: %v", doc, err)
			}
			return err
		})
	}
	return res
}

func awaitLeader(t *testing.T, tn *testNode) {
	t.Helper()
	kit.Eventually(t, tn.id+" leads", func() error {
		if !tn.node.IsLeader() {
			return errors.New("not the leader yet")
		}
		return nil
	})
}

// relationships lists every doc relationship tn's store holds at its latest revision.
func (tn *testNode) relationships(t *testing.T) []string {
	t.Helper()
	rd, err := tn.st.Reader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []string
	if err := rd.Query(store.Filter{ResourceType: "doc"}, nil, 0, func(r *store.Relationship) bool {
		out = append(out, fmt.Sprintf("%s:%s#%s@%s:%s", r.ResourceType, r.ResourceID, r.Relation, r.SubjectType, r.SubjectID))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedEntry is the applied entry of the stopped node's store.
func storedEntry(t *testing.T, tn *testNode) store.Entry {
	t.Helper()
	st, err := store.Open(filepath.Join(tn.dir, "store"), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return st.AppliedEntry()
}

// repairFromStore runs RepairFromStore on the stopped node, as `kengen repair --from-store`.
func (tn *testNode) repairFromStore(t *testing.T) Repaired {
	t.Helper()
	st, err := store.Open(filepath.Join(tn.dir, "store"), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := RepairFromStore(filepath.Join(tn.dir, "raft"), st, tn.id, tn.raftAddr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// repairFromCluster runs RepairFromCluster on the stopped node and moves its store aside, as
// `kengen repair --from-cluster`.
func (tn *testNode) repairFromCluster(t *testing.T) Repaired {
	t.Helper()
	r, err := RepairFromCluster(filepath.Join(tn.dir, "raft"), tn.id)
	if err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(tn.dir, "store")
	if err := os.Rename(sdir, sdir+".damaged"); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDamagedLogIsRefusedAndRepairedFromStore(t *testing.T) {
	cases := []struct {
		name string
		// segmentSize 0 is raft-wal's default: the whole log is in the tail segment.
		segmentSize int
		damage      func(t *testing.T, tn *testNode)
		// want matches the refusal's message.
		want string
	}{
		{name: "tail segment, bytes flipped", damage: func(t *testing.T, tn *testNode) {
			flipMiddle(t, segments(t, tn.dir)[0])
		}, want: "fails its checksum|below the store's applied revision"},
		{name: "tail segment, payload changed in place", damage: func(t *testing.T, tn *testNode) {
			changePayload(t, segments(t, tn.dir), "d015", "x015")
		}, want: "fails its checksum"},
		{name: "sealed segment, payload changed in place", segmentSize: 2 << 10, damage: func(t *testing.T, tn *testNode) {
			files := segments(t, tn.dir)
			if f := changePayload(t, files, "d015", "x015"); f == files[len(files)-1] {
				t.Fatalf("the entry is in the tail segment %s, not a sealed one", f)
			}
		}, want: "fails its checksum"},
		{name: "sealed segment, bytes flipped", segmentSize: 2 << 10, damage: func(t *testing.T, tn *testNode) {
			files := segments(t, tn.dir)
			if len(files) < 2 {
				t.Fatalf("one segment, none sealed: %v", files)
			}
			flipMiddle(t, files[0])
		}, want: `entry [0-9]+ (\(term [0-9]+\) )?(fails its checksum|cannot be read|does not decode)`},
		{name: "sealed segment deleted", segmentSize: 2 << 10, damage: func(t *testing.T, tn *testNode) {
			files := segments(t, tn.dir)
			if len(files) < 2 {
				t.Fatalf("%d segments, want 2 or more", len(files))
			}
			if err := os.Remove(files[0]); err != nil {
				t.Fatal(err)
			}
		}, want: "raft-wal cannot open it: .*no such file"},
		{name: "tail segment truncated", damage: func(t *testing.T, tn *testNode) {
			f := segments(t, tn.dir)[0]
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(f, int64(usedEnd(b)/2)); err != nil {
				t.Fatal(err)
			}
		}, want: "below the store's applied revision"},
		{name: "raft directory lost", damage: func(t *testing.T, tn *testNode) {
			if err := os.RemoveAll(filepath.Join(tn.dir, "raft")); err != nil {
				t.Fatal(err)
			}
		}, want: "the log ends at index 0, below the store's applied revision.*the log is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tn := startNode(t, "n1", t.TempDir(), true, func(cfg *Config) { cfg.SegmentSize = c.segmentSize })
			awaitLeader(t, tn)
			if _, err := tn.node.Writer().WriteSchema(ctxT(t), testSchema); err != nil {
				t.Fatal(err)
			}
			writeDocs(t, tn, "d", 40)
			tn.stop()
			// The stopped store's applied entry, read after the stop: a write retried under
			// load (its first attempt's outcome unknown) may still have been applied after
			// writeDocs returned.
			last := storedEntry(t, tn)
			c.damage(t, tn)

			err := tn.tryStart()
			if !errors.Is(err, ErrDamagedLog) {
				t.Fatalf("Open on a damaged log: %v, want ErrDamagedLog", err)
			}
			t.Logf("refused: %v", err)
			msg := err.Error()
			if !regexp.MustCompile(c.want).MatchString(msg) {
				t.Errorf("the refusal %q does not match %q", msg, c.want)
			}
			for _, w := range []string{filepath.Join(tn.dir, "raft"), fmt.Sprintf("the store has applied revision %d", last.Index), "the log "} {
				if !strings.Contains(msg, w) {
					t.Errorf("the refusal %q does not say %q", msg, w)
				}
			}

			// Emptying the log for a leader to fill would leave a cluster of one waiting
			// forever: refused, nothing moved (when the configuration can still be read).
			dir := filepath.Join(tn.dir, "raft")
			if _, known := otherMembers(dir, tn.id); known {
				_, err := RepairFromCluster(dir, tn.id)
				if !errors.Is(err, ErrOnlyMember) {
					t.Errorf("RepairFromCluster on a single node: %v, want ErrOnlyMember", err)
				}
				t.Logf("from the cluster: %v", err)
				if aside, _ := filepath.Glob(dir + ".damaged-*"); len(aside) > 0 {
					t.Fatalf("the refused repair moved the log: %v", aside)
				}
			}

			r := tn.repairFromStore(t)
			if r.From != last {
				t.Errorf("repaired from %+v, want the store's %+v", r.From, last)
			}
			if _, err := os.Stat(r.Aside); err != nil && c.name != "raft directory lost" {
				t.Errorf("the damaged log was not kept: %v", err)
			}
			tn.start()
			awaitLeader(t, tn)
			after := writeDocs(t, tn, "after", 3)
			if after.Revision <= last.Index+1 {
				t.Fatalf("a write after the repair landed at revision %d, not above the old %d", after.Revision, last.Index)
			}
			for _, doc := range []string{"d000", "d039", "after002"} {
				if ok, err := tn.has(0, doc, "ann"); err != nil || !ok {
					t.Errorf("%s is not readable after the repair: %v %v", doc, ok, err)
				}
			}
			// And the repaired log restarts cleanly.
			tn.stop()
			tn.start()
			awaitLeader(t, tn)
			writeDocs(t, tn, "again", 1)
		})
	}
}

// A store ahead of its log (the raft directory of an older backup put back): the node
// refuses, and the repair restarts the log from the store.
func TestStoreAheadOfTheLogIsRefused(t *testing.T) {
	tn := startNode(t, "n1", t.TempDir(), true, nil)
	awaitLeader(t, tn)
	if _, err := tn.node.Writer().WriteSchema(ctxT(t), testSchema); err != nil {
		t.Fatal(err)
	}
	writeDocs(t, tn, "d", 10)
	tn.stop()
	older := filepath.Join(t.TempDir(), "raft")
	copyDir(t, filepath.Join(tn.dir, "raft"), older)
	tn.start()
	awaitLeader(t, tn)
	last := writeDocs(t, tn, "e", 10)
	tn.stop()
	if err := os.RemoveAll(filepath.Join(tn.dir, "raft")); err != nil {
		t.Fatal(err)
	}
	copyDir(t, older, filepath.Join(tn.dir, "raft"))
	err := tn.tryStart()
	if !errors.Is(err, ErrDamagedLog) || !strings.Contains(err.Error(), fmt.Sprintf("below the store's applied revision %d", last.Revision)) {
		t.Fatalf("Open with a store ahead of the log: %v", err)
	}
	tn.repairFromStore(t)
	tn.start()
	awaitLeader(t, tn)
	if after := writeDocs(t, tn, "f", 1); after.Revision <= last.Revision {
		t.Fatalf("write after the repair at %d, not above %d", after.Revision, last.Revision)
	}
}

// A log whose entry at the store's applied revision is another entry (another term) than the
// one the store applied is refused, even though it is long enough and every checksum holds.
func TestLogThatDisagreesWithTheStoreIsRefused(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.WriteSchema(store.Entry{Index: 2, Term: 2}, time.Now(), testSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(store.Entry{Index: 3, Term: 2}, time.Now(), &store.Batch{Updates: []store.Update{viewer("1", "ann")}}); err != nil {
		t.Fatal(err)
	}
	raftDir := filepath.Join(dir, "raft")
	w, meta := openWAL(t, raftDir)
	logs, err := openCheckedLog(w, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var entries []*raft.Log
	for i := uint64(1); i <= 4; i++ {
		entries = append(entries, &raft.Log{Index: i, Term: 3, Type: raft.LogNoop})
	}
	if err := logs.StoreLogs(entries); err != nil {
		t.Fatal(err)
	}
	if err := logs.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.Close(), meta.Close()); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Config{NodeID: "n1", RaftAddr: "127.0.0.1:0", Dir: raftDir, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, ErrDamagedLog) || !strings.Contains(err.Error(), "entry 3 has term 3, but the store applied it from term 2") {
		t.Fatalf("Open: %v", err)
	}
}

func openWAL(t *testing.T, raftDir string) (*wal.WAL, *metadb.BoltMetaDB) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(raftDir, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(filepath.Join(raftDir, "wal"), wal.WithMetaStore(meta))
	if err != nil {
		t.Fatal(err)
	}
	return w, meta
}

// Every entry type is checksummed and read back unchanged; an entry changed on disk fails
// its checksum wherever it is read, and raft is told it is missing (raft.ErrLogNotFound,
// which raft compares by identity) so that a leader sends a snapshot rather than the bytes.
// Entries written before checksums (below the recorded index) still read.
func TestEveryEntryIsChecksummed(t *testing.T) {
	raftDir := filepath.Join(t.TempDir(), "raft")
	w, meta := openWAL(t, raftDir)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Two entries written by a build without checksums.
	if err := w.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("legacy-one")}, {Index: 2, Term: 1, Type: raft.LogNoop}}); err != nil {
		t.Fatal(err)
	}
	logs, err := openCheckedLog(w, discard)
	if err != nil {
		t.Fatal(err)
	}
	if logs.from != 3 {
		t.Fatalf("checksums from %d, want 3 (after the legacy entries)", logs.from)
	}
	at := time.Unix(1_700_000_000, 5)
	want := []*raft.Log{
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: []byte("command-three"), AppendedAt: at},
		{Index: 4, Term: 2, Type: raft.LogNoop, AppendedAt: at},
		{Index: 5, Term: 2, Type: raft.LogConfiguration, Data: []byte("configuration-five"), AppendedAt: at},
		{Index: 6, Term: 3, Type: raft.LogBarrier, Extensions: []byte("extension-six"), AppendedAt: at},
		{Index: 7, Term: 3, Type: raft.LogCommand, Data: []byte("command-seven"), Extensions: []byte("ext-seven"), AppendedAt: at},
	}
	if err := logs.StoreLogs(want); err != nil {
		t.Fatal(err)
	}
	for _, l := range want {
		if len(l.Extensions) > 0 && l.Extensions[0] == checksumTag {
			t.Fatal("StoreLogs changed raft's own entry")
		}
	}
	for i := uint64(1); i <= 7; i++ {
		var got raft.Log
		if err := logs.GetLog(i, &got); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if i >= 3 {
			w := want[i-3]
			if got.Index != w.Index || got.Term != w.Term || got.Type != w.Type || !bytes.Equal(got.Data, w.Data) ||
				!bytes.Equal(got.Extensions, w.Extensions) || !got.AppendedAt.Equal(w.AppendedAt) {
				t.Errorf("entry %d read back as %+v, want %+v", i, got, w)
			}
		}
	}
	// The record of the first checksummed index survives a reopen.
	if err := errors.Join(w.Close(), meta.Close()); err != nil {
		t.Fatal(err)
	}
	w, meta = openWAL(t, raftDir)
	defer func() { _ = errors.Join(w.Close(), meta.Close()) }()
	if logs, err = openCheckedLog(w, discard); err != nil || logs.from != 3 {
		t.Fatalf("reopened: from %d, %v", logs.from, err)
	}
	// Change the entries on disk under the open log (raft-wal reads entries from the file;
	// a reopen would have its tail recovery drop the changed batch instead).
	files, err := filepath.Glob(filepath.Join(raftDir, "wal", "*.wal"))
	if err != nil || len(files) != 1 {
		t.Fatalf("segments: %v %v", files, err)
	}
	for _, needle := range []string{"legacy-one", "command-three", "configuration-five", "extension-six", "ext-seven"} {
		changePayload(t, files, needle, strings.ToUpper(needle))
	}
	for _, i := range []uint64{3, 5, 6, 7} {
		var got raft.Log
		if err := logs.readEntry(i, &got); !errors.Is(err, ErrDamagedLog) || !strings.Contains(err.Error(), "fails its checksum") {
			t.Errorf("changed entry %d: %v, want a checksum failure", i, err)
		}
		if err := logs.GetLog(i, &got); err != raft.ErrLogNotFound { //nolint:errorlint // raft compares by identity
			t.Errorf("GetLog of changed entry %d: %v, want raft.ErrLogNotFound itself", i, err)
		}
	}
	// An unchanged entry still reads; the legacy entry has no checksum to fail (the change
	// goes unnoticed, as it did before checksums).
	var got raft.Log
	if err := logs.GetLog(4, &got); err != nil || got.Type != raft.LogNoop {
		t.Errorf("unchanged entry 4: %+v %v", got, err)
	}
	if err := logs.GetLog(1, &got); err != nil || string(got.Data) != "LEGACY-ONE" {
		t.Errorf("legacy entry 1: %q %v", got.Data, err)
	}
	// An entry at or above the recorded index without a checksum is damaged.
	if err := w.StoreLogs([]*raft.Log{{Index: 8, Term: 3, Type: raft.LogCommand, Data: []byte("no-sum")}}); err != nil {
		t.Fatal(err)
	}
	if err := logs.readEntry(8, &got); !errors.Is(err, ErrDamagedLog) || !strings.Contains(err.Error(), "has no checksum") {
		t.Errorf("entry 8 without a checksum: %v", err)
	}
}

// The FSM never acknowledges an entry it did not apply: an entry at or below the store's
// applied revision is skipped only when it is the entry the store applied.
func TestFSMSkipsOnlyTheEntryItApplied(t *testing.T) {
	st, err := store.Open("", store.Options{InMemory: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFSM(st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	entry := func(idx, term uint64, doc string) *raft.Log {
		c := &Command{Kind: KindBatch, At: time.Unix(1_700_000_000, 0), Batch: &store.Batch{Updates: []store.Update{viewer(doc, "sato")}}}
		if doc == "" {
			c = &Command{Kind: KindSchema, At: time.Unix(1_700_000_000, 0), Schema: testSchema}
		}
		data, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return &raft.Log{Index: idx, Term: term, Type: raft.LogCommand, Data: data}
	}
	apply := func(l *raft.Log) applyResult { return f.Apply(l).(applyResult) }
	if r := apply(entry(1, 2, "")); r.err != nil {
		t.Fatal(r.err)
	}
	if r := apply(entry(2, 2, "a")); r.err != nil {
		t.Fatal(r.err)
	}
	if got := st.AppliedEntry(); got != (store.Entry{Index: 2, Term: 2}) {
		t.Fatalf("applied entry %+v, want index 2 term 2", got)
	}
	// The same entry again (a replay): skipped and answered.
	if r := apply(entry(2, 2, "a")); r.err != nil {
		t.Fatalf("replay: %v", r.err)
	}
	// An earlier entry, while the log is not known to hold the store's entry: refused.
	if r := apply(entry(1, 2, "b")); !errors.Is(r.err, ErrDamagedLog) {
		t.Fatalf("entry below the applied one: %v, want ErrDamagedLog", r.err)
	}
	// After that the FSM applies nothing more, not even an entry above.
	if r := apply(entry(3, 2, "c")); !errors.Is(r.err, ErrDamagedLog) {
		t.Fatalf("entry after the refusal: %v", r.err)
	}
	if ok, _ := (&testNode{st: st}).has(0, "c", "sato"); ok || st.Revision() != 2 {
		t.Fatalf("a halted FSM applied an entry (revision %d)", st.Revision())
	}

	// The applied index with another term is another entry: refused.
	f = newFSM(st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	f.logMatchesStore = true
	if r := apply(entry(2, 3, "d")); !errors.Is(r.err, ErrDamagedLog) {
		t.Fatalf("another entry at the applied index: %v, want ErrDamagedLog", r.err)
	}
	// With the log known to match, earlier entries are replays.
	f = newFSM(st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	f.logMatchesStore = true
	if r := apply(entry(1, 2, "")); r.err != nil {
		t.Fatalf("replay of an earlier entry: %v", r.err)
	}
	if r := apply(entry(3, 3, "e")); r.err != nil || r.res.Revision != 3 {
		t.Fatalf("the next entry: %+v", r)
	}
	if got := st.AppliedEntry(); got != (store.Entry{Index: 3, Term: 3}) {
		t.Fatalf("applied entry %+v, want index 3 term 3", got)
	}
}

// A damaged Pebble WAL (the store's own log of its unflushed commits) either refuses the
// store (store.ErrCorrupt, naming its directory) or loses only a tail of commits that the
// raft log then replays: in no case is an acknowledged write missing once the node runs.
func TestDamagedStoreWALLosesNoAcknowledgedWrite(t *testing.T) {
	tn := startNode(t, "n1", t.TempDir(), true, nil)
	awaitLeader(t, tn)
	if _, err := tn.node.Writer().WriteSchema(ctxT(t), testSchema); err != nil {
		t.Fatal(err)
	}
	last := writeDocs(t, tn, "d", 40)
	tn.stop()
	logs, err := filepath.Glob(filepath.Join(tn.dir, "store", "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no Pebble WAL: %v %v", logs, err)
	}
	for _, f := range logs {
		flipMiddle(t, f)
	}
	if err := tn.tryStart(); err != nil {
		if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Join(tn.dir, "store")) {
			t.Fatalf("start with a damaged Pebble WAL: %v, want store.ErrCorrupt naming the store", err)
		}
		t.Logf("refused: %v", err)
		return
	}
	t.Logf("the store opened at revision %d of %d; the raft log replays the rest", tn.st.Revision(), last.Revision)
	if err := tn.node.WaitApplied(ctxT(t), last.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if ok, err := tn.has(0, fmt.Sprintf("d%03d", i), "ann"); err != nil || !ok {
			t.Errorf("acknowledged d%03d is missing: %v %v", i, ok, err)
		}
	}
}

// BenchmarkEntryChecksum is the CPU cost checkedLog adds to every entry it stores or reads:
// the CRC-32C of an entry of a 200-byte command (one relationship) and of a 31 KB one (a
// batch of 1,000 relationships in the version 2 encoding).
//
//	go test ./raftnode -run '^$' -bench BenchmarkEntryChecksum
func BenchmarkEntryChecksum(b *testing.B) {
	for _, size := range []int{200, 31 << 10} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			l := &raft.Log{Index: 12345, Term: 3, Type: raft.LogCommand, Data: bytes.Repeat([]byte{7}, size), AppendedAt: time.Now()}
			b.SetBytes(int64(size))
			for b.Loop() {
				entrySum(l, nil)
			}
		})
	}
}

// BenchmarkCheckLog is the start-up check's cost: it reads and verifies every entry after the
// latest snapshot, as raft's own start reads them once more. One op checks a log of `entries`
// entries of `bytes` bytes against a store at its last entry.
//
//	go test ./raftnode -run '^$' -bench BenchmarkCheckLog -benchtime 5x
func BenchmarkCheckLog(b *testing.B) {
	for _, c := range []struct{ entries, bytes int }{{10_000, 200}, {18_432, 200}, {2_000, 31 << 10}} {
		b.Run(fmt.Sprintf("entries=%d/bytes=%d", c.entries, c.bytes), func(b *testing.B) {
			dir := b.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "raft", "wal"), 0o700); err != nil {
				b.Fatal(err)
			}
			meta := &metadb.BoltMetaDB{}
			w, err := wal.Open(filepath.Join(dir, "raft", "wal"), wal.WithMetaStore(meta))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = errors.Join(w.Close(), meta.Close()) }()
			logs, err := openCheckedLog(w, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			data := bytes.Repeat([]byte{7}, c.bytes)
			batch := make([]*raft.Log, 0, 64)
			for i := 1; i <= c.entries; i++ {
				batch = append(batch, &raft.Log{Index: uint64(i), Term: 2, Type: raft.LogCommand, Data: data})
				if len(batch) == cap(batch) || i == c.entries {
					if err := logs.StoreLogs(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			st, err := store.Open(filepath.Join(dir, "store"), store.Options{NoSync: true, GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Apply(store.Entry{Index: store.Revision(c.entries), Term: 2}, time.Now(), &store.Batch{}); err != nil {
				b.Fatal(err)
			}
			snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "raft"), 2, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(c.entries * c.bytes))
			for b.Loop() {
				if err := checkLog(dir, logs, snaps, st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
