package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shape renders a compiled rewrite as an S-expression, so tests can state a tree's shape.
func shape(rw *Rewrite) string {
	switch rw.Kind {
	case RewriteComputedUserset:
		return rw.Relation
	case RewriteTupleToUserset:
		if rw.Func == ArrowAll {
			return "(all " + rw.Tupleset + " " + rw.Relation + ")"
		}
		return "(any " + rw.Tupleset + " " + rw.Relation + ")"
	case RewriteNil:
		return "nil"
	}
	op := map[RewriteKind]string{RewriteUnion: "union", RewriteIntersection: "intersect", RewriteExclusion: "exclude"}[rw.Kind]
	parts := []string{op}
	for _, c := range rw.Children {
		parts = append(parts, shape(c))
	}
	return "(" + strings.Join(parts, " ") + ")"
}

func TestPrecedence(t *testing.T) {
	tests := []struct{ expr, want string }{
		// `+` binds tightest, then `&`, then `-`, as in SpiceDB.
		{"aaa - bbb + ccc", "(exclude aaa (union bbb ccc))"},
		{"aaa & bbb + ccc", "(intersect aaa (union bbb ccc))"},
		{"aaa + bbb & ccc - ddd", "(exclude (intersect (union aaa bbb) ccc) ddd)"},
		{"aaa - bbb & ccc", "(exclude aaa (intersect bbb ccc))"},
		// Same-operator chains: unions and intersections flatten, exclusions stay binary and
		// associate to the left.
		{"aaa + bbb + ccc", "(union aaa bbb ccc)"},
		{"aaa & bbb & ccc", "(intersect aaa bbb ccc)"},
		{"aaa - bbb - ccc", "(exclude (exclude aaa bbb) ccc)"},
		{"(aaa + bbb) + (ccc + ddd)", "(union aaa bbb ccc ddd)"},
		{"aaa - (bbb - ccc)", "(exclude aaa (exclude bbb ccc))"},
		{"(aaa - bbb) + ccc", "(union (exclude aaa bbb) ccc)"},
		{"(aaa + bbb) & ccc", "(intersect (union aaa bbb) ccc)"},
		// Arrows bind tighter than any operator.
		{"par->aaa + par.all(bbb) - par.any(ccc)", "(exclude (union (any par aaa) (all par bbb)) (any par ccc))"},
		{"nil + aaa", "(union nil aaa)"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			src := `definition user {}
definition thing {
	relation aaa: user
	relation bbb: user
	relation ccc: user
	relation ddd: user
	relation par: thing
	permission got = ` + tt.expr + `
}`
			s, err := Parse(src)
			if err != nil {
				t.Fatal(err)
			}
			rw := s.Namespace("thing").Relation("got").Rewrite
			if got := shape(rw); got != tt.want {
				t.Errorf("shape = %s, want %s", got, tt.want)
			}
			// The generated text must keep the same tree.
			again, err := Parse(s.Generate())
			if err != nil {
				t.Fatalf("generated text does not parse: %v\n%s", err, s.Generate())
			}
			if got := shape(again.Namespace("thing").Relation("got").Rewrite); got != tt.want {
				t.Errorf("after round trip shape = %s, want %s\n%s", got, tt.want, s.Generate())
			}
		})
	}
}

