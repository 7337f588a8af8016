package api

// The AuthZEN Authorization API 1.0 (OpenID Foundation, final), mapped onto the Authzed v1
// services (docs/http.md has the whole mapping):
//
//	POST /access/v1/evaluation         → CheckPermission
//	POST /access/v1/evaluations        → CheckBulkPermissions, with the evaluations semantics
//	POST /access/v1/search/resource    → LookupResources, paged (authzen_search.go)
//	POST /access/v1/search/subject     → LookupSubjects, paged
//	POST /access/v1/search/action      → the resource type's permissions, checked in bulk
//	GET  /.well-known/authzen-configuration → the PDP metadata
//
// action.name is the permission; subject and resource types and ids are object types and
// ids; subject.properties.relation is the subject relation (group#member); the request's
// context is the caveat context, except its "consistency" member, which is an Authzed v1
// Consistency in its JSON form. Every answer carries the revision it was read at in the
// ZedToken response header. The calls go through the loopback connection like the gateway's,
// so auth, request ids, validation and the error mapping are the gRPC API's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// AuthZEN paths.
const (
	authzenEvaluation     = "/access/v1/evaluation"
	authzenEvaluations    = "/access/v1/evaluations"
	authzenSearchSubject  = "/access/v1/search/subject"
	authzenSearchResource = "/access/v1/search/resource"
	authzenSearchAction   = "/access/v1/search/action"
	authzenConfiguration  = "/.well-known/authzen-configuration"
)

// zedTokenHeader carries the revision an AuthZEN answer was read at.
const zedTokenHeader = "ZedToken"

// consistencyKey is the member of an AuthZEN context that is the read's consistency rather
// than caveat context.
const consistencyKey = "consistency"

func isAuthZENPath(p string) bool {
	return strings.HasPrefix(p, "/access/v1/") || p == authzenConfiguration
}

// mountAuthZEN registers the AuthZEN routes on mux.
func (h *HTTPServer) mountAuthZEN(mux *http.ServeMux) {
	for path, serve := range map[string]func(*authzenCall) error{
		authzenEvaluation:     h.evaluation,
		authzenEvaluations:    h.evaluations,
		authzenSearchSubject:  h.searchSubject,
		authzenSearchResource: h.searchResource,
		authzenSearchAction:   h.searchAction,
	} {
		mux.Handle(path, h.authzenRoute(path, serve))
	}
	mux.HandleFunc(authzenConfiguration, h.configuration)
	// Anything else under /access/ is not an AuthZEN endpoint: answer in AuthZEN's format
	// rather than the gateway's.
	mux.HandleFunc("/access/", func(w http.ResponseWriter, r *http.Request) {
		writeAuthZENError(w, http.StatusNotFound, fmt.Sprintf("%s is not an AuthZEN endpoint of this server; GET %s lists them", r.URL.Path, authzenConfiguration))
	})
}

// authzenCall is one AuthZEN request being served.
type authzenCall struct {
	w  http.ResponseWriter
	r  *http.Request
	id string // the request id, sent on every gRPC call and in the response
}

