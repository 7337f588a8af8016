package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kengen/kengen/check/validation"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// httpEnv is a Server with its HTTP listener on a real port, and a plain net/http client.
type httpEnv struct {
	*testEnv
	base string
	hc   *http.Client
}

func startHTTPEnv(t testing.TB, opts Options, hopts HTTPOptions) *httpEnv {
	t.Helper()
	env := startServer(t, opts)
	h, err := NewHTTP(env.srv, hopts)
	if err != nil {
		t.Fatalf("NewHTTP: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Serve(lis) }()
	t.Cleanup(func() { // before the Server's own cleanup, registered first
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Stop(ctx)
		if err := <-done; err != nil {
			t.Errorf("HTTP Serve: %v", err)
		}
	})
	scheme := "http"
	if h.TLS() {
		scheme = "https"
	}
	return &httpEnv{testEnv: env, base: scheme + "://" + lis.Addr().String(), hc: &http.Client{Timeout: 30 * time.Second}}
}

// answer is what do keeps of a response, whose body it has read and closed.
type answer struct {
	StatusCode int
	Status     string
	Header     http.Header
}

// do sends one request; token "" sends no authorization header.
func (e *httpEnv) do(t *testing.T, method, path, token, contentType string, body []byte) (*answer, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, e.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return &answer{StatusCode: resp.StatusCode, Status: resp.Status, Header: resp.Header}, b
}

// gateway posts req to a SpiceDB HTTP route as a SpiceDB HTTP client does (proto JSON) and
// decodes the 200 answer into resp.
func (e *httpEnv) gateway(t *testing.T, path string, req, resp proto.Message) {
	t.Helper()
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r, b := e.do(t, http.MethodPost, path, testKey, "application/json", body)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %s: %s: %s", path, body, r.Status, b)
	}
	if err := protojson.Unmarshal(b, resp); err != nil {
		t.Fatalf("POST %s: the answer is not a %T: %v\n%s", path, resp, err, b)
	}
}

// gatewayStream posts req to a streaming route and decodes its newline-delimited
// {"result": ...} lines with newMsg; an {"error": ...} line fails the test.
func gatewayStream[M proto.Message](t *testing.T, e *httpEnv, path string, req proto.Message, newMsg func() M) []M {
	t.Helper()
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r, b := e.do(t, http.MethodPost, path, testKey, "application/json", body)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", path, r.Status, b)
	}
	var out []M
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var line struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("POST %s: line %q is not JSON: %v", path, sc.Bytes(), err)
		}
		if line.Error != nil {
			t.Fatalf("POST %s: the stream failed: %s", path, line.Error)
		}
		m := newMsg()
		if err := protojson.Unmarshal(line.Result, m); err != nil {
			t.Fatalf("POST %s: result %s: %v", path, line.Result, err)
		}
		out = append(out, m)
	}
	return out
}

// loadSeed writes a seed model's schema and relationships over HTTP, as an HTTP client
// would, and returns the model.
func (e *httpEnv) loadSeed(t *testing.T, name string) *validation.Document {
	t.Helper()
	f, err := validation.Load(filepath.Join("../schema/examples", name))
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Docs[0]
	var ws v1.WriteSchemaResponse
	e.gateway(t, "/v1/schema/write", &v1.WriteSchemaRequest{Schema: doc.Schema}, &ws)
	wr := &v1.WriteRelationshipsRequest{}
	for _, r := range doc.Relationships {
		p, err := relationshipToProto(&r.Value)
		if err != nil {
			t.Fatal(err)
		}
		wr.Updates = append(wr.Updates, &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: p})
	}
	var resp v1.WriteRelationshipsResponse
	e.gateway(t, "/v1/relationships/write", wr, &resp)
	if resp.GetWrittenAt().GetToken() == "" {
		t.Fatal("/v1/relationships/write returned no written_at")
	}
	return doc
}