func TestCompiledSchema(t *testing.T) {
	s, err := Parse(`
use expiration

/** cav doc */
caveat org/cav(ips list<ipaddress>, m map<list<int>>) { ips.size() > 0 }

/** user doc */
definition org/user {}

definition group {
	relation member: org/user | group#member with org/cav and expiration limit 7
	permission everyone = member
}

definition doc {
	relation parent: group | org/user:* with expiration
	permission view = parent->everyone - parent.all(member)
}`)
	if err != nil {
		t.Fatal(err)
	}
	if !s.UseExpiration {
		t.Error("UseExpiration = false, want true")
	}
	c := s.Caveat("org/cav")
	if c == nil || c.Doc != "cav doc" || c.Expression != "ips.size() > 0" {
		t.Fatalf("Caveat(org/cav) = %+v", c)
	}
	wantParams := []CaveatParameter{{"ips", "list<ipaddress>"}, {"m", "map<list<int>>"}}
	if len(c.Parameters) != 2 || c.Parameters[0] != wantParams[0] || c.Parameters[1] != wantParams[1] {
		t.Errorf("Parameters = %v, want %v", c.Parameters, wantParams)
	}
	if s.Caveat("cav") != nil || s.Namespace("user") != nil {
		t.Error("lookup without the prefix found something")
	}
	if ns := s.Namespace("org/user"); ns == nil || ns.Doc != "user doc" || ns.Pos != (Position{Line: 8, Column: 1}) {
		t.Errorf("Namespace(org/user) = %+v", ns)
	}
	member := s.Namespace("group").Relation("member")
	if member == nil || member.IsPermission || member.Limit != 7 || len(member.AllowedSubjects) != 2 {
		t.Fatalf("group#member = %+v", member)
	}
	want := AllowedSubject{Type: "group", Relation: "member", Caveat: "org/cav", Expiration: true, Pos: Position{Line: 11, Column: 30}}
	if got := *member.AllowedSubjects[1]; got != want {
		t.Errorf("group#member type 2 = %+v, want %+v", got, want)
	}
	if a := member.Allows("group", "member", false, "org/cav", true); a != member.AllowedSubjects[1] {
		t.Errorf("Allows(group#member with cav, expiring) = %v", a)
	}
	if a := member.Allows("group", "member", false, "", false); a != nil {
		t.Errorf("Allows(uncaveated group#member) = %v, want nil", a)
	}
	parent := s.Namespace("doc").Relation("parent")
	if w := parent.AllowedSubjects[1]; !w.Wildcard || w.Type != "org/user" || !w.Expiration {
		t.Errorf("doc#parent wildcard = %+v", w)
	}
	view := s.Namespace("doc").Relation("view")
	if !view.IsPermission || view.AllowedSubjects != nil {
		t.Errorf("doc#view = %+v", view)
	}
	if got := shape(view.Rewrite); got != "(exclude (any parent everyone) (all parent member))" {
		t.Errorf("doc#view = %s", got)
	}
	if s.Namespace("doc").Relation("nope") != nil || s.Namespace("nope").Relation("x") != nil {
		t.Error("lookup of a missing name returned non-nil")
	}
}

func TestErrorList(t *testing.T) {
	_, err := Parse("definition user {}\ndefinition doc {\n\trelation viewer: usr | grp\n}\n")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("err = %v, want an ErrorList of 2", err)
	}
	want := "schema: 2 errors:\n" +
		"  3:19: relation \"doc#viewer\": unknown definition \"usr\" in subject type `usr`\n" +
		"  3:25: relation \"doc#viewer\": unknown definition \"grp\" in subject type `grp`"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
}

// TestPartialArrow checks that an arrow reaching its target through only some of its subject
// types is accepted, as in SpiceDB.
func TestPartialArrow(t *testing.T) {
	_, err := Parse(`definition user {}
definition folder { relation viewer: user }
definition doc {
	relation parent: folder | user
	permission view = parent->viewer
}`)
	if err != nil {
		t.Fatalf("arrow valid for one of two subject types: %v", err)
	}
}

// FuzzRoundTrip checks that every schema Parse accepts generates text that parses back to the
// same schema and that generation is a fixed point.
func FuzzRoundTrip(f *testing.F) {
	for _, glob := range []string{"testdata/valid/*.zed", "testdata/invalid/*.zed"} {
		files, _ := filepath.Glob(glob)
		for _, path := range files {
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(data))
		}
	}
	for _, seed := range []string{
		"/**\n * a\n**b*/ definition abc {}",
		"/** a */ /** */ /***/ /**\n\n*/definition abc {}",
		"/**\t x\n\t*\t y */ definition abc {}",
		"caveat abc(x int) { 'a\\\n}",
		"caveat abc(x int) { x // }\n}",
		"caveat abc(x int) { r'\\' }",
		"caveat abc(x int) { '''\n}''' }",
		"caveat abc(x int) { 'x\r}\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse(src)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Parse error is not a non-empty ErrorList: %v", err)
			}
			return
		}
		assertRoundTrip(t, s)
	})
}
