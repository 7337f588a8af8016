package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/check/validation"
)

// az posts an AuthZEN request and decodes the 200 answer into out; it returns the ZedToken
// header.
func (e *httpEnv) az(t *testing.T, path string, req, out any) string {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	resp, b := e.do(t, http.MethodPost, path, testKey, "application/json", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %s: %s: %s", path, body, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("POST %s: Content-Type %q, AuthZEN requires application/json", path, ct)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("POST %s: %v\n%s", path, err, b)
	}
	return resp.Header.Get(zedTokenHeader)
}

// azRequestOf is the AuthZEN request of a check, read fully consistent.
func azRequestOf(r check.Request) map[string]any {
	sub := map[string]any{"type": r.SubjectType, "id": r.SubjectID}
	if r.SubjectRelation != "" {
		sub["properties"] = map[string]any{"relation": r.SubjectRelation}
	}
	ctx := map[string]any{"consistency": map[string]any{"fully_consistent": true}}
	for k, v := range r.Context {
		ctx[k] = v
	}
	return map[string]any{
		"subject":  sub,
		"action":   map[string]any{"name": r.Permission},
		"resource": map[string]any{"type": r.ResourceType, "id": r.ResourceID},
		"context":  ctx,
	}
}

type azSearchAnswer struct {
	Page struct {
		NextToken *string `json:"next_token"`
		Count     int     `json:"count"`
	} `json:"page"`
	Results []struct {
		Type       string         `json:"type"`
		ID         string         `json:"id"`
		Name       string         `json:"name"`
		Properties map[string]any `json:"properties"`
	} `json:"results"`
}

// searchAll follows a search's pages of limit results to the end; it returns every result
// (type:id, or the action name) and the number of pages. Every page must be at the first
// page's revision.
func (e *httpEnv) searchAll(t *testing.T, path string, req map[string]any, limit int) ([]string, int) {
	t.Helper()
	var all []string
	token, zed := "", ""
	for pages := 1; ; pages++ {
		page := map[string]any{"limit": limit}
		if token != "" {
			page["token"] = token
		}
		req["page"] = page
		var ans azSearchAnswer
		z := e.az(t, path, req, &ans)
		if zed == "" {
			zed = z
		} else if z != zed {
			t.Errorf("%s page %d read at %s, the first page at %s", path, pages, z, zed)
		}
		if ans.Page.NextToken == nil {
			t.Fatalf("%s page %d has no page.next_token", path, pages)
		}
		if len(ans.Results) > limit || ans.Page.Count != len(ans.Results) {
			t.Errorf("%s page %d: %d results, count %d, limit %d", path, pages, len(ans.Results), ans.Page.Count, limit)
		}
		for _, r := range ans.Results {
			if r.Name != "" {
				all = append(all, r.Name)
			} else {
				all = append(all, r.Type+":"+r.ID)
			}
		}
		if *ans.Page.NextToken == "" {
			return all, pages
		}
		if pages > 1000 {
			t.Fatalf("%s: more than 1000 pages", path)
		}
		token = *ans.Page.NextToken
	}
}

// TestAuthZENAgreesWithCheck: on every seed CRM model, written over SpiceDB's HTTP API,
// AuthZEN evaluation and evaluations (each semantic) answer what CheckPermission does, and
// the paged resource, subject and action searches return what LookupResources,
// LookupSubjects and checks of each permission do, page after page.
func TestAuthZENAgreesWithCheck(t *testing.T) {
	paths, err := filepath.Glob("../schema/examples/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed models (%v)", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			e := startHTTPEnv(t, Options{}, HTTPOptions{})
			doc := e.loadSeed(t, filepath.Base(path))
			authzenAgreesOnModel(t, e, doc.Assertions)
		})
	}
}

