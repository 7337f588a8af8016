package api

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/store"
)

// A ZedToken is opaque to clients. Its encoding, version 1:
//
//	base64url, unpadded ( 0x01 | uvarint(revision) )
//
// Decoding is strict: an unknown version, trailing bytes, a non-minimal varint or any other
// spelling of the same revision is refused, so every revision has exactly one token.
const zedTokenV1 = 0x01

var errZedToken = fmt.Errorf("%w: malformed zedtoken", errInvalidArgument)

// encodeZedToken returns the token for rev.
func encodeZedToken(rev store.Revision) *v1.ZedToken {
	buf := make([]byte, 1, 1+binary.MaxVarintLen64)
	buf[0] = zedTokenV1
	buf = binary.AppendUvarint(buf, uint64(rev))
	return &v1.ZedToken{Token: base64.RawURLEncoding.EncodeToString(buf)}
}

// decodeZedToken returns the revision a token names. field names the request field the token
// came from, for the error message.
func decodeZedToken(field string, t *v1.ZedToken) (store.Revision, error) {
	if t == nil || t.GetToken() == "" {
		return 0, fmt.Errorf("%w: %s is empty; pass a token returned by an earlier response", errZedToken, field)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(t.GetToken())
	if err != nil || len(raw) < 2 {
		return 0, fmt.Errorf("%w: %s %q is not a token this server issued; pass a token returned by an earlier response", errZedToken, field, clip(t.GetToken()))
	}
	if raw[0] != zedTokenV1 {
		return 0, fmt.Errorf("%w: %s has unknown version %d; pass a token returned by this server", errZedToken, field, raw[0])
	}
	rev, n := binary.Uvarint(raw[1:])
	if n <= 0 || 1+n != len(raw) || encodeZedToken(store.Revision(rev)).Token != t.GetToken() {
		return 0, fmt.Errorf("%w: %s %q is not a token this server issued; pass a token returned by an earlier response", errZedToken, field, clip(t.GetToken()))
	}
	return store.Revision(rev), nil
}

// clip shortens untrusted input quoted in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
