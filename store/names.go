package store

import (
	"hash/maphash"
	"sync/atomic"
)

// Every decoded index key carries four type and relation names ("deal", "owner", "user",
// "") and two ids. The names come from a schema, so there are few of them; allocating them
// afresh for every key was most of a check's allocations. nameTable keeps one copy of each
// name it has seen in a fixed table of slots, lossy on collision (a name that loses its slot
// is allocated again the next time), safe for concurrent use, and bounded whatever the keys.
type nameTable struct {
	slots [nameSlots]atomic.Pointer[string]
}

const nameSlots = 1024 // a power of two

var (
	names    nameTable
	nameSeed = maphash.MakeSeed()
)

func (t *nameTable) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	slot := &t.slots[maphash.Bytes(nameSeed, b)&(nameSlots-1)]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
