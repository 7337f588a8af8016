package raftnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"

	"github.com/hashicorp/raft"
)

// checkedLog is raft's log and stable store: raft-wal, with a CRC-32C over every entry.
//
// raft-wal checks the checksums of its commit frames only when it recovers the tail segment
// at open, and never when it reads an entry, so a changed byte inside an entry comes back as
// a different entry. checkedLog closes that gap for every entry type: StoreLogs stores, in
// the entry's Extensions, a checksum over the entry's index, term, type, data, extensions and
// append time, and GetLog verifies it (and that the entry read is the one asked for) wherever
// the entry is read — the replay at start, the apply of a follower, the entries a leader
// sends to a lagging follower.
//
// A damaged entry is reported to raft as raft.ErrLogNotFound (raft compares that error by
// identity): a leader then sends the follower a snapshot instead of the damaged bytes, and a
// node never applies it. The details go to the node's log at Error level. Open verifies the
// entries a node will replay before raft starts (checkLog), so a damaged log is refused with
// ErrDamagedLog rather than met by raft's panic.
//
// Entries written by a build without checksums still read: the stable store records the
// first index written with checksums (keyChecksummedFrom), and an entry below it without a
// checksum is accepted as it is. An entry at or above it must carry a valid one.
type checkedLog struct {
	rawLog
	log *slog.Logger
	// from is the first index written with checksums.
	from uint64
	// appended, when set, is told how many commands each successful append stored (one
	// append is one fsync: the metric of group commit).
	appended func(commands int)
}

// keyChecksummedFrom is the stable-store key of checkedLog.from (8 bytes, little endian, as
// raft-wal's SetUint64 writes them).
var keyChecksummedFrom = []byte("kengen_checksummed_from")

// checksumTag starts the Extensions of a checksummed entry: the tag, the CRC-32C (4 bytes,
// big endian), then the entry's own extensions. The tag is a version: another checksum
// layout would use another tag.
const checksumTag = 0xc1

const checksumLen = 5

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rawLog is the log under the checksums: raft-wal, in a node behind walLog's free-space floor.
type rawLog interface {
	raft.LogStore
	raft.StableStore
	IsMonotonic() bool
	Close() error
}

// openCheckedLog wraps an open raft-wal log. A log without the stable-store record (a new
// one, or one written by a build without checksums) gets it now: every entry after its last
// one is checksummed.
func openCheckedLog(w rawLog, log *slog.Logger) (*checkedLog, error) {
	c := &checkedLog{rawLog: w, log: log}
	raw, err := w.Get(keyChecksummedFrom)
	if err != nil {
		return nil, fmt.Errorf("raftnode: reading the raft log's checksum record: %w", err)
	}
	if len(raw) == 8 {
		c.from = binary.LittleEndian.Uint64(raw)
		return c, nil
	}
	last, err := w.LastIndex()
	if err != nil {
		return nil, err
	}
	c.from = last + 1
	if err := w.SetUint64(keyChecksummedFrom, c.from); err != nil {
		return nil, fmt.Errorf("raftnode: writing the raft log's checksum record: %w", err)
	}
	return c, nil
}

// entrySum is the CRC-32C of everything raft reads back from an entry; ext is the entry's own
// extensions (without the checksum).
func entrySum(l *raft.Log, ext []byte) uint32 {
	var b [8 + 8 + 1 + 8 + 8 + 8]byte
	binary.BigEndian.PutUint64(b[0:], l.Index)
	binary.BigEndian.PutUint64(b[8:], l.Term)
	b[16] = byte(l.Type)
	binary.BigEndian.PutUint64(b[17:], uint64(len(l.Data)))
	binary.BigEndian.PutUint64(b[25:], uint64(len(ext)))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	binary.BigEndian.PutUint64(b[33:], uint64(at))
	sum := crc32.Update(0, castagnoli, b[:])
	sum = crc32.Update(sum, castagnoli, l.Data)
	return crc32.Update(sum, castagnoli, ext)
}

// StoreLog implements raft.LogStore.
func (c *checkedLog) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: it stores copies of the entries with their checksums,
// leaving raft's own entries (which it shares with in-flight replication) unchanged.
func (c *checkedLog) StoreLogs(logs []*raft.Log) error {
	sized := 0
	for _, l := range logs {
		sized += checksumLen + len(l.Extensions)
	}
	exts := make([]byte, 0, sized)
	copies := make([]raft.Log, len(logs))
	ptrs := make([]*raft.Log, len(logs))
	commands := 0
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			commands++
		}
		start := len(exts)
		exts = append(exts, checksumTag)
		exts = binary.BigEndian.AppendUint32(exts, entrySum(l, l.Extensions))
		exts = append(exts, l.Extensions...)
		copies[i] = *l
		copies[i].Extensions = exts[start:len(exts):len(exts)]
		ptrs[i] = &copies[i]
	}
	if err := c.rawLog.StoreLogs(ptrs); err != nil {
		return err
	}
	if c.appended != nil {
		c.appended(commands)
	}
	return nil
}

// GetLog implements raft.LogStore. A damaged entry is logged and reported as
// raft.ErrLogNotFound (see checkedLog).
func (c *checkedLog) GetLog(index uint64, l *raft.Log) error {
	err := c.readEntry(index, l)
	if err == nil || errors.Is(err, raft.ErrLogNotFound) && !errors.Is(err, ErrDamagedLog) {
		return err
	}
	c.log.Error("raftnode: a raft log entry failed its check; raft treats it as missing (a follower that needs it gets a snapshot)",
		"index", index, "error", err)
	return raft.ErrLogNotFound
}

// readEntry reads and verifies the entry at index; a damaged entry is ErrDamagedLog, an
// absent one raft.ErrLogNotFound.
func (c *checkedLog) readEntry(index uint64, l *raft.Log) (err error) {
	defer func() {
		// raft-wal's decoder slices by lengths it reads from the entry, and damaged lengths
		// can make it panic.
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: entry %d does not decode: %v", ErrDamagedLog, index, p)
		}
	}()
	if err := c.rawLog.GetLog(index, l); err != nil {
		if errors.Is(err, raft.ErrLogNotFound) {
			return err
		}
		return fmt.Errorf("%w: entry %d cannot be read: %w", ErrDamagedLog, index, err)
	}
	if l.Index != index {
		return fmt.Errorf("%w: reading entry %d returned entry %d", ErrDamagedLog, index, l.Index)
	}
	ext := l.Extensions
	if len(ext) < checksumLen || ext[0] != checksumTag {
		if index < c.from {
			return nil // written by a build without checksums
		}
		return fmt.Errorf("%w: entry %d has no checksum (entries from %d on carry one)", ErrDamagedLog, index, c.from)
	}
	want := binary.BigEndian.Uint32(ext[1:checksumLen])
	own := ext[checksumLen:]
	if len(own) == 0 {
		own = nil
	}
	if got := entrySum(l, own); got != want {
		return fmt.Errorf("%w: entry %d (term %d) fails its checksum (%08x, stored %08x)", ErrDamagedLog, index, l.Term, got, want)
	}
	l.Extensions = own
	return nil
}
