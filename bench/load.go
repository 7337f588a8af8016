package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"

	"github.com/kengen/kengen/bench/datagen"
)

// LoadOptions says how a dataset is sent.
type LoadOptions struct {
	// Method is "import" (ImportBulkRelationships, the default; fails on a relationship that
	// already exists) or "write" (WriteRelationships batches of TOUCH, for a server without
	// the bulk import or to load over existing data).
	Method string
	// Batch is the number of relationships per import message or write request (1,000 by
	// default; keep it within the server's limit on updates per write).
	Batch int
	// Progress, when set, receives a counter line rewritten in place as the load goes (a
	// terminal); nil shows nothing.
	Progress io.Writer
	// SkipSchema leaves the server's schema as it is.
	SkipSchema bool
}

// LoadResult is what a load did.
type LoadResult struct {
	Dataset       string  `json:"dataset"`
	Method        string  `json:"method"`
	Relationships int     `json:"relationships"`
	Seconds       float64 `json:"seconds"`
	PerSecond     float64 `json:"per_second"`
}

func load(ctx context.Context, client *authzed.Client, ds *Dataset, opts LoadOptions) (LoadResult, error) {
	if opts.Method == "" {
		opts.Method = "import"
	}
	if opts.Batch <= 0 {
		opts.Batch = 1_000
	}
	res := LoadResult{Dataset: ds.Name, Method: opts.Method}
	start := time.Now()
	if !opts.SkipSchema {
		if _, err := client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: ds.Schema}); err != nil {
			return res, fmt.Errorf("%w: writing the %s schema: %w", ErrLoad, ds.Name, err)
		}
	}
	p := progress{w: opts.Progress, total: ds.Relationships, label: "loading " + ds.Name}
	var err error
	switch opts.Method {
	case "import":
		res.Relationships, err = loadImport(ctx, client, ds, opts.Batch, &p)
	case "write":
		res.Relationships, err = loadWrite(ctx, client, ds, opts.Batch, &p)
	default:
		return res, fmt.Errorf("%w: load method %q; choose import or write", ErrOptions, opts.Method)
	}
	p.done()
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Relationships) / res.Seconds
	}
	return res, err
}

// batches emits the dataset in slices of n relationships. Once send fails, the rest of the
// dataset is generated but not sent, and the error is returned.
func batches(ds *Dataset, n int, send func([]*v1.Relationship) error) error {
	var err error
	batch := make([]*v1.Relationship, 0, n)
	ds.emit(func(t datagen.Tuple) {
		if err != nil {
			return
		}
		batch = append(batch, relationship(t))
		if len(batch) == n {
			err = send(batch)
			batch = make([]*v1.Relationship, 0, n)
		}
	})
	if err == nil && len(batch) > 0 {
		err = send(batch)
	}
	return err
}

func loadImport(ctx context.Context, client *authzed.Client, ds *Dataset, n int, p *progress) (int, error) {
	stream, err := client.ImportBulkRelationships(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: opening ImportBulkRelationships: %w", ErrLoad, err)
	}
	sent := 0
	sendErr := batches(ds, n, func(rels []*v1.Relationship) error {
		if err := stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: rels}); err != nil {
			return err
		}
		sent += len(rels)
		p.set(sent)
		return nil
	})
	// A failed Send means the server ended the stream; CloseAndRecv says why.
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, fmt.Errorf("%w: ImportBulkRelationships after %d relationships sent (a relationship that already exists fails the import; load into an empty server or use --load-method write): %w", ErrLoad, sent, err)
	}
	if sendErr != nil {
		return int(resp.GetNumLoaded()), fmt.Errorf("%w: sending relationships: %w", ErrLoad, sendErr)
	}
	return int(resp.GetNumLoaded()), nil
}

func loadWrite(ctx context.Context, client *authzed.Client, ds *Dataset, n int, p *progress) (int, error) {
	written := 0
	err := batches(ds, n, func(rels []*v1.Relationship) error {
		req := &v1.WriteRelationshipsRequest{Updates: make([]*v1.RelationshipUpdate, len(rels))}
		for i, r := range rels {
			req.Updates[i] = &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: r}
		}
		if _, err := client.WriteRelationships(ctx, req); err != nil {
			return fmt.Errorf("%w: WriteRelationships of relationships %d to %d: %w", ErrLoad, written+1, written+len(rels), err)
		}
		written += len(rels)
		p.set(written)
		return nil
	})
	return written, err
}

func count(ctx context.Context, client *authzed.Client) (int, error) {
	stream, err := client.ExportBulkRelationships(ctx, &v1.ExportBulkRelationshipsRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
	})
	if err != nil {
		return 0, fmt.Errorf("counting relationships: %w", err)
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("counting relationships (after %d): %w", n, err)
		}
		n += len(resp.GetRelationships())
	}
}

func relationship(t datagen.Tuple) *v1.Relationship {
	return &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: t.ResourceType, ObjectId: t.ResourceID},
		Relation: t.Relation,
		Subject: &v1.SubjectReference{
			Object:           &v1.ObjectReference{ObjectType: t.SubjectType, ObjectId: t.SubjectID},
			OptionalRelation: t.SubjectRelation,
		},
	}
}

// progress is a counter line rewritten in place, at most five times a second.
type progress struct {
	w     io.Writer
	total int
	label string
	start time.Time
	last  time.Time
	n     int
}

func (p *progress) set(n int) {
	if p.w == nil {
		return
	}
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	p.n = n
	if now.Sub(p.last) < 200*time.Millisecond && n < p.total {
		return
	}
	p.last = now
	rate := 0.0
	if s := now.Sub(p.start).Seconds(); s > 0 {
		rate = float64(n) / s
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(n) / float64(p.total)
	}
	fmt.Fprintf(p.w, "\r%s: %d/%d relationships (%.0f%%), %.0f/s   ", p.label, n, p.total, pct, rate)
}

func (p *progress) done() {
	if p.w != nil && p.n > 0 {
		fmt.Fprintln(p.w)
	}
}