// TestHTTPGatewayAgreesWithGRPC: every SpiceDB HTTP route asked here answers what the gRPC
// API answers for the same request, on a seed CRM model written over HTTP.
func TestHTTPGatewayAgreesWithGRPC(t *testing.T) {
	e := startHTTPEnv(t, Options{}, HTTPOptions{})
	doc := e.loadSeed(t, "pipedrive.yaml")

	var rs v1.ReadSchemaResponse
	e.gateway(t, "/v1/schema/read", &v1.ReadSchemaRequest{}, &rs)
	grs, err := e.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rs.GetSchemaText() != grs.GetSchemaText() || rs.GetReadAt().GetToken() != grs.GetReadAt().GetToken() {
		t.Errorf("/v1/schema/read: %q at %s, gRPC %q at %s", rs.GetSchemaText(), rs.GetReadAt(), grs.GetSchemaText(), grs.GetReadAt())
	}

	var bulk v1.CheckBulkPermissionsRequest
	for _, a := range doc.Assertions {
		req := checkRequestToProto(t, a.Request)
		req.Consistency = full()
		var got v1.CheckPermissionResponse
		e.gateway(t, "/v1/permissions/check", req, &got)
		want, err := e.client.CheckPermission(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetPermissionship() != want.GetPermissionship() || got.GetCheckedAt().GetToken() != want.GetCheckedAt().GetToken() {
			t.Errorf("line %d %s: HTTP %v at %s, gRPC %v at %s", a.Line, a.Text, got.GetPermissionship(), got.GetCheckedAt(), want.GetPermissionship(), want.GetCheckedAt())
		}
		if got.GetPermissionship() != wantPermissionship(a.Kind) {
			t.Errorf("line %d %s: HTTP %v, the model says %v", a.Line, a.Text, got.GetPermissionship(), a.Kind)
		}
		bulk.Items = append(bulk.Items, &v1.CheckBulkPermissionsRequestItem{Resource: req.Resource, Permission: req.Permission, Subject: req.Subject, Context: req.Context})
	}
	var gotBulk v1.CheckBulkPermissionsResponse
	e.gateway(t, "/v1/permissions/checkbulk", &bulk, &gotBulk)
	wantBulk, err := e.client.CheckBulkPermissions(ctxT(t), &bulk)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wantBulk.GetPairs() {
		if !proto.Equal(gotBulk.GetPairs()[i], wantBulk.GetPairs()[i]) {
			t.Errorf("checkbulk item %d: HTTP %v, gRPC %v", i, gotBulk.GetPairs()[i], wantBulk.GetPairs()[i])
		}
	}

	// Streams: newline-delimited JSON with one result per gRPC message, in the same order.
	for _, a := range doc.Assertions {
		r := a.Request
		lr := &v1.LookupResourcesRequest{ResourceObjectType: r.ResourceType, Permission: r.Permission,
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.SubjectType, ObjectId: r.SubjectID}, OptionalRelation: r.SubjectRelation}}
		got := gatewayStream(t, e, "/v1/permissions/resources", lr, func() *v1.LookupResourcesResponse { return &v1.LookupResourcesResponse{} })
		want := collect(t, lookupResourcesStream(t, e, lr))
		equalMessages(t, "/v1/permissions/resources "+a.Text, got, want)

		ls := &v1.LookupSubjectsRequest{Resource: &v1.ObjectReference{ObjectType: r.ResourceType, ObjectId: r.ResourceID},
			Permission: r.Permission, SubjectObjectType: r.SubjectType, OptionalSubjectRelation: r.SubjectRelation}
		gotS := gatewayStream(t, e, "/v1/permissions/subjects", ls, func() *v1.LookupSubjectsResponse { return &v1.LookupSubjectsResponse{} })
		wantS := collect(t, lookupSubjectsStream(t, e, ls))
		equalMessages(t, "/v1/permissions/subjects "+a.Text, gotS, wantS)
	}
	rr := &v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: doc.Relationships[0].Value.ResourceType}}
	gotR := gatewayStream(t, e, "/v1/relationships/read", rr, func() *v1.ReadRelationshipsResponse { return &v1.ReadRelationshipsResponse{} })
	stream, err := e.client.ReadRelationships(ctxT(t), rr)
	if err != nil {
		t.Fatal(err)
	}
	equalMessages(t, "/v1/relationships/read", gotR, collect(t, stream.Recv))
	if len(gotR) == 0 {
		t.Error("/v1/relationships/read returned nothing for a type the model writes")
	}

	// An error: the same code and message, with the HTTP status of grpc-gateway's table.
	bad := &v1.CheckPermissionRequest{Resource: &v1.ObjectReference{ObjectType: "nosuchtype", ObjectId: "1"}, Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "u"}}}
	body, _ := protojson.Marshal(bad)
	resp, b := e.do(t, http.MethodPost, "/v1/permissions/check", testKey, "application/json", body)
	_, gerr := e.client.CheckPermission(ctxT(t), bad)
	st := status.Convert(gerr)
	var gotErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &gotErr); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	if gerr == nil || resp.StatusCode != runtime.HTTPStatusFromCode(st.Code()) || gotErr.Code != int(st.Code()) || gotErr.Message != st.Message() {
		t.Errorf("unknown type: HTTP %s %s; gRPC %v", resp.Status, b, gerr)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("an HTTP error answer carries no X-Request-Id")
	}
}

