package api

import (
	"context"
	"sync"
	"time"

	"github.com/kengen/kengen/store"
)

// Writer is the one door every write goes through. Handlers never touch the store's write
// methods directly, so the in-process writer below (tests, validation files) and the Raft one
// (raftnode.Writer, what `kengen serve` uses) are interchangeable. A Writer that also
// implements replica (consistency.go) serves at_least_as_fresh and fully_consistent reads
// across nodes. Both return the store's own error (a precondition that failed, a limit, a
// stranding schema) through the error value.
type Writer interface {
	// WriteSchema replaces the schema and returns the revision it was written at.
	WriteSchema(ctx context.Context, text string) (store.Revision, error)
	// Apply applies one batch, all or nothing.
	Apply(ctx context.Context, b *store.Batch) (store.Result, error)
}

// LocalWriter writes straight to one store, one write at a time: each write takes the next
// revision after the applied one. It is the write path of an in-process server without Raft
// (tests); the binary always writes through raftnode.
type LocalWriter struct {
	st  *store.Store
	now func() time.Time

	mu sync.Mutex // serialises writes so that revisions increase one by one
}

// NewLocalWriter returns a Writer over st.
func NewLocalWriter(st *store.Store) *LocalWriter {
	return &LocalWriter{st: st, now: time.Now}
}

// WriteSchema implements Writer.
func (w *LocalWriter) WriteSchema(ctx context.Context, text string) (store.Revision, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rev := w.st.Revision() + 1
	if err := w.st.WriteSchema(store.Entry{Index: rev}, w.now(), text); err != nil {
		return 0, err
	}
	return rev, nil
}

// Apply implements Writer.
func (w *LocalWriter) Apply(ctx context.Context, b *store.Batch) (store.Result, error) {
	if err := ctx.Err(); err != nil {
		return store.Result{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st.Apply(store.Entry{Index: w.st.Revision() + 1}, w.now(), b)
}
