package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// A Watch over HTTP answers with its status and headers as soon as it is open, before any
// change: a client waiting for the response (curl, an HTTP library's Do) is not left hanging
// until something is written.
func TestHTTPWatchAnswersBeforeAnyChange(t *testing.T) {
	e := startHTTPEnv(t, Options{}, HTTPOptions{})
	start := e.writeSchema("definition user {}\ndefinition doc {\n relation viewer: user\n}")
	body, err := protojson.Marshal(&v1.WatchRequest{OptionalStartCursor: start})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/v1/watch", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req) // returns once the headers arrive
	if err != nil {
		t.Fatalf("an open watch with nothing to send gave no response: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("open watch: HTTP %d, request id %q; want 200 with a request id", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}

	// A watch the server refuses still gets its own status, not an early 200.
	bad, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/v1/watch",
		bytes.NewReader([]byte(`{"optionalStartCursor": {"token": "not-a-token"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	bad.Header.Set("Authorization", "Bearer "+testKey)
	badResp, err := http.DefaultClient.Do(bad)
	if err != nil {
		t.Fatal(err)
	}
	defer badResp.Body.Close()
	if badResp.StatusCode != http.StatusBadRequest {
		t.Errorf("watch from a malformed cursor: HTTP %d, want 400", badResp.StatusCode)
	}
}

// Action search checks a type's permissions in bulk calls of at most MaxCheckBulkItems, so a
// type with more permissions than one call takes is searched whole, at one snapshot.
func TestAuthZENActionSearchBeyondOneBulkCall(t *testing.T) {
	e := startHTTPEnv(t, Options{MaxCheckBulkItems: 3}, HTTPOptions{})
	var b strings.Builder
	b.WriteString("definition user {}\ndefinition doc {\n relation viewer: user\n relation editor: user\n")
	var want []string
	for i := range 8 {
		rel := "viewer"
		if i%2 == 1 {
			rel = "editor"
		}
		fmt.Fprintf(&b, " permission perm%d = %s\n", i, rel)
		if rel == "viewer" {
			want = append(want, fmt.Sprintf("perm%d", i))
		}
	}
	b.WriteString("}")
	e.writeSchema(b.String())
	e.touch("doc:1#viewer@user:ann")
	got, _ := e.searchAll(t, authzenSearchAction, map[string]any{
		"subject":  map[string]any{"type": "user", "id": "ann"},
		"resource": map[string]any{"type": "doc", "id": "1"},
		"context":  map[string]any{"consistency": map[string]any{"fully_consistent": true}},
	}, 2)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("action search over 8 permissions with bulk calls of 3: %v, want %v", got, want)
	}
}
