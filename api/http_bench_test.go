package api

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// BenchmarkHTTPCheck is one permission check three ways over real loopback TCP: the gRPC
// API, SpiceDB's HTTP API and AuthZEN's evaluation (docs/http.md quotes the figures).
func BenchmarkHTTPCheck(b *testing.B) {
	env := startHTTPEnv(b, Options{}, HTTPOptions{})
	env.writeSchema("definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}")
	env.touch("doc:1#viewer@user:ann")
	req := &v1.CheckPermissionRequest{Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ann"}}}
	b.Run("grpc", func(b *testing.B) {
		for b.Loop() {
			if _, err := env.client.CheckPermission(ctxT(b), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	post := func(b *testing.B, path string, body []byte) {
		r, _ := http.NewRequest(http.MethodPost, env.base+path, bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+testKey)
		r.Header.Set("Content-Type", "application/json")
		resp, err := env.hc.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
	b.Run("spicedb-http", func(b *testing.B) {
		body := []byte(`{"resource":{"objectType":"doc","objectId":"1"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"ann"}}}`)
		for b.Loop() {
			post(b, "/v1/permissions/check", body)
		}
	})
	b.Run("authzen", func(b *testing.B) {
		body := []byte(`{"subject":{"type":"user","id":"ann"},"action":{"name":"view"},"resource":{"type":"doc","id":"1"}}`)
		for b.Loop() {
			post(b, authzenEvaluation, body)
		}
	})
}
