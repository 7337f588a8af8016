package main

import (
	"io"

	"github.com/spf13/cobra"
)

// cli is what every command shares: the process's streams and environment, and the client
// flags.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	endpoint string
	token    string
	dataDir  string
	insecure bool
	caCert   string
	json     bool

	// serveReady, when set, is called with the bound addresses once `serve` serves (tests).
	serveReady func(grpcAddr, metricsAddr string)
}

func newRootCmd(c *cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "kengen",
		Short: "kengen: a Zanzibar-style relationship-based access store speaking the Authzed v1 API",
		Long: `kengen stores relationships (deal:42#sub_assignee@user:sato) and answers permission
checks over the Authzed v1 gRPC API, the API SpiceDB serves.

  kengen serve                      run a node (data in ./kengen-data, gRPC on 127.0.0.1:50051)
  kengen schema write schema.zed    load a schema
  kengen relationship touch deal:1 owner user:sato
  kengen check deal:1 view user:sato

Client commands find the server with --endpoint or KENGEN_ENDPOINT and the token with
--token or KENGEN_TOKEN, falling back to the key a local 'kengen serve' stored in --data-dir.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVar(&c.endpoint, "endpoint", "", "gRPC endpoint of the server (default $KENGEN_ENDPOINT, else "+defaultGRPCAddr+")")
	f.StringVar(&c.token, "token", "", "preshared key sent as the bearer token (default $KENGEN_TOKEN, else the key stored in --data-dir)")
	f.StringVar(&c.dataDir, "data-dir", defaultDataDir, "data directory of the node")
	f.BoolVar(&c.insecure, "insecure", false, "connect without TLS (the default for a loopback endpoint without --ca-cert)")
	f.StringVar(&c.caCert, "ca-cert", "", "PEM file of the CA that signed the server's certificate (connects with TLS)")
	f.BoolVar(&c.json, "json", false, "print machine-readable JSON (the Authzed API's JSON form)")

	root.AddCommand(newServeCmd(c), newSchemaCmd(c), newRelationshipCmd(c), newCheckCmd(c))
	root.AddCommand(newValidateCmd(c), newImportCmd(c), newExportCmd(c), newLookupCmd(c))
	root.AddCommand(newBenchCmd(c), newSyncCmd(c))
	root.AddCommand(newClusterCmd(c), newRepairCmd(c), newVersionCmd(c))
	return root
}
