package api

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"slices"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// AuthZEN's searches (§ Search APIs) return pages that resume exactly. A page token wraps the
// Authzed lookup cursor of the last result sent (cursor.go: it pins the revision of the
// first page and the request it was issued for, so that pages concatenate to the unpaged
// answer, with no duplicate or gap), together with the page size: AuthZEN asks that every
// page repeat the first page's request, limit included. Action search has no lookup to
// resume; its token carries the revision, the position and a hash of the request.
//
// Token encoding, base64url unpadded:
//
//	lookups: 0x01 | uvarint(limit) | the lookup cursor's token
//	actions: 0x02 | uvarint(limit) | uvarint(offset) | uvarint(request hash) | the ZedToken

const (
	searchTokenLookup = 0x01
	searchTokenAction = 0x02
	// maxSearchPage is the largest page a search returns, and the page size when the request
	// names none.
	maxSearchPage = 1000
)

type azPageRequest struct {
	Token string `json:"token"`
	Limit *int64 `json:"limit"`
}

type azPage struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
}

type azSearchRequest struct {
	azRequest
	Page *azPageRequest `json:"page"`
}

// azSearchResponse puts page first, as the spec recommends.
type azSearchResponse struct {
	Page    azPage `json:"page"`
	Results []any  `json:"results"`
}

// pageLimit is the page size a request asks for, at most maxSearchPage.
func pageLimit(p *azPageRequest) (int, error) {
	if p == nil || p.Limit == nil || *p.Limit == 0 {
		return maxSearchPage, nil
	}
	if *p.Limit < 0 {
		return 0, badf("page.limit: must not be negative")
	}
	return int(min(*p.Limit, maxSearchPage)), nil
}

// resumeToken decodes a page token of kind and checks that the request repeats the first
// page's limit; it returns the token's limit (the request may leave it out) and the rest of
// the token.
func resumeToken(p *azPageRequest, kind byte, limit int) (int, []byte, error) {
	bad := badf("page.token: %q is not a token this server issued for this search; pass page.next_token from the previous page", clip(p.Token))
	raw, err := base64.RawURLEncoding.Strict().DecodeString(p.Token)
	if err != nil || len(raw) < 2 || raw[0] != kind {
		return 0, nil, bad
	}
	l, n := binary.Uvarint(raw[1:])
	if n <= 0 || l == 0 || l > maxSearchPage {
		return 0, nil, bad
	}
	if p.Limit != nil && *p.Limit != 0 && limit != int(l) {
		return 0, nil, badf("page.limit: %d differs from the first page's %d; every page of a search repeats the first page's request", limit, l)
	}
	return int(l), raw[1+n:], nil
}

func lookupToken(limit int, cursor *v1.Cursor) string {
	buf := binary.AppendUvarint([]byte{searchTokenLookup}, uint64(limit))
	return base64.RawURLEncoding.EncodeToString(append(buf, cursor.GetToken()...))
}

// lookupPage is the limit and cursor of a lookup search's page: the first page's, or the
// page the request's token resumes.
func lookupPage(p *azPageRequest) (int, *v1.Cursor, error) {
	limit, err := pageLimit(p)
	if err != nil || p == nil || p.Token == "" {
		return limit, nil, err
	}
	limit, rest, err := resumeToken(p, searchTokenLookup, limit)
	if err != nil {
		return 0, nil, err
	}
	return limit, &v1.Cursor{Token: string(rest)}, nil
}

