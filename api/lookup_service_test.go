package api

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

const lookupTestSchema = `
caveat in_region(region string) { region == 'jp' }

definition user {}

definition team {
	relation member: user
}

definition deal {
	relation viewer: user | user:* | team#member | user with in_region
	relation banned: user
	permission view = viewer - banned
}
`

func subjectRef(typ, id, rel string) *v1.SubjectReference {
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: typ, ObjectId: id}, OptionalRelation: rel}
}

// lookupResources fetches every page of a LookupResources listing with the given page size (0
// for one unpaged call) and returns the ids in order.
func (e *testEnv) lookupResources(subject string, pageSize uint32) []string {
	e.t.Helper()
	var out []string
	var cursor *v1.Cursor
	for calls := 0; ; calls++ {
		stream, err := e.client.LookupResources(ctxT(e.t), &v1.LookupResourcesRequest{
			Consistency: full(), ResourceObjectType: "deal", Permission: "view",
			Subject: subjectRef("user", subject, ""), OptionalLimit: pageSize, OptionalCursor: cursor,
		})
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				e.t.Fatalf("LookupResources page %d: %v", calls, err)
			}
			out = append(out, resp.GetResourceObjectId())
			cursor = resp.GetAfterResultCursor()
			n++
		}
		if pageSize == 0 || n < int(pageSize) {
			return out
		}
	}
}

