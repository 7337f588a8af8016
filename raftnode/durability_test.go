package raftnode

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// kengen serve runs the store without fsync (the Raft log is fsynced). A crash can then leave a
// store behind the log: these tests put an older copy of the store in place, as a crash that
// lost its last commits would, and check that the node brings it back — by replaying the log
// above the last snapshot, or by restoring the snapshot when the store is behind that too.
func TestStoreBehindTheLogCatchesUp(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			dir := t.TempDir()
			tn := startNode(t, "n1", dir, true, nil)
			ctx := ctxT(t)
			kit.Eventually(t, "the schema is written once a leader is elected", func() error {
				_, err := tn.node.Writer().WriteSchema(ctx, testSchema)
				return err
			})
			writeDocs := func(from, to int) {
				kit.Eventually(t, "a leader is elected", func() error {
					if !tn.node.IsLeader() {
						return fmt.Errorf("n1 does not lead yet")
					}
					return nil
				})
				for i := from; i < to; i++ {
					if _, err := write(ctx, tn.node, fmt.Sprint(i), "ann"); err != nil {
						t.Fatal(err)
					}
				}
			}
			writeDocs(0, 5)
			tn.stop()
			older := filepath.Join(t.TempDir(), "store")
			copyDir(t, filepath.Join(dir, "store"), older)
			tn.start()
			writeDocs(5, 10)
			if snapshot {
				if err := tn.node.Snapshot(); err != nil {
					t.Fatal(err)
				}
				writeDocs(10, 12)
			}
			want := 10
			if snapshot {
				want = 12
			}
			tn.stop()
			// The crash: the store lost everything after its fifth write.
			if err := os.RemoveAll(filepath.Join(dir, "store")); err != nil {
				t.Fatal(err)
			}
			copyDir(t, older, filepath.Join(dir, "store"))
			tn.start()
			kit.Eventually(t, "every acknowledged write is back", func() error {
				for i := range want {
					ok, err := tn.has(0, fmt.Sprint(i), "ann")
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("doc:%d#viewer@user:ann is missing at revision %d", i, tn.st.Revision())
					}
				}
				return nil
			})
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
