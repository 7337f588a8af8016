package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kengen/kengen/raftnode"
)

// clusterTimeout bounds one cluster admin call.
const clusterTimeout = 30 * time.Second

func newClusterCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and change the Raft cluster (status, remove, transfer-leader)",
		Long: `Inspect and change the Raft cluster through the node at --endpoint (any member: changes
are forwarded to the leader). Nodes join with 'kengen serve --join ADDR'.`,
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the leader, the members, and each member's state, term, applied revision and commit index",
		Long: `Show the cluster as the node at --endpoint sees it (leader, term, members), then ask every
member for its own state, term, applied revision and commit index. A member that does not
answer within a few seconds is shown as unreachable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			endpoint, token, opts, err := c.clusterTarget()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), clusterTimeout)
			defer cancel()
			st, err := raftnode.RemoteStatus(ctx, endpoint, token, opts)
			if err != nil {
				return errors.New(describe(err))
			}
			cs := clusterStatus{Status: st, Nodes: memberStatuses(ctx, st, token, opts)}
			if c.json {
				return json.NewEncoder(c.stdout).Encode(cs)
			}
			fmt.Fprintf(c.stdout, "node %s (%s), leader %s, term %d, applied revision %d, commit index %d, last index %d\n",
				st.ID, st.State, firstNonEmpty(st.Leader, "(none)"), st.Term, st.Applied, st.CommitIndex, st.LastIndex)
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tTERM\tAPPLIED REVISION\tCOMMIT INDEX\tVOTER\tRAFT ADDRESS\tGRPC ADDRESS")
			for i, m := range st.Members {
				ns := cs.Nodes[i]
				term, applied, commit := "-", "-", "-"
				if ns.Reachable {
					term, applied, commit = fmt.Sprint(ns.Term), fmt.Sprint(ns.Applied), fmt.Sprint(ns.CommitIndex)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\n", m.ID, ns.State, term, applied, commit, m.Voter, m.RaftAddr, firstNonEmpty(m.GRPCAddr, "?"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, ns := range cs.Nodes {
				if !ns.Reachable {
					fmt.Fprintf(c.stdout, "%s unreachable: %s\n", ns.ID, ns.Error)
				}
			}
			return nil
		},
	}
	admin := func(use, short, op string, args cobra.PositionalArgs) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(cmd *cobra.Command, args []string) error {
				endpoint, token, opts, err := c.clusterTarget()
				if err != nil {
					return err
				}
				id := ""
				if len(args) > 0 {
					id = args[0]
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), clusterTimeout)
				defer cancel()
				if err := raftnode.RemoteAdmin(ctx, endpoint, token, opts, op, id); err != nil {
					return errors.New(describe(err))
				}
				fmt.Fprintf(c.stdout, "kengen: %s %s: done\n", op, id)
				return nil
			},
		}
	}
	cmd.AddCommand(status,
		admin("remove NODE-ID", "Remove a member from the cluster", "remove", cobra.ExactArgs(1)),
		admin("transfer-leader [NODE-ID]", "Hand leadership to NODE-ID, or to any other voter", "transfer-leader", cobra.MaximumNArgs(1)))
	return cmd
}

// clusterTarget resolves the endpoint, token and transport the way the Authzed client
// commands do (connect in client.go).
func (c *cli) clusterTarget() (string, string, []grpc.DialOption, error) {
	endpoint := firstNonEmpty(c.endpoint, c.getenv("KENGEN_ENDPOINT"), defaultGRPCAddr)
	token := firstNonEmpty(c.token, c.getenv("KENGEN_TOKEN"))
	if token == "" {
		b, err := os.ReadFile(filepath.Join(c.dataDir, keyFile))
		if err != nil {
			return "", "", nil, fmt.Errorf("no token: pass --token or set KENGEN_TOKEN (no key found in %s: %w)", c.dataDir, errors.Unwrap(err))
		}
		token = strings.TrimSpace(string(b))
	}
	var creds credentials.TransportCredentials
	switch {
	case c.caCert != "":
		pem, err := os.ReadFile(c.caCert)
		if err != nil {
			return "", "", nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return "", "", nil, fmt.Errorf("--ca-cert %s holds no PEM certificate", c.caCert)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	case c.insecure || isLoopback(endpoint) || isLoopbackHost(endpoint):
		creds = insecure.NewCredentials()
	default:
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	return endpoint, token, []grpc.DialOption{grpc.WithTransportCredentials(creds)}, nil
}

// memberStatusTimeout bounds the Status call to one member in `cluster status`.
const memberStatusTimeout = 3 * time.Second

// clusterStatus is `cluster status --json`: the queried node's view, and each member's own.
type clusterStatus struct {
	raftnode.Status
	Nodes []nodeStatus `json:"nodes"`
}

// nodeStatus is one member's answer about itself; State is "unreachable" when it gave none.
type nodeStatus struct {
	ID          string `json:"id"`
	GRPCAddr    string `json:"grpc_addr"`
	Reachable   bool   `json:"reachable"`
	Error       string `json:"error,omitempty"`
	State       string `json:"state"`
	Leader      string `json:"leader,omitempty"`
	Term        uint64 `json:"term"`
	Applied     uint64 `json:"applied_revision"`
	CommitIndex uint64 `json:"commit_index"`
	LastIndex   uint64 `json:"last_index"`
}

// memberStatuses asks every member of st (in its order) for its own status, all at once,
// each within memberStatusTimeout. The node that answered st is not asked again.
func memberStatuses(ctx context.Context, st raftnode.Status, token string, opts []grpc.DialOption) []nodeStatus {
	out := make([]nodeStatus, len(st.Members))
	var wg sync.WaitGroup
	for i, m := range st.Members {
		if m.ID == st.ID {
			out[i] = toNodeStatus(m.GRPCAddr, st)
			continue
		}
		out[i] = nodeStatus{ID: m.ID, GRPCAddr: m.GRPCAddr, State: "unreachable"}
		if m.GRPCAddr == "" {
			out[i].Error = "its gRPC address is not known yet"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mctx, cancel := context.WithTimeout(ctx, memberStatusTimeout)
			defer cancel()
			ms, err := raftnode.RemoteStatus(mctx, m.GRPCAddr, token, opts)
			switch {
			case err != nil:
				out[i].Error = describe(err)
			case ms.ID != m.ID:
				out[i].Error = fmt.Sprintf("%s answers as node %q", m.GRPCAddr, ms.ID)
			default:
				out[i] = toNodeStatus(m.GRPCAddr, ms)
			}
		}()
	}
	wg.Wait()
	return out
}

func toNodeStatus(grpcAddr string, st raftnode.Status) nodeStatus {
	return nodeStatus{ID: st.ID, GRPCAddr: grpcAddr, Reachable: true, State: st.State, Leader: st.Leader,
		Term: st.Term, Applied: st.Applied, CommitIndex: st.CommitIndex, LastIndex: st.LastIndex}
}
