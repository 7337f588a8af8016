package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kengen/kengen/store"
)

// importMessage is how many relationships one ImportBulkRelationships message carries.
const importMessage = 1_000

// defaultPerStream is how many relationships one ImportBulkRelationships stream (one atomic
// write) carries: zed's restore default, well within the server's bound (30,000 by default).
const defaultPerStream = 10_000

func newImportCmd(c *cli) *cobra.Command {
	perStream := defaultPerStream
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Create many relationships at full speed (ImportBulkRelationships)",
		Long: `Create the relationships in FILE, one per line as 'kengen export' prints them
(deal:1#owner@user:sato, with [caveat:{...}] and [expiration:...] when present; '//' starts a
comment; - reads standard input).

The file is sent as consecutive ImportBulkRelationships streams of --per-stream relationships;
the server writes each stream all or nothing. A relationship that already exists, or a line
the schema refuses, fails its stream and ends the import: the streams before it stay written,
nothing of the failing one is, and the error names the lines already imported, so the rest
can be imported from there. A file of at most --per-stream relationships is one atomic write.

On a terminal, the count imported so far is shown as it grows.`,
		Example: `  kengen export > backup.txt && kengen import backup.txt
  generate-rels | kengen import -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if perStream < 1 {
				return fmt.Errorf("--per-stream %d: must be at least 1", perStream)
			}
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
			im := &importer{ctx: cmd.Context(), client: client, perStream: perStream, progress: isTerminal(c.stderr), stderr: c.stderr}
			sc := bufio.NewScanner(in)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for line := 1; sc.Scan(); line++ {
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
				if err := im.add(p, line); err != nil {
					return im.failed(args[0], err)
				}
			}
			if err := sc.Err(); err != nil {
				return err
			}
			if err := im.flush(); err != nil {
				return im.failed(args[0], err)
			}
			if im.progress {
				fmt.Fprintln(c.stderr)
			}
			if c.json {
				return c.printJSON(&v1.ImportBulkRelationshipsResponse{NumLoaded: im.loaded})
			}
			_, err = fmt.Fprintf(c.stdout, "imported %d relationships\n", im.loaded)
			return err
		},
	}
	cmd.Flags().IntVar(&perStream, "per-stream", defaultPerStream, "relationships per ImportBulkRelationships stream, each one atomic write (at most the server's --max-import-relationships)")
	return cmd
}

// importer sends relationships as consecutive streams of at most perStream.
type importer struct {
	ctx       context.Context
	client    *authzed.Client
	perStream int
	progress  bool
	stderr    io.Writer

	pending   []*v1.Relationship
	firstLine int    // the file line of pending[0]
	lastLine  int    // the line of the newest relationship in pending
	loaded    uint64 // relationships the server acknowledged
	doneLine  int    // the last line of the last stream acknowledged
}

func (im *importer) add(r *v1.Relationship, line int) error {
	if len(im.pending) == 0 {
		im.firstLine = line
	}
	im.pending = append(im.pending, r)
	im.lastLine = line
	if len(im.pending) == im.perStream {
		return im.flush()
	}
	return nil
}

// flush sends pending as one stream, in messages of importMessage.
func (im *importer) flush() error {
	if len(im.pending) == 0 {
		return nil
	}
	stream, err := im.client.ImportBulkRelationships(im.ctx)
	if err != nil {
		return err
	}
	for rest := im.pending; len(rest) > 0; {
		n := min(importMessage, len(rest))
		if err := stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: rest[:n]}); err != nil {
			break // the server ended the stream; CloseAndRecv says why
		}
		rest = rest[n:]
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	im.loaded += resp.GetNumLoaded()
	im.doneLine = im.lastLine
	im.pending = im.pending[:0]
	if im.progress {
		fmt.Fprintf(im.stderr, "\rimported %d relationships", im.loaded)
	}
	return nil
}

// failed says what a failed stream left: the lines before it are imported, none of its own.
func (im *importer) failed(file string, err error) error {
	if im.progress {
		fmt.Fprintln(im.stderr)
	}
	if im.loaded == 0 {
		return fmt.Errorf("%s: nothing imported: the stream of lines %d to %d failed: %w", file, im.firstLine, im.lastLine, err)
	}
	return fmt.Errorf("%s: %d relationships imported, up to line %d; the stream of lines %d to %d failed and wrote nothing: %w", file, im.loaded, im.doneLine, im.firstLine, im.lastLine, err)
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
