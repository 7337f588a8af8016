package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kengen/kengen/raftnode"
	"github.com/kengen/kengen/store"
)

func newRepairCmd(c *cli) *cobra.Command {
	var fromStore, fromCluster bool
	var nodeID, raftAddr string
	cmd := &cobra.Command{
		Use:   "repair --from-store | --from-cluster",
		Short: "Repair a stopped node whose Raft log is damaged",
		Long: `Repair the node in --data-dir after 'kengen serve' refused to start on a damaged Raft log
(raftnode: damaged raft log). Stop the node first. Nothing is deleted: what is replaced is
renamed to <name>.damaged-<time> beside it, and Raft's current term and vote are kept.

  --from-cluster   for a member of a cluster whose other members are healthy: the Raft log
                   and the store are moved aside; on its next start the node is filled
                   again by the leader (entries or a snapshot). Start it with the flags it
                   always had (--node-id, --raft-addr, --join).
  --from-store     for a single node (a cluster of one) whose store is intact: the Raft log
                   restarts from the store, as a snapshot of the store at its applied
                   revision, with this node (--node-id at --raft-addr) as the only voter.
                   The store is verified first; a damaged store is refused.

docs/raft.md ("Repairing a node") describes both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fromStore == fromCluster {
				return errors.New("give one of --from-store (a single node whose store is intact) and --from-cluster (a member of a cluster)")
			}
			if fromStore {
				return repairFromStore(c, nodeID, raftAddr)
			}
			return repairFromCluster(c, nodeID)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fromStore, "from-store", false, "restart the Raft log from the store (a single node)")
	f.BoolVar(&fromCluster, "from-cluster", false, "empty the log and the store so the leader fills them again (a member of a cluster)")
	f.StringVar(&nodeID, "node-id", defaultNodeID, "the node's id, as given to serve")
	f.StringVar(&raftAddr, "raft-addr", defaultRaftAddr, "with --from-store: the node's Raft address, as given to serve")
	return cmd
}

func repairFromStore(c *cli, nodeID, raftAddr string) error {
	sdir := filepath.Join(c.dataDir, storeDir)
	opts := store.Options{GCInterval: -1}
	if err := store.FinishRestore(sdir, opts); err != nil {
		return err
	}
	st, err := store.Open(sdir, opts) // verifies every sstable's checksums
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			return fmt.Errorf("%w\nthe store is damaged too, so the log cannot restart from it: on a member of a cluster use --from-cluster", err)
		}
		return fmt.Errorf("%w (is the node still running? stop it first)", err)
	}
	r, err := raftnode.RepairFromStore(filepath.Join(c.dataDir, raftDir), st, nodeID, raftAddr)
	if err := errors.Join(err, st.Close()); err != nil {
		if errors.Is(err, raftnode.ErrNotSingleNode) {
			return fmt.Errorf("%w: `kengen repair --data-dir %s --from-cluster`", err, c.dataDir)
		}
		return err
	}
	if r.Aside != "" {
		fmt.Fprintf(c.stdout, "kengen: moved the damaged raft log to %s\n", r.Aside)
	}
	fmt.Fprintf(c.stdout, "kengen: the raft log now starts after revision %d (term %d), with %s at %s as the only voter; start the node with kengen serve\n",
		r.From.Index, r.From.Term, nodeID, raftAddr)
	return nil
}

func repairFromCluster(c *cli, nodeID string) error {
	sdir := filepath.Join(c.dataDir, storeDir)
	// Opening the store takes its lock, which a running node holds.
	if st, err := store.Open(sdir, store.Options{GCInterval: -1, SkipVerify: true}); err == nil {
		if err := st.Close(); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrCorrupt) && !errors.Is(err, store.ErrIncompatibleFormat) {
		return fmt.Errorf("%w (is the node still running? stop it first)", err)
	}
	r, err := raftnode.RepairFromCluster(filepath.Join(c.dataDir, raftDir), nodeID)
	if errors.Is(err, raftnode.ErrOnlyMember) {
		return fmt.Errorf("%w: `kengen repair --data-dir %s --from-store`", err, c.dataDir)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "kengen: moved the damaged raft log to %s\n", r.Aside)
	if _, err := os.Stat(sdir); err == nil {
		aside := fmt.Sprintf("%s.damaged-%s", sdir, time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.Rename(sdir, aside); err != nil {
			return fmt.Errorf("moving the store aside: %w", err)
		}
		fmt.Fprintf(c.stdout, "kengen: moved the store to %s\n", aside)
	}
	fmt.Fprintf(c.stdout, "kengen: the raft log is empty (term %d kept); start the node with kengen serve and its usual flags: the leader fills it again\n", r.Term)
	return nil
}