// authzenRoute serves one AuthZEN endpoint: POST only; the handler's error becomes the
// status and plain-text message AuthZEN specifies.
func (h *HTTPServer) authzenRoute(path string, serve func(*authzenCall) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRoute(r.Context(), path)
		id := requestID(metadata.NewIncomingContext(r.Context(), metadata.Pairs(requestIDHeader, r.Header.Get(requestIDHeader))))
		w.Header().Set(requestIDHeader, id)
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeAuthZENError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s takes POST with a JSON body, not %s", path, r.Method))
			return
		}
		r, ok := h.admitBody(w, r)
		if !ok {
			return
		}
		c := &authzenCall{w: w, r: r, id: id}
		if err := serve(c); err != nil {
			var bad badRequest
			var tooLarge bodyTooLargeError
			switch {
			case errors.As(err, &tooLarge):
				writeTooLarge(w, r, tooLarge.limit)
			case errors.As(err, &bad):
				writeAuthZENError(w, http.StatusBadRequest, bad.msg)
			default:
				code := httpStatus(err)
				if code == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="kengen"`)
				}
				writeAuthZENError(w, code, status.Convert(err).Message())
			}
		}
	})
}

// writeAuthZENError answers with AuthZEN's error body: the message as a string.
func writeAuthZENError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// badRequest is a 400 the AuthZEN layer finds itself: a body that is not the JSON asked for.
type badRequest struct{ msg string }

func (b badRequest) Error() string { return b.msg }

func badf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

// grpcContext is the outgoing context of the call's gRPC requests: the client's
// authorization header, checked by the gRPC interceptor as any token is, and the request id.
func (c *authzenCall) grpcContext() context.Context {
	md := metadata.Pairs(requestIDHeader, c.id)
	for _, a := range c.r.Header.Values("Authorization") {
		md.Append("authorization", a)
	}
	return metadata.NewOutgoingContext(c.r.Context(), md)
}

// reply writes a 200 JSON answer read at token.
func (c *authzenCall) reply(token *v1.ZedToken, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if token.GetToken() != "" {
		c.w.Header().Set(zedTokenHeader, token.GetToken())
	}
	c.w.Header().Set("Content-Type", "application/json")
	_, _ = c.w.Write(append(b, '\n'))
	return nil
}

// decode reads the call's JSON body into v, with errors that say what to fix.
func (c *authzenCall) decode(v any) error {
	raw, err := io.ReadAll(c.r.Body)
	if err != nil {
		var tooLarge bodyTooLargeError
		if errors.As(err, &tooLarge) {
			return tooLarge
		}
		return badf("reading the request body: %v", err)
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return badf("the request body is empty; send a JSON object (Content-Type: application/json)")
	}
	err = json.Unmarshal(raw, v)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syntax):
		return badf("the request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return badf("the request body must be a JSON object, not a JSON %s", typ.Value)
	case errors.As(err, &typ):
		return badf("%s: must be a JSON %s, not a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	default:
		return badf("the request body is not the JSON expected: %v", err)
	}
}

// jsonKind names a Go kind as the JSON type it decodes from.
func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "map", "struct", "ptr":
		return "object"
	case "slice":
		return "array"
	case "bool":
		return "boolean"
	default:
		return "number"
	}
}

// The AuthZEN information model (§ Information Model). Unknown members are ignored, as the
// spec requires.
type (
	azEntity struct {
		Type       string         `json:"type"`
		ID         string         `json:"id,omitempty"`
		Properties map[string]any `json:"properties,omitempty"`
	}
	azAction struct {
		Name       string         `json:"name"`
		Properties map[string]any `json:"properties,omitempty"`
	}
	azRequest struct {
		Subject  *azEntity      `json:"subject"`
		Action   *azAction      `json:"action"`
		Resource *azEntity      `json:"resource"`
		Context  map[string]any `json:"context"`
	}
	azDecision struct {
		Decision bool           `json:"decision"`
		Context  map[string]any `json:"context,omitempty"`
	}
)

// subjectOf is the Authzed subject of an AuthZEN subject: type, id and
// properties.relation.
func subjectOf(field string, e *azEntity) (*v1.SubjectReference, error) {
	if e == nil {
		return nil, badf("%s: is required", field)
	}
	if e.Type == "" || e.ID == "" {
		return nil, badf("%s: needs a type and an id", field)
	}
	rel, err := relationOf(field, e)
	if err != nil {
		return nil, err
	}
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: e.Type, ObjectId: e.ID}, OptionalRelation: rel}, nil
}

// relationOf is an entity's properties.relation: the subject relation (group#member).
func relationOf(field string, e *azEntity) (string, error) {
	v, ok := e.Properties["relation"]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", badf("%s.properties.relation: must be a string, the subject relation (member in group#member)", field)
	}
	return s, nil
}

func resourceOf(field string, e *azEntity) (*v1.ObjectReference, error) {
	if e == nil {
		return nil, badf("%s: is required", field)
	}
	if e.Type == "" || e.ID == "" {
		return nil, badf("%s: needs a type and an id", field)
	}
	return &v1.ObjectReference{ObjectType: e.Type, ObjectId: e.ID}, nil
}

func actionOf(field string, a *azAction) (string, error) {
	if a == nil || a.Name == "" {
		return "", badf("%s: needs a name, the permission to check", field)
	}
	return a.Name, nil
}

// splitContext splits an AuthZEN context into the read's consistency (its "consistency"
// member, an Authzed v1 Consistency in JSON: {"fully_consistent": true},
// {"at_least_as_fresh": {"token": "..."}}) and the caveat context (every other member).
func splitContext(field string, ctx map[string]any) (*v1.Consistency, *structpb.Struct, error) {
	var cons *v1.Consistency
	caveat := make(map[string]any, len(ctx))
	for k, v := range ctx {
		if k != consistencyKey {
			caveat[k] = v
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, nil, badf("%s.%s: %v", field, consistencyKey, err)
		}
		cons = &v1.Consistency{}
		if err := protojson.Unmarshal(raw, cons); err != nil {
			return nil, nil, badf(`%s.%s: %v; send one of {"minimize_latency": true}, {"fully_consistent": true}, {"at_least_as_fresh": {"token": "<ZedToken>"}}, {"at_exact_snapshot": {"token": "<ZedToken>"}}`, field, consistencyKey, err)
		}
	}
	if len(caveat) == 0 {
		return cons, nil, nil
	}
	st, err := structpb.NewStruct(caveat)
	if err != nil {
		return nil, nil, badf("%s: %v", field, err)
	}
	return cons, st, nil
}

// decisionOf turns a permissionship into an AuthZEN decision: only HAS_PERMISSION permits;
// a caveat that lacks context denies and names what is missing.
func decisionOf(p v1.CheckPermissionResponse_Permissionship, missing []string) azDecision {
	switch p {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		return azDecision{Decision: true}
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return azDecision{Context: map[string]any{
			"reason":          "a caveat needs context the request did not give",
			"missing_context": missing,
		}}
	default:
		return azDecision{}
	}
}

// evaluation is POST /access/v1/evaluation: one CheckPermission.
func (h *HTTPServer) evaluation(c *authzenCall) error {
	var req azRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	return h.evaluate(c, req)
}

// evaluate answers one evaluation.
func (h *HTTPServer) evaluate(c *authzenCall, req azRequest) error {
	creq, err := checkRequestOf("", req)
	if err != nil {
		return err
	}
	resp, err := v1.NewPermissionsServiceClient(h.conn).CheckPermission(c.grpcContext(), creq)
	if err != nil {
		return err
	}
	return c.reply(resp.GetCheckedAt(), decisionOf(resp.GetPermissionship(), resp.GetPartialCaveatInfo().GetMissingRequiredContext()))
}

// checkRequestOf is the CheckPermission of one evaluation; prefix names it in errors
// ("evaluations[2].").
func checkRequestOf(prefix string, req azRequest) (*v1.CheckPermissionRequest, error) {
	sub, err := subjectOf(prefix+"subject", req.Subject)
	if err != nil {
		return nil, err
	}
	res, err := resourceOf(prefix+"resource", req.Resource)
	if err != nil {
		return nil, err
	}
	perm, err := actionOf(prefix+"action", req.Action)
	if err != nil {
		return nil, err
	}
	cons, caveat, err := splitContext(prefix+"context", req.Context)
	if err != nil {
		return nil, err
	}
	return &v1.CheckPermissionRequest{Consistency: cons, Resource: res, Permission: perm, Subject: sub, Context: caveat}, nil
}

// Evaluations semantics (§ Evaluations semantics).
const (
	executeAll          = "execute_all"
	denyOnFirstDeny     = "deny_on_first_deny"
	permitOnFirstPermit = "permit_on_first_permit"
)

type azEvaluationsRequest struct {
	azRequest
	Evaluations []azRequest `json:"evaluations"`
	Options     struct {
		Semantic string `json:"evaluations_semantic"`
	} `json:"options"`
}

// evaluations is POST /access/v1/evaluations: one CheckBulkPermissions over every
// evaluation, each defaulting to the top-level subject, action, resource and context. All
// are read at one revision, so that a short-circuiting semantic answers what evaluating them
// in order would: the answers are cut after the first deny (or permit).
func (h *HTTPServer) evaluations(c *authzenCall) error {
	var req azEvaluationsRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	sem := req.Options.Semantic
	switch sem {
	case "", executeAll, denyOnFirstDeny, permitOnFirstPermit:
	default:
		return badf("options.evaluations_semantic: %q is not one of %s, %s, %s", clip(sem), executeAll, denyOnFirstDeny, permitOnFirstPermit)
	}
	if len(req.Evaluations) == 0 { // the single evaluation, as the spec asks
		return h.evaluate(c, req.azRequest)
	}
	cons, _, err := splitContext("context", req.Context)
	if err != nil {
		return err
	}
	bulk := &v1.CheckBulkPermissionsRequest{Consistency: cons}
	for i, e := range req.Evaluations {
		prefix := fmt.Sprintf("evaluations[%d].", i)
		if _, ok := e.Context[consistencyKey]; ok {
			return badf("%scontext.%s: consistency applies to the whole request; set it in the top-level context", prefix, consistencyKey)
		}
		if e.Subject == nil {
			e.Subject = req.Subject
		}
		if e.Action == nil {
			e.Action = req.Action
		}
		if e.Resource == nil {
			e.Resource = req.Resource
		}
		if e.Context == nil {
			e.Context = withoutConsistency(req.Context)
		}
		one, err := checkRequestOf(prefix, e)
		if err != nil {
			return err
		}
		bulk.Items = append(bulk.Items, &v1.CheckBulkPermissionsRequestItem{
			Resource: one.Resource, Permission: one.Permission, Subject: one.Subject, Context: one.Context,
		})
	}
	resp, err := v1.NewPermissionsServiceClient(h.conn).CheckBulkPermissions(c.grpcContext(), bulk)
	if err != nil {
		return err
	}
	out := struct {
		Evaluations []azDecision `json:"evaluations"`
	}{Evaluations: []azDecision{}}
	for _, pair := range resp.GetPairs() {
		var d azDecision
		if e := pair.GetError(); e != nil {
			d.Context = map[string]any{"error": map[string]any{
				"status":  httpStatus(status.ErrorProto(e)),
				"message": e.GetMessage(),
			}}
		} else {
			it := pair.GetItem()
			d = decisionOf(it.GetPermissionship(), it.GetPartialCaveatInfo().GetMissingRequiredContext())
		}
		out.Evaluations = append(out.Evaluations, d)
		if (sem == denyOnFirstDeny && !d.Decision) || (sem == permitOnFirstPermit && d.Decision) {
			break
		}
	}
	return c.reply(resp.GetCheckedAt(), out)
}

// withoutConsistency is ctx without its consistency member: the caveat context an
// evaluation inherits.
func withoutConsistency(ctx map[string]any) map[string]any {
	if _, ok := ctx[consistencyKey]; !ok {
		return ctx
	}
	out := make(map[string]any, len(ctx))
	for k, v := range ctx {
		if k != consistencyKey {
			out[k] = v
		}
	}
	return out
}

// configuration is GET /.well-known/authzen-configuration: the PDP metadata, with this
// listener's own address as the PDP identifier. It needs no token.
func (h *HTTPServer) configuration(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), authzenConfiguration)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeAuthZENError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s takes GET, not %s", authzenConfiguration, r.Method))
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := scheme + "://" + r.Host
	b, _ := json.Marshal(map[string]string{
		"policy_decision_point":       base,
		"access_evaluation_endpoint":  base + authzenEvaluation,
		"access_evaluations_endpoint": base + authzenEvaluations,
		"search_subject_endpoint":     base + authzenSearchSubject,
		"search_resource_endpoint":    base + authzenSearchResource,
		"search_action_endpoint":      base + authzenSearchAction,
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(append(b, '\n'))
}
