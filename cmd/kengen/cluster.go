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
		Short: "Show the leader, the term, the members and the node's applied and commit index",
		Args:  cobra.NoArgs,
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
			if c.json {
				return json.NewEncoder(c.stdout).Encode(st)
			}
			fmt.Fprintf(c.stdout, "node %s (%s), leader %s, term %d, applied revision %d, commit index %d, last index %d\n",
				st.ID, st.State, firstNonEmpty(st.Leader, "(none)"), st.Term, st.Applied, st.CommitIndex, st.LastIndex)
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tGRPC ADDRESS\tVOTER\tLEADER")
			for _, m := range st.Members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\n", m.ID, m.RaftAddr, firstNonEmpty(m.GRPCAddr, "?"), m.Voter, m.Leader)
			}
			return tw.Flush()
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
