package api

import (
	"math"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/store"
)

func TestZedTokenRoundTrip(t *testing.T) {
	for _, rev := range []store.Revision{0, 1, 127, 128, 1 << 32, math.MaxUint64} {
		tok := encodeZedToken(rev)
		got, err := decodeZedToken("t", tok)
		if err != nil || got != rev {
			t.Errorf("decode(encode(%d)) = %d, %v", rev, got, err)
		}
	}
	for _, bad := range []string{"", "x", "AQ", "AgE", "AYAA", "AQE=", "AQEA", "not a token", "AQE\n"} {
		if rev, err := decodeZedToken("t", &v1.ZedToken{Token: bad}); err == nil {
			t.Errorf("decode(%q) = %d, want an error", bad, rev)
		}
	}
}

// FuzzZedToken: decoding never panics, and a token that decodes is the one encoding of its
// revision.
func FuzzZedToken(f *testing.F) {
	f.Add(encodeZedToken(42).Token)
	f.Add("AYAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		rev, err := decodeZedToken("t", &v1.ZedToken{Token: s})
		if err != nil {
			return
		}
		if again := encodeZedToken(rev).Token; again != s {
			t.Fatalf("%q decodes to %d, which encodes as %q", s, rev, again)
		}
	})
}

// FuzzCursor: the same for ReadRelationships cursors.
func FuzzCursor(f *testing.F) {
	f.Add(pageCursor{rev: 7, filterHash: 99, after: store.Relationship{
		ResourceType: "deal", ResourceID: "1", Relation: "owner", SubjectType: "user", SubjectID: "sato",
	}}.encode().Token)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor("c", &v1.Cursor{Token: s})
		if err != nil {
			return
		}
		if again := c.encode().Token; again != s {
			t.Fatalf("%q decodes to %+v, which encodes as %q", s, c, again)
		}
	})
}
