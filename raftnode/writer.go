package raftnode

import (
	"context"

	"github.com/kengen/kengen/store"
)

// Writer carries api's writes and consistent reads through a Node: it implements api.Writer
// (WriteSchema, Apply) and the read barrier api asks a replicated writer for (ReadIndex).
type Writer struct{ n *Node }

// Writer returns the node's Writer.
func (n *Node) Writer() *Writer { return &Writer{n: n} }

// WriteSchema replaces the schema through the log and returns the revision it was written at.
func (w *Writer) WriteSchema(ctx context.Context, text string) (store.Revision, error) {
	res, err := w.n.Apply(ctx, &Command{Kind: KindSchema, Schema: text})
	return res.Revision, err
}

// Apply applies one batch through the log.
func (w *Writer) Apply(ctx context.Context, b *store.Batch) (store.Result, error) {
	return w.n.Apply(ctx, &Command{Kind: KindBatch, Batch: b})
}

// ReadIndex returns the revision a fully consistent read must see.
func (w *Writer) ReadIndex(ctx context.Context) (store.Revision, error) { return w.n.ReadIndex(ctx) }
