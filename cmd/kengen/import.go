package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kengen/kengen/store"
)

// importMessage is how many relationships one ImportBulkRelationships message carries.
const importMessage = 1_000

func newImportCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Create many relationships at full speed (ImportBulkRelationships)",
		Long: `Create the relationships in FILE, one per line as 'kengen export' prints them
(deal:1#owner@user:sato, with [caveat:{...}] and [expiration:...] when present; '//' starts a
comment; - reads standard input). The server writes them in large batches. A relationship
that already exists fails the import; the batches written before it stay written.

On a terminal, the count imported so far is shown as it grows.`,
		Example: `  kengen export > backup.txt && kengen import backup.txt
  generate-rels | kengen import -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := c.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			stream, err := client.ImportBulkRelationships(cmd.Context())
			if err != nil {
				return err
			}
			progress := isTerminal(c.stderr)
			sent := 0
			req := &v1.ImportBulkRelationshipsRequest{}
			flush := func() error {
				if len(req.Relationships) == 0 {
					return nil
				}
				if err := stream.Send(req); err != nil {
					return err
				}
				sent += len(req.Relationships)
				req = &v1.ImportBulkRelationshipsRequest{}
				if progress {
					fmt.Fprintf(c.stderr, "\rimported %d relationships", sent)
				}
				return nil
			}
			ended := false // the server ended the stream early; CloseAndRecv says why
			sc := bufio.NewScanner(in)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for line := 1; !ended && sc.Scan(); line++ {
				text := strings.TrimSpace(sc.Text())
				if text == "" || strings.HasPrefix(text, "//") {
					continue
				}
				r, err := store.ParseRelationship(text)
				if err != nil {
					return fmt.Errorf("%s:%d: %w", args[0], line, err)
				}
				p, err := relationshipProto(&r)
				if err != nil {
					return fmt.Errorf("%s:%d: %w", args[0], line, err)
				}
				req.Relationships = append(req.Relationships, p)
				if len(req.Relationships) == importMessage {
					ended = flush() != nil
				}
			}
			if err := sc.Err(); err != nil {
				return err
			}
			if !ended {
				_ = flush() // an error here also comes back from CloseAndRecv
			}
			resp, err := stream.CloseAndRecv()
			if progress {
				fmt.Fprintln(c.stderr)
			}
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(resp)
			}
			_, err = fmt.Fprintf(c.stdout, "imported %d relationships\n", resp.GetNumLoaded())
			return err
		},
	}
}

// relationshipProto converts a parsed relationship for the API.
func relationshipProto(r *store.Relationship) (*v1.Relationship, error) {
	p := &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: r.ResourceType, ObjectId: r.ResourceID},
		Relation: r.Relation,
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.SubjectType, ObjectId: r.SubjectID},
			OptionalRelation: strings.TrimPrefix(r.SubjectRelation, "...")},
	}
	if r.Caveat != "" {
		p.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat}
		if len(r.CaveatContext) > 0 {
			ctx, err := structpb.NewStruct(r.CaveatContext)
			if err != nil {
				return nil, fmt.Errorf("caveat context: %w", err)
			}
			p.OptionalCaveat.Context = ctx
		}
	}
	if !r.Expiration.IsZero() {
		p.OptionalExpiresAt = timestamppb.New(r.Expiration)
	}
	return p, nil
}

// isTerminal reports whether w is a character device (a terminal), where progress is shown.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