func authzenAgreesOnModel(t *testing.T, e *httpEnv, assertions []validation.Assertion) {
	var evals []any
	var want []bool
	for _, a := range assertions {
		req := checkRequestToProto(t, a.Request)
		req.Consistency = full()
		resp, err := e.client.CheckPermission(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		has := resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
		var got azDecision
		zed := e.az(t, authzenEvaluation, azRequestOf(a.Request), &got)
		if got.Decision != has {
			t.Errorf("line %d %s: evaluation %v, CheckPermission %v", a.Line, a.Text, got.Decision, resp.GetPermissionship())
		}
		if zed == "" {
			t.Errorf("line %d: evaluation without a ZedToken header", a.Line)
		}
		one := azRequestOf(a.Request)
		delete(one["context"].(map[string]any), "consistency") // the request's, at the top level
		evals = append(evals, one)
		want = append(want, has)
	}
	for _, sem := range []string{"", executeAll, denyOnFirstDeny, permitOnFirstPermit} {
		body := map[string]any{"evaluations": evals, "context": map[string]any{"consistency": map[string]any{"fully_consistent": true}}}
		if sem != "" {
			body["options"] = map[string]any{"evaluations_semantic": sem}
		}
		var got struct{ Evaluations []azDecision }
		e.az(t, authzenEvaluations, body, &got)
		expect := want
		for i, w := range want {
			if (sem == denyOnFirstDeny && !w) || (sem == permitOnFirstPermit && w) {
				expect = want[:i+1]
				break
			}
		}
		var decisions []bool
		for _, d := range got.Evaluations {
			decisions = append(decisions, d.Decision)
		}
		if !slices.Equal(decisions, expect) {
			t.Errorf("evaluations %q: %v, CheckPermission says %v", sem, decisions, expect)
		}
	}

	seen := map[string]bool{}
	for _, a := range assertions {
		r := a.Request
		if len(r.Context) > 0 {
			continue
		}
		sub := map[string]any{"type": r.SubjectType, "id": r.SubjectID}
		if r.SubjectRelation != "" {
			sub["properties"] = map[string]any{"relation": r.SubjectRelation}
		}
		fully := map[string]any{"consistency": map[string]any{"fully_consistent": true}}

		if key := fmt.Sprint("resources", r.SubjectType, r.SubjectID, r.SubjectRelation, r.Permission, r.ResourceType); !seen[key] {
			seen[key] = true
			var wantIDs []string
			for _, m := range collect(t, lookupResourcesStream(t, e, &v1.LookupResourcesRequest{Consistency: full(), ResourceObjectType: r.ResourceType, Permission: r.Permission,
				Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.SubjectType, ObjectId: r.SubjectID}, OptionalRelation: r.SubjectRelation}})) {
				if m.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
					wantIDs = append(wantIDs, r.ResourceType+":"+m.GetResourceObjectId())
				}
			}
			got, pages := e.searchAll(t, authzenSearchResource, map[string]any{
				"subject": sub, "action": map[string]any{"name": r.Permission}, "resource": map[string]any{"type": r.ResourceType}, "context": fully,
			}, 2)
			if !slices.Equal(got, wantIDs) {
				t.Errorf("resource search %s: %v, LookupResources %v", key, got, wantIDs)
			}
			if want := max(1, (len(wantIDs)+1)/2); pages != want {
				t.Errorf("resource search %s: %d pages of 2 for %d results, want %d", key, pages, len(wantIDs), want)
			}
		}

		if key := fmt.Sprint("subjects", r.ResourceType, r.ResourceID, r.Permission, r.SubjectType, r.SubjectRelation); !seen[key] {
			seen[key] = true
			var wantIDs []string
			for _, m := range collect(t, lookupSubjectsStream(t, e, &v1.LookupSubjectsRequest{Consistency: full(),
				Resource: &v1.ObjectReference{ObjectType: r.ResourceType, ObjectId: r.ResourceID}, Permission: r.Permission,
				SubjectObjectType: r.SubjectType, OptionalSubjectRelation: r.SubjectRelation})) {
				if m.GetSubject().GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
					wantIDs = append(wantIDs, r.SubjectType+":"+m.GetSubject().GetSubjectObjectId())
				}
			}
			subject := map[string]any{"type": r.SubjectType}
			if r.SubjectRelation != "" {
				subject["properties"] = map[string]any{"relation": r.SubjectRelation}
			}
			got, _ := e.searchAll(t, authzenSearchSubject, map[string]any{
				"subject": subject, "action": map[string]any{"name": r.Permission},
				"resource": map[string]any{"type": r.ResourceType, "id": r.ResourceID}, "context": fully,
			}, 2)
			if !slices.Equal(got, wantIDs) {
				t.Errorf("subject search %s: %v, LookupSubjects %v", key, got, wantIDs)
			}
		}

		if key := fmt.Sprint("actions", r.SubjectType, r.SubjectID, r.SubjectRelation, r.ResourceType, r.ResourceID); !seen[key] {
			seen[key] = true
			rs, err := e.client.ReflectSchema(ctxT(t), &v1.ReflectSchemaRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var wantNames []string
			for _, d := range rs.GetDefinitions() {
				if d.GetName() != r.ResourceType {
					continue
				}
				for _, p := range d.GetPermissions() {
					rr := r
					rr.Permission = p.GetName()
					req := checkRequestToProto(t, rr)
					req.Consistency = full()
					resp, err := e.client.CheckPermission(ctxT(t), req)
					if err != nil {
						t.Fatal(err)
					}
					if resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
						wantNames = append(wantNames, p.GetName())
					}
				}
			}
			slices.Sort(wantNames)
			got, _ := e.searchAll(t, authzenSearchAction, map[string]any{
				"subject": sub, "resource": map[string]any{"type": r.ResourceType, "id": r.ResourceID}, "context": fully,
			}, 1)
			if !slices.Equal(got, wantNames) {
				t.Errorf("action search %s: %v, checks of each permission %v", key, got, wantNames)
			}
		}
	}
}