func lookupResourcesStream(t *testing.T, e *httpEnv, req *v1.LookupResourcesRequest) func() (*v1.LookupResourcesResponse, error) {
	s, err := e.client.LookupResources(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	return s.Recv
}

func lookupSubjectsStream(t *testing.T, e *httpEnv, req *v1.LookupSubjectsRequest) func() (*v1.LookupSubjectsResponse, error) {
	s, err := e.client.LookupSubjects(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	return s.Recv
}

// collect drains a gRPC stream.
func collect[M any](t *testing.T, recv func() (M, error)) []M {
	t.Helper()
	var out []M
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func equalMessages[M proto.Message](t *testing.T, what string, got, want []M) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: HTTP streamed %d results, gRPC %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("%s: result %d: HTTP %v, gRPC %v", what, i, got[i], want[i])
		}
	}
}

// TestHTTPRefusals: bodies that are not JSON, content types that are not JSON, missing and
// wrong tokens, and bodies over the limit get the status that says so on both APIs.
func TestHTTPRefusals(t *testing.T) {
	e := startHTTPEnv(t, Options{}, HTTPOptions{MaxBodyBytes: 1 << 10})
	e.writeSchema("definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}")
	check := `{"resource":{"objectType":"doc","objectId":"1"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"u"}}}`
	eval := `{"subject":{"type":"user","id":"u"},"action":{"name":"view"},"resource":{"type":"doc","id":"1"}}`
	big := `{"subject":{"type":"user","id":"` + strings.Repeat("x", 2<<10) + `"},"action":{"name":"view"},"resource":{"type":"doc","id":"1"}}`
	cases := []struct {
		name, path, token, ctype, body string
		status                         int
		says                           string
	}{
		{"gateway ok", "/v1/permissions/check", testKey, "application/json", check, 200, "PERMISSIONSHIP_NO_PERMISSION"},
		{"gateway curl's default type", "/v1/permissions/check", testKey, "application/x-www-form-urlencoded", check, 200, "PERMISSIONSHIP_NO_PERMISSION"},
		{"gateway no token", "/v1/permissions/check", "", "application/json", check, 401, "no bearer token"},
		{"gateway wrong token", "/v1/permissions/check", "wrong", "application/json", check, 401, "matches no preshared key"},
		{"gateway malformed", "/v1/permissions/check", testKey, "application/json", `{"resource":`, 400, `"code":3`},
		{"gateway wrong type", "/v1/permissions/check", testKey, "text/xml", check, 415, "application/json"},
		{"gateway too large", "/v1/permissions/check", testKey, "application/json", big, 413, "limit of 1024 bytes"},
		{"authzen ok", authzenEvaluation, testKey, "application/json", eval, 200, `{"decision":false}`},
		{"authzen no token", authzenEvaluation, "", "application/json", eval, 401, "no bearer token"},
		{"authzen wrong token", authzenEvaluation, "wrong", "application/json", eval, 401, "matches no preshared key"},
		{"authzen malformed", authzenEvaluation, testKey, "application/json", `{"subject":`, 400, "not valid JSON"},
		{"authzen not an object", authzenEvaluation, testKey, "application/json", `[1]`, 400, "must be a JSON object"},
		{"authzen empty", authzenEvaluation, testKey, "application/json", ``, 400, "body is empty"},
		{"authzen wrong field type", authzenEvaluation, testKey, "application/json", `{"subject":{"type":"user","id":7}}`, 400, "subject.id: must be a JSON string, not a JSON number"},
		{"authzen missing action", authzenEvaluation, testKey, "application/json", `{"subject":{"type":"user","id":"u"},"resource":{"type":"doc","id":"1"}}`, 400, "action: needs a name"},
		{"authzen missing resource id", authzenEvaluation, testKey, "application/json", `{"subject":{"type":"user","id":"u"},"action":{"name":"view"},"resource":{"type":"doc"}}`, 400, "resource: needs a type and an id"},
		{"authzen form type", authzenEvaluation, testKey, "application/x-www-form-urlencoded", eval, 415, "Content-Type: application/json"},
		{"authzen too large", authzenEvaluation, testKey, "application/json", big, 413, "limit of 1024 bytes"},
		{"authzen bad semantic", authzenEvaluations, testKey, "application/json", `{"options":{"evaluations_semantic":"some"},"evaluations":[` + eval + `]}`, 400, "options.evaluations_semantic"},
		{"authzen bad consistency", authzenEvaluation, testKey, "application/json", `{"subject":{"type":"user","id":"u"},"action":{"name":"view"},"resource":{"type":"doc","id":"1"},"context":{"consistency":{"at_least_as_fresh":"x"}}}`, 400, "context.consistency"},
		{"authzen unknown permission", authzenEvaluation, testKey, "application/json", `{"subject":{"type":"user","id":"u"},"action":{"name":"nope"},"resource":{"type":"doc","id":"1"}}`, 400, "nope"},
		{"authzen bad page token", authzenSearchResource, testKey, "application/json", `{"subject":{"type":"user","id":"u"},"action":{"name":"view"},"resource":{"type":"doc"},"page":{"token":"zz"}}`, 400, "page.token"},
		{"authzen no such endpoint", "/access/v1/nothing", testKey, "application/json", eval, 404, "not an AuthZEN endpoint"},
	}
	for _, c := range cases {
		resp, b := e.do(t, http.MethodPost, c.path, c.token, c.ctype, []byte(c.body))
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.says) {
			t.Errorf("%s: %s %q; want %d saying %q", c.name, resp.Status, b, c.status, c.says)
		}
		if resp.StatusCode == 401 && strings.HasPrefix(c.path, "/access/") && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without a Bearer challenge: %q", c.name, resp.Header.Get("WWW-Authenticate"))
		}
		if strings.HasPrefix(c.path, "/access/") && resp.StatusCode != 200 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: an AuthZEN error is %q, not a plain message", c.name, resp.Header.Get("Content-Type"))
		}
	}
	// A chunked body (no Content-Length) over the limit is cut off while it is read.
	for _, path := range []string{"/v1/permissions/check", authzenEvaluation} {
		req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, e.base+path, io.MultiReader(strings.NewReader(big)))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked %s over the limit: %s %s (content length %d)", path, resp.Status, b, req.ContentLength)
		}
	}
	// Wrong methods.
	if resp, b := e.do(t, http.MethodGet, authzenEvaluation, testKey, "", nil); resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET %s: %s %s, Allow %q", authzenEvaluation, resp.Status, b, resp.Header.Get("Allow"))
	}
	// The request id a client sends comes back, on success and on refusal.
	for _, c := range []struct{ path, ctype string }{{authzenEvaluation, "application/json"}, {authzenEvaluation, "text/xml"}, {"/v1/permissions/check", "application/json"}} {
		req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, e.base+c.path, strings.NewReader(eval))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", c.ctype)
		req.Header.Set("X-Request-ID", "pep-42")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-Id"); got != "pep-42" {
			t.Errorf("%s (%s): X-Request-ID %q, want the client's pep-42", c.path, c.ctype, got)
		}
	}
}

