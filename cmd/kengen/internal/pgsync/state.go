package pgsync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jackc/pglogrepl"
)

// state is what sync keeps between runs, in one small file replaced atomically after every
// acknowledged write: everything at or below Position is in kengen, and Token covers it.
//
// Because it is saved after each write and before the next is sent, a crash replays at most
// the one transaction whose acknowledgement was not yet recorded, onto a kengen that holds
// nothing newer: replaying it changes nothing, and no reader sees an older state come back.
type state struct {
	Slot        string `json:"slot"`
	Fingerprint string `json:"mapping"`
	// Copied is set once the initial copy of the slot's snapshot is in kengen.
	Copied   bool   `json:"copied"`
	Position string `json:"position"`
	Token    string `json:"zedtoken,omitempty"`
}

func (s *state) lsn() pglogrepl.LSN {
	l, err := pglogrepl.ParseLSN(s.Position)
	if err != nil {
		return 0
	}
	return l
}

// loadState reads the state file; a missing file is a zero state (a first start).
func loadState(path string) (state, error) {
	var s state
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrState, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%w: %s: %w", ErrState, path, err)
	}
	if _, err := pglogrepl.ParseLSN(s.Position); s.Copied && err != nil {
		return s, fmt.Errorf("%w: %s: position %q: %w", ErrState, path, s.Position, err)
	}
	return s, nil
}

// save writes the state durably: a temporary file, fsync, rename, fsync of the directory.
func (s *state) save(path string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".kengen-sync-state-*")
	if err != nil {
		return fmt.Errorf("pgsync: saving state: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // gone after the rename
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("pgsync: saving state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pgsync: saving state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgsync: saving state: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("pgsync: saving state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pgsync: saving state: %w", err)
	}
	defer d.Close()
	return d.Sync()
}