// TestAuthZENPagesResumeAtTheirSnapshot: a search's later pages are read at the first page's
// revision, so a write between pages neither adds nor drops a result; a fresh search sees
// it. A token replayed with another limit or another request is refused.
func TestAuthZENPagesResumeAtTheirSnapshot(t *testing.T) {
	e := startHTTPEnv(t, Options{}, HTTPOptions{})
	e.loadSeed(t, "prosales.yaml")
	e.touch("deal:a1#organization@organization:acme", "deal:a1#sub_assignee@user:tanaka",
		"deal:a2#organization@organization:acme", "deal:a2#sub_assignee@user:tanaka")
	req := map[string]any{
		"subject": map[string]any{"type": "user", "id": "tanaka"}, "action": map[string]any{"name": "view"},
		"resource": map[string]any{"type": "deal"}, "context": map[string]any{"consistency": map[string]any{"fully_consistent": true}},
		"page": map[string]any{"limit": 1},
	}
	before, _ := e.searchAll(t, authzenSearchResource, req, 1)
	if len(before) < 3 {
		t.Fatalf("tanaka views %v; the test needs at least three deals", before)
	}

	req["page"] = map[string]any{"limit": 1}
	var first azSearchAnswer
	e.az(t, authzenSearchResource, req, &first)
	// Between the pages: a new deal tanaka views, sorting first and last.
	e.touch("deal:a0#organization@organization:acme", "deal:a0#sub_assignee@user:tanaka",
		"deal:zz#organization@organization:acme", "deal:zz#sub_assignee@user:tanaka")
	got := []string{"deal:" + first.Results[0].ID}
	token := *first.Page.NextToken
	for token != "" {
		req["page"] = map[string]any{"limit": 1, "token": token}
		var ans azSearchAnswer
		e.az(t, authzenSearchResource, req, &ans)
		for _, r := range ans.Results {
			got = append(got, r.Type+":"+r.ID)
		}
		token = *ans.Page.NextToken
	}
	if !slices.Equal(got, before) {
		t.Errorf("pages across a write: %v; the snapshot of the first page holds %v", got, before)
	}
	after, _ := e.searchAll(t, authzenSearchResource, req, 1)
	if !slices.Contains(after, "deal:a0") || !slices.Contains(after, "deal:zz") {
		t.Errorf("a fresh search %v misses the deals written since", after)
	}

	// The same token with another limit, or for another subject, is refused.
	req["page"] = map[string]any{"limit": 1}
	e.az(t, authzenSearchResource, req, &first)
	for name, change := range map[string]func(map[string]any){
		"limit":   func(m map[string]any) { m["page"] = map[string]any{"limit": 2, "token": *first.Page.NextToken} },
		"subject": func(m map[string]any) { m["subject"] = map[string]any{"type": "user", "id": "sato"} },
		"search":  nil,
	} {
		m := map[string]any{}
		for k, v := range req {
			m[k] = v
		}
		m["page"] = map[string]any{"limit": 1, "token": *first.Page.NextToken}
		path := authzenSearchResource
		if change != nil {
			change(m)
		} else { // a resource search's token on a subject search
			path = authzenSearchSubject
			m["resource"] = map[string]any{"type": "deal", "id": "d1"}
			m["subject"] = map[string]any{"type": "user"}
		}
		b, _ := json.Marshal(m)
		resp, body := e.do(t, http.MethodPost, path, testKey, "application/json", b)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "page") && !strings.Contains(string(body), "cursor") {
			t.Errorf("a token replayed with another %s: %s %s", name, resp.Status, body)
		}
	}
}

