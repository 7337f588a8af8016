package store

import (
	"sync"
	"testing"
	"unsafe"
)

func TestNamesAreShared(t *testing.T) {
	a := names.intern([]byte("sub_assignee"))
	b := names.intern([]byte("sub_assignee"))
	if a != "sub_assignee" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Errorf("intern gave %q and %q at %p and %p, want one shared copy", a, b, unsafe.StringData(a), unsafe.StringData(b))
	}
	// Many names racing for few slots: every answer is still the name asked for.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				want := string(rune('a'+g)) + string(rune('a'+i%26)) + string(rune('a'+i%7))
				if got := names.intern([]byte(want)); got != want {
					t.Errorf("intern(%q) = %q", want, got)
					return
				}
			}
		})
	}
	wg.Wait()
}
