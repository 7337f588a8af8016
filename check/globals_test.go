package check_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// TestNoSchemaKeyedGlobals keeps what depends on a schema off process-wide state
// (ARCHITECTURE.md: "Nothing lives in process-wide state"): schema/, store/ and check/ may
// declare no package-level sync.Map, and no package-level map but a literal table. A cache
// keyed by *schema.Schema at package level keeps every schema ever written in memory.
func TestNoSchemaKeyedGlobals(t *testing.T) {
	fset := token.NewFileSet()
	for _, dir := range []string{"../schema", "../store", "../check"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						var value ast.Expr
						if i < len(vs.Values) {
							value = vs.Values[i]
						}
						if why := globalProblem(vs.Type, value); why != "" {
							t.Errorf("%s: package-level %s is %s; hang it off the compiled *schema.Schema or the *store.Store",
								fset.Position(name.Pos()), name.Name, why)
						}
					}
				}
			}
		}
	}
}

func globalProblem(typ, value ast.Expr) string {
	if sel, ok := typ.(*ast.SelectorExpr); ok && sel.Sel.Name == "Map" {
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == "sync" {
			return "a sync.Map"
		}
	}
	if _, ok := typ.(*ast.MapType); ok {
		if lit, ok := value.(*ast.CompositeLit); !ok || len(lit.Elts) == 0 {
			return "a map filled at run time"
		}
	}
	if call, ok := value.(*ast.CallExpr); ok {
		if fn, ok := call.Fun.(*ast.Ident); ok && fn.Name == "make" && len(call.Args) > 0 {
			if _, ok := call.Args[0].(*ast.MapType); ok {
				return "a map filled at run time"
			}
		}
	}
	return ""
}

// A schema written, checked, looked up and expanded against is collected once the store and
// the checker that used it are gone: nothing process-wide holds on to it.
func TestSchemaCollectable(t *testing.T) {
	collected := make(chan struct{})
	func() {
		st, err := store.Open("", store.Options{InMemory: true, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.WriteSchema(store.Entry{Index: 1}, time.Now(), chainSchema); err != nil {
			t.Fatal(err)
		}
		b := &store.Batch{Updates: chainEdges(20, "up")}
		b.Updates = append(b.Updates, store.Update{Op: store.OpTouch, Relationship: store.Relationship{ResourceType: "role", ResourceID: "c19", Relation: "member", SubjectType: "user", SubjectID: "boss"}})
		if _, err := st.Apply(store.Entry{Index: 2}, time.Now(), b); err != nil {
			t.Fatal(err)
		}
		r, err := st.Reader(0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		sch := r.Schema()
		runtime.SetFinalizer(sch, func(*schema.Schema) { close(collected) })
		c := check.New(check.Options{})
		ctx := context.Background()
		if res, err := c.Check(ctx, r, check.Request{ResourceType: "role", ResourceID: "c0", Permission: "see", SubjectType: "user", SubjectID: "boss"}); err != nil || res.Membership != check.HasPermission {
			t.Fatalf("check: %v, %v", res.Membership, err)
		}
		if _, err := c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: "role", Permission: "see", SubjectType: "user", SubjectID: "boss"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: "role", ResourceID: "c0", Permission: "see", SubjectType: "user"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Expand(ctx, r, "role", "c0", "see"); err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the schema is still reachable after its store and checker were dropped: something process-wide holds it")
		}
	}
}
