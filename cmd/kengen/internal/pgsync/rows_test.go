package pgsync

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

func testTable(t *testing.T) *Table {
	t.Helper()
	m, err := ParseMapping("m.yaml", []byte(`tables:
  - table: deals
    relationships:
      - deal:{id}#owner@user:{owner_id}
      - relationship: deal:{id}#guest@user:{guest_id}
        caveat: office_hours
        caveat_context: ctx
`))
	if err != nil {
		t.Fatal(err)
	}
	tab := m.Tables[0]
	tab.key = []string{"id"}
	return tab
}

func str(s string) *string { return &s }

func summary(x *txn) string {
	var out []string
	for _, c := range x.changes() {
		out = append(out, opName(c.op)+" "+relText(c.rel))
	}
	return strings.Join(out, "; ")
}

// One transaction's row changes fold into one update per relationship, the last winning.
func TestTransactionFolding(t *testing.T) {
	tab := testTable(t)
	for _, tc := range []struct {
		name string
		do   func(x *txn)
		want string
	}{
		{"insert then delete", func(x *txn) {
			_ = x.insert(tab, row{"id": str("1"), "owner_id": str("a")})
			_ = x.remove(tab, row{"id": str("1"), "owner_id": str("a")})
		}, "DELETE deal:1#owner@user:a"},
		{"owner moved twice", func(x *txn) {
			_ = x.update(tab, row{"id": str("1"), "owner_id": str("a")}, row{"id": str("1"), "owner_id": str("b")})
			_ = x.update(tab, row{"id": str("1"), "owner_id": str("b")}, row{"id": str("1"), "owner_id": str("c")})
		}, "DELETE deal:1#owner@user:a; DELETE deal:1#owner@user:b; TOUCH deal:1#owner@user:c"},
		{"unmapped column", func(x *txn) {
			_ = x.update(tab, row{"id": str("1"), "owner_id": str("a"), "title": str("x")}, row{"id": str("1"), "owner_id": str("a"), "title": str("y")})
		}, ""},
		{"NULL owner", func(x *txn) {
			_ = x.update(tab, row{"id": str("1"), "owner_id": str("a")}, row{"id": str("1"), "owner_id": nil})
		}, "DELETE deal:1#owner@user:a"},
		{"caveat context changed", func(x *txn) {
			_ = x.update(tab, row{"id": str("1"), "guest_id": str("g"), "ctx": str(`{"hour":1}`)}, row{"id": str("1"), "guest_id": str("g"), "ctx": str(`{"hour":2}`)})
		}, `TOUCH deal:1#guest@user:g[office_hours:{"hour":2}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newTxn()
			tc.do(x)
			if got := summary(x); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	x := newTxn()
	err := x.insert(tab, row{"id": str("1"), "guest_id": str("g"), "ctx": str("not json")})
	if err == nil || !strings.Contains(err.Error(), "deals id=1") || !strings.Contains(err.Error(), "caveat_context column ctx") {
		t.Errorf("a bad caveat context: %v", err)
	}
}

// A refusal's message names the changes to blame: by index, by relationship, or by resource
// and relation (a limit).
func TestCulprits(t *testing.T) {
	chunk := make([]change, 3)
	for i := range chunk {
		rel := &v1.Relationship{Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: fmt.Sprint("d", i%2)}, Relation: "sub_assignee",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: fmt.Sprint("u", i)}}}
		chunk[i] = change{op: v1.RelationshipUpdate_OPERATION_TOUCH, rel: rel, key: relKey(rel)}
	}
	for _, tc := range []struct {
		msg  string
		want string
	}{
		{"updates[2].relationship.subject: bad", "[2]"},
		{"store: invalid relationship: deal:d1#sub_assignee@user:u1 is not allowed", "[1]"},
		{"store: relation limit exceeded: deal:d0#sub_assignee would have 6 subjects, limit is 5", "[0 2]"},
		{"store: relation limit exceeded: deal:d01#sub_assignee would have 6 subjects", "[0 1 2]"},
	} {
		if got := fmt.Sprint(culprits(chunk, tc.msg)); got != tc.want {
			t.Errorf("culprits(%q) = %s, want %s", tc.msg, got, tc.want)
		}
	}
}
