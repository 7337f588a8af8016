package main

import (
	"encoding/json"
	"fmt"

	"github.com/authzed/authzed-go/pkg/requestmeta"
	"github.com/authzed/authzed-go/pkg/responsemeta"
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/kengen/kengen/api"
)

// versionReport is what `kengen version --json` prints.
type versionReport struct {
	api.VersionInfo
	// Server is the version the server at --endpoint reports, when --server asked for it.
	Server string `json:"server,omitempty"`
}

func newVersionCmd(c *cli) *cobra.Command {
	var server bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kengen's version and the Authzed API version it serves",
		Long: `Print this binary's version, the commit it was built from, the version of the Authzed v1
API it serves (the authzed-go release whose protos it uses) and the Go toolchain. With
--server, also ask the server at --endpoint for its version, as zed does (SpiceDB's
io.spicedb.requestversion request header).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := versionReport{VersionInfo: api.Version()}
			if server {
				v, err := c.serverVersion(cmd)
				if err != nil {
					return err
				}
				rep.Server = v
			}
			if c.json {
				b, err := json.Marshal(rep)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.stdout, "%s\n", b)
				return err
			}
			commit := ""
			if rep.Commit != "" {
				commit = " (commit " + rep.Commit + ")"
			}
			fmt.Fprintf(c.stdout, "kengen %s%s\nAuthzed API: authzed-go %s\ngo: %s\n", rep.Kengen, commit, rep.AuthzedAPI, rep.Go)
			if server {
				fmt.Fprintf(c.stdout, "server: %s\n", rep.Server)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&server, "server", false, "also print the version of the server at --endpoint")
	return cmd
}

// serverVersion asks the server for its version header on a ReadSchema call; the header
// comes back whether or not a schema has been written.
func (c *cli) serverVersion(cmd *cobra.Command) (string, error) {
	client, err := c.connect()
	if err != nil {
		return "", err
	}
	defer client.Close()
	ctx := requestmeta.AddRequestHeaders(cmd.Context(), requestmeta.RequestServerVersion)
	var md metadata.MD
	_, err = client.ReadSchema(ctx, &v1.ReadSchemaRequest{}, grpc.Header(&md))
	if vals := md.Get(string(responsemeta.ServerVersion)); len(vals) > 0 {
		return vals[0], nil
	}
	if err != nil {
		return "", err
	}
	return "", fmt.Errorf("the server sent no version header (%s)", responsemeta.ServerVersion)
}
