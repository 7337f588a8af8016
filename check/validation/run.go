package validation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// batchSize is how many relationships one Apply writes.
const batchSize = 1000

// Run evaluates every document of f on a fresh in-memory store: the schema at revision 1,
// the relationships (Touch, batches of 1000) at the following revisions, then each assertion
// and each expected-relation block (compared with LookupSubjects' membership set) at the
// latest revision. A document whose schema or relationships fail to load counts as one
// failure and its assertions are not evaluated. The error is for a cancelled context or a
// store that cannot be opened, never for a failing assertion.
func Run(ctx context.Context, f *File, opts RunOptions) (*Report, error) {
	c := opts.Checker
	if c == nil {
		c = check.New(check.Options{})
	}
	rep := &Report{}
	for _, doc := range f.Docs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := runDocument(ctx, c, f.Path, doc, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func runDocument(ctx context.Context, c *check.Checker, path string, doc *Document, rep *Report) error {
	if doc.Schema == "" && len(doc.Relationships) == 0 && len(doc.Assertions) == 0 && len(doc.ExpectedRelations) == 0 {
		return nil
	}

	st, err := store.Open("validation", store.Options{InMemory: true, NoSync: true, SkipVerify: true, GCInterval: -1})
	if err != nil {
		return fmt.Errorf("validation: opening an in-memory store: %w", err)
	}
	defer func() { _ = st.Close() }() // in memory: nothing to lose
	return runDocumentOn(ctx, c, st, path, doc, rep)
}

// runDocumentOn loads doc into st, at the revisions after st's, and evaluates it there.
func runDocumentOn(ctx context.Context, c *check.Checker, st *store.Store, path string, doc *Document, rep *Report) error {
	if loadErr := load(st, path, doc); loadErr != nil {
		rep.Failed++
		rep.Failures = append(rep.Failures, *loadErr)
		return nil
	}

	rd, err := st.Reader(0)
	if err != nil {
		return fmt.Errorf("validation: reading the in-memory store: %w", err)
	}
	defer rd.Close()
	for _, a := range doc.Assertions {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := a.Kind.want()
		res, err := c.Check(ctx, rd, a.Request)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var got string
		switch {
		case err != nil:
			got = "error: " + err.Error()
		case res.Membership != want:
			got = res.Membership.String()
			if res.Membership == check.ConditionalPermission && len(res.MissingParams) > 0 {
				got += fmt.Sprintf(" (missing %v)", res.MissingParams)
			}
		default:
			rep.Passed++
			continue
		}
		rep.Failed++
		rep.Failures = append(rep.Failures, Failure{File: path, Line: a.Line, Text: a.Kind.String() + " " + a.Text, Got: got, Want: want.String()})
	}
	for _, er := range doc.ExpectedRelations {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f := expectRelation(ctx, c, rd, path, er); f != nil {
			rep.Failed++
			rep.Failures = append(rep.Failures, *f)
			continue
		}
		rep.Passed++
	}
	return nil
}

// clearVisible deletes every relationship the store's schema lets a client see, one delete per
// definition, as a user would before writing an unrelated schema.
func clearVisible(st *store.Store) error {
	sch, _, _ := st.Schema()
	if sch == nil {
		return nil
	}
	for _, ns := range sch.Namespaces {
		b := &store.Batch{DeleteFilter: &store.Filter{ResourceType: ns.Name}}
		if _, err := st.Apply(store.Entry{Index: st.Revision() + 1}, time.Now(), b); err != nil {
			return fmt.Errorf("validation: deleting the %s relationships: %w", ns.Name, err)
		}
	}
	return nil
}

// load writes the document's schema and relationships. A failure comes back as the Failure
// to report, pointing at the schema line or the relationship that was refused.
func load(st *store.Store, path string, doc *Document) *Failure {
	now := time.Now()
	if doc.Schema == "" {
		if len(doc.Relationships) > 0 {
			return &Failure{File: path, Line: doc.Relationships[0].Line, Text: "relationships", Got: "no schema: the document has neither schema nor schemaFile"}
		}
	} else if err := st.WriteSchema(store.Entry{Index: st.Revision() + 1}, now, doc.Schema); err != nil {
		return schemaFailure(path, doc, err)
	}

	rev := st.Revision() + 1
	for start := 0; start < len(doc.Relationships); start += batchSize {
		chunk := doc.Relationships[start:min(start+batchSize, len(doc.Relationships))]
		b := &store.Batch{Updates: make([]store.Update, len(chunk))}
		for i, lr := range chunk {
			b.Updates[i] = store.Update{Op: store.OpTouch, Relationship: lr.Value}
		}
		_, err := st.Apply(store.Entry{Index: rev}, now, b)
		rev++
		if err == nil {
			continue
		}
		// Find the relationship the store refused: write them one at a time (the batch was
		// all or nothing, so none of it is stored yet); the document fails either way.
		for _, lr := range chunk {
			_, oneErr := st.Apply(store.Entry{Index: rev}, now, &store.Batch{Updates: []store.Update{{Op: store.OpTouch, Relationship: lr.Value}}})
			rev++
			if oneErr != nil {
				return &Failure{File: path, Line: lr.Line, Text: "relationship " + lr.Text, Got: "error: " + oneErr.Error()}
			}
		}
		return &Failure{File: path, Line: chunk[0].Line, Text: "relationships", Got: "error: " + err.Error()}
	}
	return nil
}

// schemaFailure points a schema error at the first error's line: in the schema file, or in
// the YAML file when the schema is a literal block there.
func schemaFailure(path string, doc *Document, err error) *Failure {
	f := &Failure{File: path, Line: doc.SchemaPos, Text: "schema", Got: "error: " + err.Error()}
	if doc.SchemaFile != "" {
		f.File, f.Text = doc.SchemaFile, "schemaFile"
	}
	var first *schema.Error
	var list schema.ErrorList
	switch {
	case errors.As(err, &list) && len(list) > 0:
		first = list[0]
	case errors.As(err, &first):
	}
	if first != nil && first.Pos.Line > 0 && doc.schemaLiteral {
		f.Line = doc.SchemaPos + first.Pos.Line - 1
	}
	return f
}
