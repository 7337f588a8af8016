package api

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/store"
)

// A ReadRelationships cursor is opaque to clients. Its encoding, version 1:
//
//	base64url, unpadded ( 0x01 | uvarint(revision) | uvarint(filter hash)
//	                      | six uvarint-length-prefixed strings: the last relationship sent,
//	                        resource type, resource id, relation, subject type, subject id,
//	                        subject relation )
//
// The revision pins every page of one listing to the same snapshot; the filter hash refuses
// a cursor replayed with a different filter.
const cursorV1 = 0x01

// pageCursor is a decoded cursor.
type pageCursor struct {
	rev        store.Revision
	filterHash uint64
	after      store.Relationship
}

func (c pageCursor) encode() *v1.Cursor {
	buf := []byte{cursorV1}
	buf = binary.AppendUvarint(buf, uint64(c.rev))
	buf = binary.AppendUvarint(buf, c.filterHash)
	for _, s := range c.fields() {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	return &v1.Cursor{Token: base64.RawURLEncoding.EncodeToString(buf)}
}

func (c *pageCursor) fields() [6]string {
	r := &c.after
	return [6]string{r.ResourceType, r.ResourceID, r.Relation, r.SubjectType, r.SubjectID, r.SubjectRelation}
}

func decodeCursor(field string, t *v1.Cursor) (pageCursor, error) {
	bad := func() (pageCursor, error) {
		return pageCursor{}, invalidf("%s: %q is not a cursor this server issued; pass after_result_cursor from an earlier response", field, clip(t.GetToken()))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(t.GetToken())
	if err != nil || len(raw) < 1 || raw[0] != cursorV1 {
		return bad()
	}
	raw = raw[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(raw)
		if n <= 0 {
			return 0, false
		}
		raw = raw[n:]
		return v, true
	}
	var c pageCursor
	rev, ok1 := next()
	hash, ok2 := next()
	if !ok1 || !ok2 {
		return bad()
	}
	c.rev, c.filterHash = store.Revision(rev), hash
	var parts [6]string
	for i := range parts {
		n, ok := next()
		if !ok || n > uint64(len(raw)) {
			return bad()
		}
		parts[i], raw = string(raw[:n]), raw[n:]
	}
	if len(raw) != 0 {
		return bad()
	}
	c.after = store.Relationship{
		ResourceType: parts[0], ResourceID: parts[1], Relation: parts[2],
		SubjectType: parts[3], SubjectID: parts[4], SubjectRelation: parts[5],
	}
	if c.encode().Token != t.GetToken() {
		return bad()
	}
	return c, nil
}

// hashFilter identifies a filter for the cursor check.
func hashFilter(f store.Filter) uint64 {
	var b strings.Builder
	fmt.Fprintf(&b, "%q %q %q %q", f.ResourceType, f.ResourceID, f.ResourceIDPrefix, f.Relation)
	if s := f.Subject; s != nil {
		fmt.Fprintf(&b, " %q %q %q %t", s.Type, s.ID, s.Relation, s.RelationSet)
	}
	h := fnv.New64a()
	h.Write([]byte(b.String()))
	return h.Sum64()
}

// resume opens the Reader a paged read continues at: the revision and position of its
// optional_cursor, which must have been issued for the same filter (hash fh; filterField names
// the field and how to fix it), or, on a first call, the revision the consistency asks for.
func (s *Server) resume(ctx context.Context, cursor *v1.Cursor, fh uint64, c *v1.Consistency, filterField string) (*store.Reader, store.Revision, *store.Relationship, error) {
	if cursor == nil {
		rd, rev, err := s.snapshotCtx(ctx, c)
		return rd, rev, nil, err
	}
	pc, err := decodeCursor("optional_cursor", cursor)
	if err != nil {
		return nil, 0, nil, err
	}
	if pc.filterHash != fh {
		return nil, 0, nil, invalidf("optional_cursor: was issued for a different %s", filterField)
	}
	rd, err := s.st.Reader(pc.rev)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("resuming at the cursor's revision %d: %w", pc.rev, err)
	}
	return rd, pc.rev, &pc.after, nil
}
