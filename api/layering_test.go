package api_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/kengen/kengen/"

// allowedImports is ARCHITECTURE.md's table: which of our top-level packages each may import
// (subpackages count as their top-level folder; a folder may always import itself).
var allowedImports = map[string][]string{
	"schema":   {},
	"store":    {"schema"},
	"check":    {"schema", "store"},
	"raftnode": {"schema", "store"},
	"api":      {"schema", "store", "check", "raftnode"},
	"cmd":      {"schema", "store", "check", "raftnode", "api", "bench"},
	"bench":    {"schema"},
}

// clients are folders inside cmd/ that are clients of the Authzed API like any other (kengen
// sync also serves SpiceDB users): besides their own folder they may import only these of our
// top-level packages — api for DescribeClientError, which keeps grpc's status package in api/.
var clients = map[string][]string{
	"cmd/kengen/internal/pgsync": {"api"},
}

// restricted are third-party packages only one folder may import (in non-test code).
var restricted = map[string]string{
	"github.com/cockroachdb/pebble": "store",
	"google.golang.org/grpc/status": "api",
	"google.golang.org/grpc/codes":  "api",
	"github.com/hashicorp/raft":     "raftnode",
}

// TestLayering keeps the package boundaries of ARCHITECTURE.md: a change that makes store/
// import check/, or puts grpc status codes outside api/, fails here.
func TestLayering(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		allowed, known := allowedImports[top]
		if !known {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		client := ""
		for dir := range clients {
			if strings.HasPrefix(filepath.ToSlash(rel), dir+"/") {
				client = dir
			}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if ours, ok := strings.CutPrefix(p, module); ok {
				target := strings.Split(ours, "/")[0]
				switch {
				case client != "":
					if !strings.HasPrefix(ours+"/", client+"/") && !contains(clients[client], target) {
						t.Errorf("%s imports %s: %s is an API client and may import only %v of ours", rel, p, client, clients[client])
					}
				case target != top && !contains(allowed, target):
					t.Errorf("%s imports %s: %s/ may import only %v", rel, p, top, allowed)
				}
				continue
			}
			for prefix, owner := range restricted {
				if strings.HasPrefix(p, prefix) && top != owner {
					t.Errorf("%s imports %s, which only %s/ may import", rel, p, owner)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d files: is the walk rooted at the module?", checked)
	}
}

// TestNoGlobalMetrics: metrics are registered on an injected Registerer, never the default
// one, so parallel tests and several servers in one process do not collide.
func TestNoGlobalMetrics(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "layering_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		read++
		for _, banned := range []string{"prometheus.MustRegister(", "prometheus.Register(", "prometheus.DefaultRegisterer", "promauto.New"} {
			if strings.Contains(string(b), banned) {
				t.Errorf("%s uses %s: register on the injected prometheus.Registerer", path, banned)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if read < 20 {
		t.Fatalf("read only %d files: is the walk rooted at the module?", read)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