// searchResource is POST /access/v1/search/resource: LookupResources of resource.type.
func (h *HTTPServer) searchResource(c *authzenCall) error {
	var req azSearchRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	sub, err := subjectOf("subject", req.Subject)
	if err != nil {
		return err
	}
	perm, err := actionOf("action", req.Action)
	if err != nil {
		return err
	}
	if req.Resource == nil || req.Resource.Type == "" {
		return badf("resource: needs a type, the type of the resources to find")
	}
	cons, caveat, err := splitContext("context", req.Context)
	if err != nil {
		return err
	}
	limit, cursor, err := lookupPage(req.Page)
	if err != nil {
		return err
	}
	// One more than the page: whether it comes says whether there is a next page.
	stream, err := v1.NewPermissionsServiceClient(h.conn).LookupResources(c.grpcContext(), &v1.LookupResourcesRequest{
		Consistency: cons, ResourceObjectType: req.Resource.Type, Permission: perm, Subject: sub, Context: caveat,
		OptionalLimit: uint32(limit + 1), OptionalCursor: cursor,
	})
	if err != nil {
		return err
	}
	out := azSearchResponse{Results: []any{}}
	var last *v1.LookupResourcesResponse
	var token *v1.ZedToken
	for n := 0; ; n++ {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		token = r.GetLookedUpAt()
		if n == limit {
			out.Page.NextToken = lookupToken(limit, last.GetAfterResultCursor())
			break
		}
		last = r
		// A result a caveat makes conditional is not permitted: evaluating it would deny.
		if r.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
			out.Results = append(out.Results, azEntity{Type: req.Resource.Type, ID: r.GetResourceObjectId()})
		}
	}
	out.Page.Count = len(out.Results)
	return c.reply(token, out)
}

// searchSubject is POST /access/v1/search/subject: LookupSubjects of subject.type (with
// subject.properties.relation). A wildcard grant is the result {"id": "*"}, with the
// subjects it excludes in properties.excluded; page.limit counts the other results.
func (h *HTTPServer) searchSubject(c *authzenCall) error {
	var req azSearchRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	res, err := resourceOf("resource", req.Resource)
	if err != nil {
		return err
	}
	perm, err := actionOf("action", req.Action)
	if err != nil {
		return err
	}
	if req.Subject == nil || req.Subject.Type == "" {
		return badf("subject: needs a type, the type of the subjects to find")
	}
	rel, err := relationOf("subject", req.Subject)
	if err != nil {
		return err
	}
	cons, caveat, err := splitContext("context", req.Context)
	if err != nil {
		return err
	}
	limit, cursor, err := lookupPage(req.Page)
	if err != nil {
		return err
	}
	stream, err := v1.NewPermissionsServiceClient(h.conn).LookupSubjects(c.grpcContext(), &v1.LookupSubjectsRequest{
		Consistency: cons, Resource: res, Permission: perm, SubjectObjectType: req.Subject.Type,
		OptionalSubjectRelation: rel, Context: caveat,
		OptionalConcreteLimit: uint32(limit + 1), OptionalCursor: cursor,
	})
	if err != nil {
		return err
	}
	out := azSearchResponse{Results: []any{}}
	var last *v1.LookupSubjectsResponse
	var token *v1.ZedToken
	concrete := 0
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		token = r.GetLookedUpAt()
		s := r.GetSubject()
		wildcard := s.GetSubjectObjectId() == "*"
		if !wildcard && concrete == limit {
			out.Page.NextToken = lookupToken(limit, last.GetAfterResultCursor())
			break
		}
		if !wildcard {
			concrete++
		}
		last = r
		if s.GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
			continue
		}
		e := azEntity{Type: req.Subject.Type, ID: s.GetSubjectObjectId()}
		if rel != "" {
			e.Properties = map[string]any{"relation": rel}
		}
		if wildcard {
			excluded := []string{}
			for _, x := range r.GetExcludedSubjects() {
				excluded = append(excluded, x.GetSubjectObjectId())
			}
			e.Properties = map[string]any{"excluded": excluded}
		}
		out.Results = append(out.Results, e)
	}
	out.Page.Count = len(out.Results)
	return c.reply(token, out)
}

