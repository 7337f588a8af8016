package store

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Suffixes of the directories a snapshot restore uses next to the store's own directory:
// restoring is the snapshot being unpacked, restored a complete one waiting to be swapped in,
// replaced the store it replaces.
const (
	suffixRestoring = ".restoring"
	suffixRestored  = ".restored"
	suffixReplaced  = ".replaced"
)

// restoreDrainTimeout bounds how long Restore waits for open Readers.
const restoreDrainTimeout = 30 * time.Second

// Checkpoint is a consistent copy of the whole store at one revision, taken by
// Store.Checkpoint, to be streamed with WriteTo and removed with Close.
type Checkpoint struct {
	// Revision is the applied revision the checkpoint holds.
	Revision Revision
	fs       vfs.FS
	dir      string
}

// Checkpoint takes a Checkpoint of the store: a Pebble checkpoint (hard links and the
// flushed WAL) beside the store directory. Writes wait while it is taken, not while it is
// streamed.
func (s *Store) Checkpoint() (*Checkpoint, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	c := &Checkpoint{fs: s.opts.FS, dir: fmt.Sprintf("%s.checkpoint-%d", s.dir, time.Now().UnixNano())}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	c.Revision = s.Revision()
	if err := s.db.Checkpoint(c.dir, pebble.WithFlushedWAL()); err != nil {
		_ = c.fs.RemoveAll(c.dir)
		return nil, fmt.Errorf("store: checkpoint: %w", err)
	}
	return c, nil
}

// WriteTo writes the checkpoint to w as a tar stream that Store.Restore reads.
func (c *Checkpoint) WriteTo(w io.Writer) (int64, error) {
	names, err := c.fs.List(c.dir)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	for _, name := range names {
		if err := addToTar(c.fs, tw, filepath.Join(c.dir, name), name); err != nil {
			return cw.n, fmt.Errorf("store: snapshot %s: %w", name, err)
		}
	}
	return cw.n, tw.Close()
}

// Close removes the checkpoint's files.
func (c *Checkpoint) Close() error { return c.fs.RemoveAll(c.dir) }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func addToTar(fs vfs.FS, tw *tar.Writer, path, name string) error {
	f, err := fs.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, io.LimitReader(f, fi.Size()))
	return err
}

// Restore replaces the whole store with a snapshot Checkpoint.WriteTo wrote. The snapshot is
// unpacked and synced beside the store first; only then is the store swapped for it, by
// directory renames, so a crash leaves either the old store or the new one (FinishRestore,
// called before Open, completes a swap a crash interrupted). The Store value stays the same:
// it is reopened in place. Restore waits for open Readers to close and gives up with
// ErrRestoreBusy after a while.
func (s *Store) Restore(r io.Reader) error {
	fs := s.opts.FS
	restoring, restored := s.dir+suffixRestoring, s.dir+suffixRestored
	if err := fs.RemoveAll(restoring); err != nil {
		return err
	}
	if err := untar(fs, r, restoring); err != nil {
		_ = fs.RemoveAll(restoring)
		return fmt.Errorf("store: unpacking snapshot: %w", err)
	}
	if desc, err := pebble.Peek(restoring, fs); err != nil || !desc.Exists {
		_ = fs.RemoveAll(restoring)
		return fmt.Errorf("store: the snapshot holds no store (%w)", err)
	}
	if err := fs.RemoveAll(restored); err != nil {
		return err
	}
	if err := fs.Rename(restoring, restored); err != nil {
		return err
	}
	if err := syncDir(fs, filepath.Dir(s.dir)); err != nil {
		return err
	}

	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	deadline := time.Now().Add(restoreDrainTimeout)
	for {
		s.closeMu.Lock()
		if s.closed {
			s.closeMu.Unlock()
			return ErrClosed
		}
		if s.openReaders() == 0 {
			break
		}
		s.closeMu.Unlock()
		if time.Now().After(deadline) {
			return ErrRestoreBusy
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer s.closeMu.Unlock()
	s.iters.drain(false)
	if err := s.db.Close(); err != nil {
		s.opts.Logger.Printf("store: closing before restore: %v", err)
	}
	// From here on a failure leaves no usable database: the store reports ErrClosed, and
	// the next process start (FinishRestore, Open) picks up where this one stopped.
	if err := FinishRestore(s.dir, s.opts); err != nil {
		s.closed = true
		return err
	}
	opts := s.opts
	opts.GCInterval = -1
	ns, err := Open(s.dir, opts)
	if err != nil {
		s.closed = true
		return fmt.Errorf("store: reopening after restore: %w", err)
	}
	close(ns.stopGC)
	<-ns.gcDone
	s.db = ns.db
	s.stalls = ns.stalls // the new database's event listener counts into ns.stalls
	s.latest.Store(nil)  // the restored revision's time is read from its change log
	s.appliedTerm.Store(ns.appliedTerm.Load())
	s.applied.Store(ns.applied.Load())
	s.advanced()
	s.relationships.Store(ns.relationships.Load())
	s.mu.Lock()
	s.mu.schema, s.mu.schemaText, s.mu.schemaRev = ns.mu.schema, ns.mu.schemaText, ns.mu.schemaRev
	s.mu.horizon = ns.mu.horizon
	s.mu.schemas = ns.mu.schemas
	s.mu.Unlock()
	return nil
}

func (s *Store) openReaders() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.mu.readers {
		n += c
	}
	return n
}

// FinishRestore completes a snapshot restore that a crash interrupted in the store directory
// dir, and removes a half-unpacked snapshot. Call it before Open; it does nothing when no
// restore was under way. Only opts.FS is used (nil is the real disk).
func FinishRestore(dir string, opts Options) error {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	restored, replaced := dir+suffixRestored, dir+suffixReplaced
	if err := fs.RemoveAll(dir + suffixRestoring); err != nil {
		return err
	}
	if _, err := fs.Stat(restored); errors.Is(err, os.ErrNotExist) {
		return fs.RemoveAll(replaced)
	} else if err != nil {
		return err
	}
	if _, err := fs.Stat(dir); err == nil {
		if err := fs.RemoveAll(replaced); err != nil {
			return err
		}
		if err := fs.Rename(dir, replaced); err != nil {
			return fmt.Errorf("store: finishing restore: %w", err)
		}
	}
	if err := fs.Rename(restored, dir); err != nil {
		return fmt.Errorf("store: finishing restore: %w", err)
	}
	if err := syncDir(fs, filepath.Dir(dir)); err != nil {
		return err
	}
	return fs.RemoveAll(replaced)
}

func untar(fs vfs.FS, r io.Reader, dir string) error {
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := filepath.Base(h.Name)
		if h.Typeflag != tar.TypeReg || name != h.Name || name == "." || name == ".." {
			return fmt.Errorf("unexpected entry %q in snapshot", h.Name)
		}
		f, err := fs.Create(filepath.Join(dir, name), vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return err
		}
	}
	return syncDir(fs, dir)
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
