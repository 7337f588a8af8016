package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/kengen/kengen/cmd/kengen/internal/pgsync"
)

func newSyncCmd(c *cli) *cobra.Command {
	var (
		mappingFile, postgres, statePath, httpAddr string
		skipRefused, recopy, check                 bool
		maxUpdates                                 int
	)
	cmd := &cobra.Command{
		Use:   "sync --mapping FILE --postgres CONN",
		Short: "Follow a PostgreSQL database and write the relationships its rows make",
		Long: `Follow a PostgreSQL database through logical replication (pgoutput, a publication on
the mapped tables, a replication slot) and write the relationships the mapping file says its
rows make to the Authzed v1 endpoint: an insert TOUCHes, an update of a mapped column DELETEs
the old relationship and TOUCHes the new one, a delete DELETEs. One database transaction is
one WriteRelationships, in commit order. The first start copies the mapped tables from the
slot's snapshot; a restart resumes where kengen's acknowledged writes end.

The database needs wal_level=logical; the user the REPLICATION attribute. docs/sync.md
describes the mapping file. GET /zedtoken on --http-addr waits until kengen holds every
change committed so far (or up to ?lsn=) and answers a ZedToken that covers them.

With --check, compare the database's rows with kengen's relationships and list every
difference instead (exit 1 when there is one).`,
		Example: `  kengen sync --mapping crm-sync.yaml --postgres 'host=/run/postgresql dbname=crm'
  kengen sync --mapping crm-sync.yaml --postgres "$DATABASE_URL" --check`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mappingFile == "" {
				return errors.New("--mapping is required: the YAML file saying which rows make which relationships")
			}
			if maxUpdates < 1 {
				return fmt.Errorf("--max-updates-per-write %d: must be at least 1 (the endpoint's own limit, 1000 by default)", maxUpdates)
			}
			postgres = firstNonEmpty(postgres, c.getenv("KENGEN_SYNC_POSTGRES"))
			if postgres == "" {
				return errors.New("--postgres (or $KENGEN_SYNC_POSTGRES) is required: the database's connection string")
			}
			text, err := os.ReadFile(mappingFile)
			if err != nil {
				return err
			}
			mapping, err := pgsync.ParseMapping(mappingFile, text)
			if err != nil {
				return err
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			reg := prometheus.NewRegistry()
			opts := pgsync.Options{
				Mapping: mapping, MappingFile: mappingFile, ConnString: postgres, Client: client,
				StatePath: statePath, SkipRefused: skipRefused, Recopy: recopy, MaxUpdates: maxUpdates,
				Registerer: reg, Logger: slog.New(slog.NewTextHandler(c.stderr, nil)),
				Progress: isTerminal(c.stderr),
			}
			if check {
				return syncCheck(cmd.Context(), c, opts)
			}
			s, err := pgsync.New(opts)
			if err != nil {
				return err
			}
			if httpAddr != "" {
				ln, err := net.Listen("tcp", httpAddr)
				if err != nil {
					return fmt.Errorf("--http-addr: %w", err)
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				mux.HandleFunc("/zedtoken", func(w http.ResponseWriter, r *http.Request) { serveZedToken(s, w, r) })
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = srv.Serve(ln) }()
				defer func() { _ = srv.Close() }()
				fmt.Fprintf(c.stderr, "kengen sync: metrics and /zedtoken on http://%s\n", ln.Addr())
			}
			defer s.Close()
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&mappingFile, "mapping", "", "YAML file saying which tables and columns make which relationships (docs/sync.md)")
	f.StringVar(&postgres, "postgres", "", "PostgreSQL connection string (default $KENGEN_SYNC_POSTGRES)")
	f.StringVar(&statePath, "state", "kengen-sync.state", "file holding the WAL position kengen has reached (replaced after every write)")
	f.StringVar(&httpAddr, "http-addr", "127.0.0.1:9095", "serve /metrics and /zedtoken here (empty: do not)")
	f.BoolVar(&skipRefused, "skip-refused", false, "skip a change the endpoint refuses, logging its row and counting it in kengen_sync_refused_total, instead of stopping")
	f.BoolVar(&recopy, "recopy", false, "drop the replication slot and copy the mapped tables anew")
	f.IntVar(&maxUpdates, "max-updates-per-write", 1000, "most relationship changes sent in one WriteRelationships: set it to the endpoint's --max-updates-per-write, so that larger transactions stay atomic")
	f.BoolVar(&check, "check", false, "compare the database's rows with kengen's relationships, list the differences and exit")
	return cmd
}

func syncCheck(ctx context.Context, c *cli, opts pgsync.Options) error {
	diffs, err := pgsync.Check(ctx, opts)
	if err != nil {
		return err
	}
	for _, d := range diffs {
		fmt.Fprintln(c.stdout, d)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %d differences", pgsync.ErrDiverged, len(diffs))
	}
	fmt.Fprintln(c.stdout, "kengen holds exactly the relationships the rows make")
	return nil
}

// serveZedToken answers GET /zedtoken[?lsn=0/16B3748][&timeout=10s] with the ZedToken that
// covers every change at or below lsn (default: the database's current position), waiting
// for it up to timeout (default 10s; 504 when it passes).
func serveZedToken(s *pgsync.Syncer, w http.ResponseWriter, r *http.Request) {
	timeout := 10 * time.Second
	if t := r.URL.Query().Get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil {
			http.Error(w, "timeout: "+err.Error(), http.StatusBadRequest)
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var (
		lsn   pglogrepl.LSN
		token *v1.ZedToken
		err   error
	)
	if q := r.URL.Query().Get("lsn"); q != "" {
		if lsn, err = pglogrepl.ParseLSN(q); err != nil {
			http.Error(w, "lsn: "+err.Error(), http.StatusBadRequest)
			return
		}
		token, err = s.WaitFor(ctx, lsn)
	} else {
		lsn, token, err = s.WaitForCurrent(ctx)
	}
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, context.DeadlineExceeded) {
			code = http.StatusGatewayTimeout
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"lsn": lsn.String(), "zedtoken": token.GetToken()})
}