// searchAction is POST /access/v1/search/action: every permission of resource.type's
// definition, checked in bulk for the subject on the resource, all at one revision; those it
// has are the results, in the schema's name order.
func (h *HTTPServer) searchAction(c *authzenCall) error {
	var req azSearchRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	sub, err := subjectOf("subject", req.Subject)
	if err != nil {
		return err
	}
	res, err := resourceOf("resource", req.Resource)
	if err != nil {
		return err
	}
	cons, caveat, err := splitContext("context", req.Context)
	if err != nil {
		return err
	}
	limit, err := pageLimit(req.Page)
	if err != nil {
		return err
	}
	hash, err := actionSearchHash(req.azRequest)
	if err != nil {
		return err
	}
	offset := 0
	if req.Page != nil && req.Page.Token != "" {
		var rest []byte
		if limit, rest, err = resumeToken(req.Page, searchTokenAction, limit); err != nil {
			return err
		}
		off, n1 := binary.Uvarint(rest)
		hv, n2 := uint64(0), 0
		if n1 > 0 {
			hv, n2 = binary.Uvarint(rest[n1:])
		}
		if n1 <= 0 || n2 <= 0 {
			return badf("page.token: %q is not a token this server issued for this search; pass page.next_token from the previous page", clip(req.Page.Token))
		}
		if hv != hash {
			return badf("page.token: was issued for a different search; every page of a search repeats the first page's subject, resource and context")
		}
		offset = int(off)
		cons = &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: string(rest[n1+n2:])}}}
	}
	ctx := c.grpcContext()
	schema, err := v1.NewSchemaServiceClient(h.conn).ReflectSchema(ctx, &v1.ReflectSchemaRequest{Consistency: cons})
	if err != nil {
		return err
	}
	var perms []string
	found := false
	for _, d := range schema.GetDefinitions() {
		if d.GetName() != res.GetObjectType() {
			continue
		}
		found = true
		for _, p := range d.GetPermissions() {
			perms = append(perms, p.GetName())
		}
	}
	if !found {
		return badf("resource.type: the schema has no definition %q", clip(res.GetObjectType()))
	}
	slices.Sort(perms)
	at := schema.GetReadAt()
	// The permissions are checked in bulk calls of at most the server's MaxCheckBulkItems, all
	// at the schema's snapshot, so a type with more permissions than one call takes is searched
	// whole.
	var allowed []string
	for first := 0; first < len(perms); first += h.srv.opts.MaxCheckBulkItems {
		chunk := perms[first:min(first+h.srv.opts.MaxCheckBulkItems, len(perms))]
		bulk := &v1.CheckBulkPermissionsRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: at}}}
		for _, p := range chunk {
			bulk.Items = append(bulk.Items, &v1.CheckBulkPermissionsRequestItem{Resource: res, Permission: p, Subject: sub, Context: caveat})
		}
		resp, err := v1.NewPermissionsServiceClient(h.conn).CheckBulkPermissions(ctx, bulk)
		if err != nil {
			return err
		}
		for i, pair := range resp.GetPairs() {
			if e := pair.GetError(); e != nil {
				return badf("checking permission %s: %s", chunk[i], e.GetMessage())
			}
			if pair.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
				allowed = append(allowed, chunk[i])
			}
		}
	}
	out := azSearchResponse{Results: []any{}}
	for i := offset; i < len(allowed) && i < offset+limit; i++ {
		out.Results = append(out.Results, azAction{Name: allowed[i]})
	}
	if next := offset + limit; next < len(allowed) {
		buf := binary.AppendUvarint([]byte{searchTokenAction}, uint64(limit))
		buf = binary.AppendUvarint(buf, uint64(next))
		buf = binary.AppendUvarint(buf, hash)
		out.Page.NextToken = base64.RawURLEncoding.EncodeToString(append(buf, at.GetToken()...))
	}
	out.Page.Count = len(out.Results)
	return c.reply(at, out)
}

// actionSearchHash identifies an action search's request across its pages: subject,
// resource and caveat context (json.Marshal sorts map keys, so the hash is stable).
func actionSearchHash(req azRequest) (uint64, error) {
	b, err := json.Marshal([]any{req.Subject, req.Resource, withoutConsistency(req.Context)})
	if err != nil {
		return 0, badf("the request does not encode back to JSON: %v", err)
	}
	f := fnv.New64a()
	_, _ = f.Write(b)
	return f.Sum64(), nil
}