// TestLookupResourcesPages reads listings as a client does, in pages of 1, 7 and 1,000, and
// checks that they concatenate to the unpaged answer, also when writes land between pages.
func TestLookupResourcesPages(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(lookupTestSchema)
	var rels []string
	for i := range 1500 {
		id := fmt.Sprintf("d%04d", i)
		rels = append(rels, "deal:"+id+"#viewer@team:sales#member")
		if i%40 == 0 {
			rels = append(rels, "deal:"+id+"#viewer@user:bob")
		}
		if i%100 == 0 {
			rels = append(rels, "deal:"+id+"#banned@user:amy")
		}
	}
	rels = append(rels, "team:sales#member@user:amy")
	env.touch(rels...)

	all := env.lookupResources("amy", 0)
	if len(all) != 1485 || all[0] != "d0001" {
		t.Fatalf("unpaged: %d deals starting %v, want 1485 (1500 less 15 banned) starting d0001", len(all), all[:1])
	}
	for _, size := range []uint32{7, 1000} {
		if got := env.lookupResources("amy", size); !reflect.DeepEqual(got, all) {
			t.Errorf("pages of %d: %d deals, want %d, first difference at %d", size, len(got), len(all), firstDiff(got, all))
		}
	}
	bob := env.lookupResources("bob", 0)
	if len(bob) != 38 {
		t.Fatalf("bob: %d deals, want 38", len(bob))
	}
	if got := env.lookupResources("bob", 1); !reflect.DeepEqual(got, bob) {
		t.Errorf("pages of 1: %v, want %v", got, bob)
	}

	// A cursor pins its revision: a write after the first page does not show in the second.
	stream, err := env.client.LookupResources(ctxT(t), &v1.LookupResourcesRequest{
		Consistency: full(), ResourceObjectType: "deal", Permission: "view",
		Subject: subjectRef("user", "bob", ""), OptionalLimit: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	var cursor *v1.Cursor
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cursor = resp.GetAfterResultCursor()
	}
	env.touch("deal:d0001#viewer@user:bob", "deal:zzz#viewer@user:bob")
	stream, err = env.client.LookupResources(ctxT(t), &v1.LookupResourcesRequest{
		ResourceObjectType: "deal", Permission: "view", Subject: subjectRef("user", "bob", ""), OptionalCursor: cursor,
	})
	if err != nil {
		t.Fatal(err)
	}
	var rest []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, resp.GetResourceObjectId())
	}
	if !reflect.DeepEqual(rest, bob[10:]) {
		t.Errorf("second page after a write = %v, want %v", rest, bob[10:])
	}

	// A cursor replayed with another request is refused.
	stream, err = env.client.LookupResources(ctxT(t), &v1.LookupResourcesRequest{
		ResourceObjectType: "deal", Permission: "view", Subject: subjectRef("user", "amy", ""), OptionalCursor: cursor,
	})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, "optional_cursor")
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestLookupSubjectsAndExpand checks wildcard results with exclusions, conditional subjects,
// concrete limits with cursors, and the expanded tree, through the client.
func TestLookupSubjectsAndExpand(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(lookupTestSchema)
	env.touch(
		"deal:1#viewer@user:*",
		"deal:1#banned@user:fred",
		"deal:1#viewer@team:sales#member",
		"team:sales#member@user:amy",
		"team:sales#member@user:bob",
		"deal:2#viewer@user:sarah[in_region]",
		"deal:2#viewer@user:tom",
	)
	lookup := func(deal string, limit uint32, cursor *v1.Cursor, ctx *structpb.Struct) []*v1.LookupSubjectsResponse {
		t.Helper()
		stream, err := env.client.LookupSubjects(ctxT(t), &v1.LookupSubjectsRequest{
			Consistency: full(), Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: deal}, Permission: "view",
			SubjectObjectType: "user", OptionalConcreteLimit: limit, OptionalCursor: cursor, Context: ctx,
		})
		if err != nil {
			t.Fatal(err)
		}
		var out []*v1.LookupSubjectsResponse
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, resp)
		}
	}
	got := lookup("1", 0, nil, nil)
	var ids []string
	for _, r := range got {
		ids = append(ids, r.GetSubject().GetSubjectObjectId())
	}
	if !reflect.DeepEqual(ids, []string{"*", "amy", "bob"}) {
		t.Fatalf("deal:1 subjects = %v, want [* amy bob]", ids)
	}
	if ex := got[0].GetExcludedSubjects(); len(ex) != 1 || ex[0].GetSubjectObjectId() != "fred" || !slices.Equal(got[0].GetExcludedSubjectIds(), []string{"fred"}) {
		t.Errorf("wildcard excludes %v, want fred", ex)
	}
	// Concrete limit 1: the wildcard and amy, then bob.
	first := lookup("1", 1, nil, nil)
	if len(first) != 2 || first[1].GetSubject().GetSubjectObjectId() != "amy" {
		t.Fatalf("first page = %v", first)
	}
	second := lookup("1", 1, first[1].GetAfterResultCursor(), nil)
	if len(second) != 1 || second[0].GetSubject().GetSubjectObjectId() != "bob" {
		t.Fatalf("second page = %v", second)
	}

	got = lookup("2", 0, nil, nil)
	if len(got) != 2 || got[0].GetSubject().GetSubjectObjectId() != "sarah" ||
		got[0].GetSubject().GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION ||
		!slices.Equal(got[0].GetPartialCaveatInfo().GetMissingRequiredContext(), []string{"region"}) {
		t.Errorf("deal:2 subjects = %v, want sarah conditional on region, and tom", got)
	}
	ctx, _ := structpb.NewStruct(map[string]any{"region": "jp"})
	got = lookup("2", 0, nil, ctx)
	if len(got) != 2 || got[0].GetSubject().GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("deal:2 subjects in region jp = %v, want sarah with permission", got)
	}

	resp, err := env.client.ExpandPermissionTree(ctxT(t), &v1.ExpandPermissionTreeRequest{
		Consistency: full(), Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "1"}, Permission: "view"})
	if err != nil {
		t.Fatal(err)
	}
	root := resp.GetTreeRoot()
	if root.GetIntermediate().GetOperation() != v1.AlgebraicSubjectSet_OPERATION_EXCLUSION || root.GetExpandedRelation() != "view" {
		t.Fatalf("root = %v, want an exclusion on view", root)
	}
	kids := root.GetIntermediate().GetChildren()
	if len(kids) != 2 || kids[0].GetExpandedRelation() != "viewer" || len(kids[0].GetLeaf().GetSubjects()) != 2 ||
		kids[1].GetLeaf().GetSubjects()[0].GetObject().GetObjectId() != "fred" {
		t.Errorf("children = %v, want viewer's two subjects and banned fred", kids)
	}
	_, err = env.client.ExpandPermissionTree(ctxT(t), &v1.ExpandPermissionTreeRequest{
		Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "1"}, Permission: "nope"})
	wantCode(t, err, codes.FailedPrecondition)
}
