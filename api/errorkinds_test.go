package api

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kengen/kengen/raftnode"
)

// sentinelPackages are the packages whose sentinels reach clients; each keeps them in its
// errors.go.
var sentinelPackages = []string{"../store", "../check", "../raftnode", "."}

// packageSentinels parses the non-test files of dir and returns every package-level
// `var name = errors.New("text")`, by file. api's sentinels are unexported, the others'
// exported.
func packageSentinels(t *testing.T, dir string) map[string]map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, v := range vs.Values {
					call, ok := v.(*ast.CallExpr)
					if !ok || len(call.Args) != 1 {
						continue
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok || sel.Sel.Name != "New" || fmt.Sprint(sel.X) != "errors" {
						continue
					}
					lit, ok := call.Args[0].(*ast.BasicLit)
					if !ok {
						continue
					}
					text, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					if out[filepath.Base(path)] == nil {
						out[filepath.Base(path)] = map[string]string{}
					}
					out[filepath.Base(path)][vs.Names[i].Name] = text
				}
			}
		}
	}
	return out
}

// TestErrorKindsCoverEverySentinel: every sentinel of store, check, raftnode and api sits in
// its package's errors.go, has a kind in the registry, and every kind has a gRPC code. A
// sentinel added without its kind, or a kind without a code, fails here.
func TestErrorKindsCoverEverySentinel(t *testing.T) {
	byText := map[string]string{}
	names := map[string]bool{}
	for _, k := range errorKinds {
		if names[k.Name] {
			t.Errorf("kind name %q is used twice", k.Name)
		}
		names[k.Name] = true
		byText[k.Err.Error()] = k.Name
		if _, ok := kindCodes[k.Name]; !ok {
			t.Errorf("kind %q (%v) has no gRPC code in kindCodes", k.Name, k.Err)
		}
	}
	for code := range kindCodes {
		if !names[code] {
			t.Errorf("kindCodes maps %q, which no sentinel has", code)
		}
	}
	wire := map[string]bool{}
	for _, k := range raftnode.ErrorKinds() {
		wire[k.Name] = true
	}
	total := 0
	for _, dir := range sentinelPackages {
		for file, vars := range packageSentinels(t, dir) {
			for name, text := range vars {
				if dir != "." && !ast.IsExported(name) {
					continue // a detail wrapped in an exported sentinel (raftnode's errTruncated)
				}
				total++
				if file != "errors.go" {
					t.Errorf("%s/%s declares the sentinel %s; sentinels go in the package's errors.go", dir, file, name)
				}
				kind, ok := byText[text]
				if !ok {
					t.Errorf("%s: sentinel %s (%q) has no kind in the registry (add it to its package's ErrorKinds)", dir, name, text)
					continue
				}
				// store's and raftnode's errors come back from the leader: they must cross the wire.
				if (dir == "../store" || dir == "../raftnode") && !wire[kind] {
					t.Errorf("%s: sentinel %s (kind %s) is not in raftnode.ErrorKinds, so it would not survive forwarding", dir, name, kind)
				}
			}
		}
	}
	if total < 30 {
		t.Errorf("found only %d sentinels: is the parser still finding them?", total)
	}
}

// TestSentinelWinsOverWrappedStatus: a kengen sentinel decides the code even when the error
// also wraps a gRPC status (a forwarded call that failed in the transport).
func TestSentinelWinsOverWrappedStatus(t *testing.T) {
	transport := status.Error(codes.Internal, "transport is closing")
	err := fmt.Errorf("%w: Apply on 10.0.0.1:50051: %w", raftnode.ErrUnavailable, transport)
	if got := statusOf(err).Code(); got != codes.Unavailable {
		t.Errorf("statusOf(%v) = %v, want UNAVAILABLE", err, got)
	}
	// A status of its own (from grpc) keeps its code.
	if got := statusOf(status.Error(codes.ResourceExhausted, "message too large")).Code(); got != codes.ResourceExhausted {
		t.Errorf("a bare status: %v, want RESOURCE_EXHAUSTED", got)
	}
}

// TestInternalHidesCause: an INTERNAL status carries the fixed message, never the cause.
func TestInternalHidesCause(t *testing.T) {
	for _, err := range []error{
		errors.New("open /var/lib/kengen/store/000123.sst: input/output error"),
		fmt.Errorf("reading: %w", errors.Join(os.ErrClosed, errors.New("secret detail"))),
	} {
		s := statusOf(err)
		if s.Code() != codes.Internal || s.Message() != internalMessage {
			t.Errorf("statusOf(%v) = %v %q, want INTERNAL %q", err, s.Code(), s.Message(), internalMessage)
		}
	}
}