// TestAuthZENContextAndConsistency: the context is the caveat context (a caveat without its
// parameter denies and names it), subject.properties.relation is the subject relation, and
// context.consistency picks the revision: at_exact_snapshot of an earlier ZedToken answers
// as of then.
func TestAuthZENContextAndConsistency(t *testing.T) {
	e := startHTTPEnv(t, Options{}, HTTPOptions{})
	e.writeSchema(`caveat from_office(ip string) {
  ip == "10.0.0.1"
}
definition user {}
definition group {
  relation member: user
}
definition doc {
  relation viewer: user | user with from_office | group#member
  permission view = viewer
}`)
	e.touch("doc:open#viewer@user:ann", "doc:office#viewer@user:bob[from_office]", "doc:team#viewer@group:eng#member", "group:eng#member@user:cat")
	eval := func(sub map[string]any, doc string, ctx map[string]any) (azDecision, string) {
		var d azDecision
		z := e.az(t, authzenEvaluation, map[string]any{"subject": sub, "action": map[string]any{"name": "view"},
			"resource": map[string]any{"type": "doc", "id": doc}, "context": ctx}, &d)
		return d, z
	}
	bob := map[string]any{"type": "user", "id": "bob"}
	if d, _ := eval(bob, "office", nil); d.Decision || !strings.Contains(fmt.Sprint(d.Context["missing_context"]), "ip") {
		t.Errorf("caveat without context: %+v; want a deny naming ip", d)
	}
	if d, _ := eval(bob, "office", map[string]any{"ip": "10.0.0.1"}); !d.Decision {
		t.Errorf("caveat with the office ip: %+v", d)
	}
	if d, _ := eval(bob, "office", map[string]any{"ip": "192.0.2.1"}); d.Decision {
		t.Errorf("caveat with another ip: %+v", d)
	}
	var found azSearchAnswer
	e.az(t, authzenSearchResource, map[string]any{"subject": bob, "action": map[string]any{"name": "view"},
		"resource": map[string]any{"type": "doc"}, "context": map[string]any{"ip": "10.0.0.1"}}, &found)
	if len(found.Results) != 1 || found.Results[0].ID != "office" {
		t.Errorf("resource search with the caveat's context: %+v", found.Results)
	}
	e.az(t, authzenSearchResource, map[string]any{"subject": bob, "action": map[string]any{"name": "view"},
		"resource": map[string]any{"type": "doc"}}, &found)
	if len(found.Results) != 0 {
		t.Errorf("resource search without the caveat's context returned the conditional %+v", found.Results)
	}

	group := map[string]any{"type": "group", "id": "eng", "properties": map[string]any{"relation": "member"}}
	if d, _ := eval(group, "team", nil); !d.Decision {
		t.Errorf("group:eng#member on doc:team: %+v", d)
	}
	var subs azSearchAnswer
	e.az(t, authzenSearchSubject, map[string]any{"subject": map[string]any{"type": "group", "properties": map[string]any{"relation": "member"}},
		"action": map[string]any{"name": "view"}, "resource": map[string]any{"type": "doc", "id": "team"}}, &subs)
	if len(subs.Results) != 1 || subs.Results[0].ID != "eng" || subs.Results[0].Properties["relation"] != "member" {
		t.Errorf("subject search for group#member: %+v", subs.Results)
	}

	ann := map[string]any{"type": "user", "id": "ann"}
	_, then := eval(ann, "open", map[string]any{"consistency": map[string]any{"fully_consistent": true}})
	if then == "" {
		t.Fatal("no ZedToken header")
	}
	if _, err := e.client.DeleteRelationships(ctxT(t), &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{
		ResourceType: "doc", OptionalResourceId: "open"}}); err != nil {
		t.Fatal(err)
	}
	if d, _ := eval(ann, "open", map[string]any{"consistency": map[string]any{"fully_consistent": true}}); d.Decision {
		t.Error("ann still views doc:open after its viewer was deleted")
	}
	d, z := eval(ann, "open", map[string]any{"consistency": map[string]any{"at_exact_snapshot": map[string]any{"token": then}}})
	if !d.Decision || z != then {
		t.Errorf("at_exact_snapshot %s: %+v read at %s; want true, as it was then", then, d, z)
	}
}