// TestHTTPMetrics: requests are counted per route and status code on the Registerer handed
// to the Server, alongside the gRPC metrics of the calls they became.
func TestHTTPMetrics(t *testing.T) {
	e := startHTTPEnv(t, Options{}, HTTPOptions{})
	e.writeSchema("definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}")
	eval := `{"subject":{"type":"user","id":"u"},"action":{"name":"view"},"resource":{"type":"doc","id":"1"}}`
	for range 3 {
		e.do(t, http.MethodPost, authzenEvaluation, testKey, "application/json", []byte(eval))
	}
	e.do(t, http.MethodPost, authzenEvaluation, "", "application/json", []byte(eval))
	e.do(t, http.MethodPost, "/v1/schema/read", testKey, "", []byte(`{}`))
	e.do(t, http.MethodPost, "/no/such/route", testKey, "", []byte(`{}`))
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"route": authzenEvaluation, "code": "200"}, 3},
		{map[string]string{"route": authzenEvaluation, "code": "401"}, 1},
		{map[string]string{"route": "/v1/schema/read", "code": "200"}, 1},
		{map[string]string{"route": unmatchedRoute, "code": "404"}, 1},
	} {
		if got := counterValue(t, e.reg, "kengen_http_requests_total", c.labels); got != c.want {
			t.Errorf("kengen_http_requests_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if got := counterValue(t, e.reg, "kengen_http_request_duration_seconds", map[string]string{"route": authzenEvaluation}); got != 4 {
		t.Errorf("kengen_http_request_duration_seconds{route=%s} counted %v requests, want 4", authzenEvaluation, got)
	}
	if got := counterValue(t, e.reg, "grpc_server_handled_total", map[string]string{"grpc_method": "CheckPermission", "grpc_code": "OK"}); got != 3 {
		t.Errorf("grpc_server_handled_total{CheckPermission, OK} = %v, want the 3 evaluations", got)
	}
}

// TestHTTPTLS: with TLS the listener serves HTTPS with the gRPC port's certificate, and the
// loopback inside speaks TLS to the same server.
func TestHTTPTLS(t *testing.T) {
	ca := kit.NewCA(t, "kengen test CA")
	cert := ca.Issue(t, "kengen-test")
	e := startHTTPEnv(t, Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}, HTTPOptions{})
	if !strings.HasPrefix(e.base, "https://") {
		t.Fatalf("base %s is not https", e.base)
	}
	e.hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, ForceAttemptHTTP2: true}
	var ws v1.WriteSchemaResponse
	e.gateway(t, "/v1/schema/write", &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}"}, &ws)
	resp, b := e.do(t, http.MethodPost, authzenEvaluation, testKey, "application/json",
		[]byte(`{"subject":{"type":"user","id":"u"},"action":{"name":"view"},"resource":{"type":"doc","id":"1"}}`))
	if resp.StatusCode != 200 || !slices.Contains([]string{`{"decision":false}`}, strings.TrimSpace(string(b))) {
		t.Errorf("evaluation over HTTPS: %s %s", resp.Status, b)
	}
	// Plain HTTP does not get an answer.
	plain := &http.Client{Timeout: 5 * time.Second}
	if r, err := plain.Post("http"+strings.TrimPrefix(e.base, "https")+authzenEvaluation, "application/json", strings.NewReader(`{}`)); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Error("plain HTTP was answered 200 by the TLS listener")
		}
	}
}

