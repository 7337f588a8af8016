package api

import (
	"errors"
	"io"
	"regexp"
	"testing"

	"github.com/authzed/authzed-go/pkg/requestmeta"
	"github.com/authzed/authzed-go/pkg/responsemeta"
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// semverWithBuild is a semantic version (v-prefixed, as Go and zed write them) with build
// metadata that names kengen.
var semverWithBuild = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?\+([0-9A-Za-z-]+\.)*kengen(\.[0-9A-Za-z-]+)*$`)

// TestServerVersionMetadata: asked with io.spicedb.requestversion, the server's version comes
// in the headers and the trailers alike (zed's `version` refuses a mismatch), as a semantic
// version with build metadata, which zed reports without warning that the server is no
// SpiceDB release; unasked, it is not sent.
func TestServerVersionMetadata(t *testing.T) {
	env := startServer(t, Options{})
	var header, trailer metadata.MD
	ctx := requestmeta.AddRequestHeaders(ctxT(t), requestmeta.RequestServerVersion)
	if _, err := env.client.ReadSchema(ctx, &v1.ReadSchemaRequest{}, grpc.Header(&header), grpc.Trailer(&trailer)); err == nil {
		t.Fatal("ReadSchema of an empty store succeeded")
	}
	h, tr := header.Get(string(responsemeta.ServerVersion)), trailer.Get(string(responsemeta.ServerVersion))
	if len(h) != 1 || len(tr) != 1 || h[0] != tr[0] {
		t.Fatalf("server version header %q, trailer %q: want one and the same", h, tr)
	}
	if !semverWithBuild.MatchString(h[0]) {
		t.Errorf("server version %q is not a semantic version with kengen build metadata", h[0])
	}
	header, trailer = nil, nil
	if _, err := env.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{}, grpc.Header(&header), grpc.Trailer(&trailer)); err == nil {
		t.Fatal("ReadSchema of an empty store succeeded")
	}
	if v := append(header.Get(string(responsemeta.ServerVersion)), trailer.Get(string(responsemeta.ServerVersion))...); len(v) != 0 {
		t.Errorf("server version %q sent unasked", v)
	}
}

func trailerCount(t *testing.T, md metadata.MD, key responsemeta.ResponseMetadataTrailerKey) int {
	t.Helper()
	n, err := responsemeta.GetIntResponseTrailerMetadata(md, key)
	if err != nil {
		t.Fatalf("trailer %s: %v (trailers %v)", key, err, md)
	}
	return n
}

// TestOperationCountTrailers: every call ends with SpiceDB's trailers — the request id (the
// one the headers carry) and the dispatched and cached operation counts, which are the check
// engine's own: the sub-problems a check evaluated, and those it answered from earlier work.
func TestOperationCountTrailers(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(traceSchema)
	env.touch("doc:1#editor@user:ann", "doc:1#viewer@user:bob")

	counts := func(resource, permission, subject string) (dispatched, cached int) {
		t.Helper()
		var header, trailer metadata.MD
		req := checkReq(t, resource, permission, subject)
		req.Consistency = full()
		if _, err := env.client.CheckPermission(ctxT(t), req, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
			t.Fatal(err)
		}
		id := trailer.Get(string(responsemeta.RequestID))
		if len(id) != 1 || id[0] != header.Get(requestIDHeader)[0] {
			t.Errorf("request id trailer %q, header %q", id, header.Get(requestIDHeader))
		}
		return trailerCount(t, trailer, responsemeta.DispatchedOperationsCount), trailerCount(t, trailer, responsemeta.CachedOperationsCount)
	}
	// view = viewer + editor + parent->view: viewer (no), editor (yes) settles it.
	if d, c := counts("doc:1", "view", "user:ann"); d != 3 || c != 0 {
		t.Errorf("view for ann: dispatched %d, cached %d; want 3 (view, viewer, editor), 0", d, c)
	}
	// twice = editor + editor: the second editor is the first's answer.
	if d, c := counts("doc:2", "twice", "user:ann"); d != 2 || c != 1 {
		t.Errorf("twice for ann: dispatched %d, cached %d; want 2 (twice, editor), 1 (editor again)", d, c)
	}
	// viewer is a relation: one sub-problem.
	if d, c := counts("doc:1", "viewer", "user:bob"); d != 1 || c != 0 {
		t.Errorf("viewer for bob: dispatched %d, cached %d; want 1, 0", d, c)
	}

	// A call that checks nothing says so.
	var trailer metadata.MD
	if _, err := env.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{}, grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if d, c := trailerCount(t, trailer, responsemeta.DispatchedOperationsCount), trailerCount(t, trailer, responsemeta.CachedOperationsCount); d != 0 || c != 0 {
		t.Errorf("ReadSchema: dispatched %d, cached %d; want 0, 0", d, c)
	}

	// A stream ends with them too: LookupResources confirms with checks the candidates an
	// exclusion may take away.
	stream, err := env.client.LookupResources(ctxT(t), &v1.LookupResourcesRequest{
		Consistency: full(), ResourceObjectType: "doc", Permission: "view_unbanned",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "bob"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	st := stream.Trailer()
	if d := trailerCount(t, st, responsemeta.DispatchedOperationsCount); d < 1 {
		t.Errorf("LookupResources dispatched %d operations, want at least the one check of doc:1", d)
	}
	if len(st.Get(string(responsemeta.RequestID))) != 1 {
		t.Errorf("LookupResources trailers %v without the request id", st)
	}
}

// TestServerVersionForms: a release tag, a pseudo-version from a clean or a dirty checkout,
// and a build without a version all become semantic versions with kengen build metadata.
func TestServerVersionForms(t *testing.T) {
	for v, want := range map[string]string{
		"v1.2.3":                                   "v1.2.3+kengen",
		"v0.0.0-20261201230000-abcdef012345":       "v0.0.0-20261201230000-abcdef012345+kengen",
		"v0.0.0-20261201230000-abcdef012345+dirty": "v0.0.0-20261201230000-abcdef012345+dirty.kengen",
		"(devel)": "v0.0.0+kengen.devel",
		"":        "v0.0.0+kengen.devel",
	} {
		got := semverOf(v)
		if got != want || !semverWithBuild.MatchString(got) {
			t.Errorf("semverOf(%q) = %q, want %q", v, got, want)
		}
	}
}