// TestHTTPGatewayBulkExpandWatch: the bulk import's upload stream, the export stream, delete,
// expand, reflection and an open watch over HTTP answer as their gRPC calls do; stopping the
// servers ends the open watch.
func TestHTTPGatewayBulkExpandWatch(t *testing.T) {
	env := startServer(t, Options{})
	h, err := NewHTTP(env.srv, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- h.Serve(lis) }()
	e := &httpEnv{testEnv: env, base: "http://" + lis.Addr().String(), hc: &http.Client{Timeout: 30 * time.Second}}
	start := e.writeSchema("definition user {}\ndefinition group {\n relation member: user\n}\ndefinition doc {\n relation viewer: user | group#member\n permission view = viewer\n}")

	// The open watch, from before the import.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	wbody, _ := protojson.Marshal(&v1.WatchRequest{OptionalStartCursor: start})
	wreq, _ := http.NewRequestWithContext(wctx, http.MethodPost, e.base+"/v1/watch", bytes.NewReader(wbody))
	wreq.Header.Set("Authorization", "Bearer "+testKey)
	watched := make(chan *v1.WatchResponse, 16)
	go func() { // the answer's headers come with the first change: read it aside
		defer close(watched)
		wresp, err := http.DefaultClient.Do(wreq)
		if err != nil {
			return
		}
		defer wresp.Body.Close()
		sc := bufio.NewScanner(wresp.Body)
		for sc.Scan() {
			var line struct{ Result json.RawMessage }
			m := &v1.WatchResponse{}
			if json.Unmarshal(sc.Bytes(), &line) == nil && protojson.Unmarshal(line.Result, m) == nil {
				watched <- m
			}
		}
	}()

	// Import: two request messages in one newline-delimited body.
	var upload bytes.Buffer
	for _, batch := range [][]string{{"doc:1#viewer@user:ann", "doc:2#viewer@group:eng#member"}, {"group:eng#member@user:bob"}} {
		msg := &v1.ImportBulkRelationshipsRequest{}
		for _, s := range batch {
			msg.Relationships = append(msg.Relationships, rel(t, s))
		}
		b, _ := protojson.Marshal(msg)
		upload.Write(append(b, '\n'))
	}
	resp, b := e.do(t, http.MethodPost, "/v1/relationships/importbulk", testKey, "application/json", upload.Bytes())
	var imported v1.ImportBulkRelationshipsResponse
	if resp.StatusCode != 200 || protojson.Unmarshal(b, &imported) != nil || imported.GetNumLoaded() != 3 {
		t.Fatalf("importbulk: %s %s", resp.Status, b)
	}
	if got := e.dump("doc", "group"); len(got) != 3 {
		t.Fatalf("after the HTTP import the store holds %v", got)
	}

	exp := &v1.ExportBulkRelationshipsRequest{Consistency: full()}
	gotX := gatewayStream(t, e, "/v1/relationships/exportbulk", exp, func() *v1.ExportBulkRelationshipsResponse { return &v1.ExportBulkRelationshipsResponse{} })
	xs, err := e.client.ExportBulkRelationships(ctxT(t), exp)
	if err != nil {
		t.Fatal(err)
	}
	equalMessages(t, "/v1/relationships/exportbulk", gotX, collect(t, xs.Recv))

	ex := &v1.ExpandPermissionTreeRequest{Consistency: full(), Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "2"}, Permission: "view"}
	var gotE v1.ExpandPermissionTreeResponse
	e.gateway(t, "/v1/permissions/expand", ex, &gotE)
	wantE, err := e.client.ExpandPermissionTree(ctxT(t), ex)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&gotE, wantE) {
		t.Errorf("/v1/permissions/expand: %v, gRPC %v", &gotE, wantE)
	}

	var gotRS v1.ReflectSchemaResponse
	e.gateway(t, "/v1/schema/reflectschema", &v1.ReflectSchemaRequest{Consistency: full()}, &gotRS)
	wantRS, err := e.client.ReflectSchema(ctxT(t), &v1.ReflectSchemaRequest{Consistency: full()})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&gotRS, wantRS) {
		t.Errorf("/v1/schema/reflectschema: %v, gRPC %v", &gotRS, wantRS)
	}

	var del v1.DeleteRelationshipsResponse
	e.gateway(t, "/v1/relationships/delete", &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "1"}}, &del)
	if got := e.dump("doc"); len(got) != 1 || del.GetDeletedAt().GetToken() == "" {
		t.Errorf("after the HTTP delete: %v, deleted at %v", got, del.GetDeletedAt())
	}

	// The watch saw the import and the delete, as gRPC's Watch reports them.
	gw, err := e.client.Watch(wctx, &v1.WatchRequest{OptionalStartCursor: start})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		want, err := gw.Recv()
		if err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-watched:
			if !proto.Equal(got, want) {
				t.Errorf("watch response %d: HTTP %v, gRPC %v", i, got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the HTTP watch sent no response %d", i)
		}
	}

	// Stopping ends the open watch; Stop returns.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { h.Stop(ctx); close(stopped) }()
	env.srv.Stop(ctx)
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("the HTTP server did not stop with a watch open")
	}
	if err := <-served; err != nil {
		t.Errorf("HTTP Serve: %v", err)
	}
	for range watched { // the stream ends
	}
}
