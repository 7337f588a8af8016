package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// TestCompose walks testdata/compose: each directory's root.zed is composed from the files
// around it and must give exactly its composed.golden (which must then parse and round-trip),
// or fail with exactly the errors of its composed.errors.
func TestCompose(t *testing.T) {
	dirs, err := filepath.Glob("testdata/compose/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no testdata/compose directories (%v)", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, "root.zed"))
			if err != nil {
				t.Fatal(err)
			}
			text, err := Compose(os.DirFS(dir), "root.zed", string(src))
			if err != nil {
				var list ErrorList
				if !errors.As(err, &list) {
					t.Fatalf("Compose error %T is not an ErrorList: %v", err, err)
				}
				var got strings.Builder
				for _, e := range list {
					got.WriteString(e.Error() + "\n")
				}
				checkGolden(t, filepath.Join(dir, "composed.errors"), got.String())
				return
			}
			checkGolden(t, filepath.Join(dir, "composed.golden"), text)
			s, err := Parse(text)
			if err != nil {
				t.Fatalf("the composed text does not parse: %v\n%s", err, text)
			}
			assertRoundTrip(t, s)
		})
	}
}

// TestComposeReadsEachFileOnce: a diamond reads its shared file once, and a file without
// imports is returned as written, without reading anything.
func TestComposeReadsEachFileOnce(t *testing.T) {
	fsys := countingFS{MapFS: fstest.MapFS{
		"a.zed":      {Data: []byte("use import\nimport \"shared.zed\"\ndefinition aaa { relation who: user }")},
		"b.zed":      {Data: []byte("use import\nimport \"shared.zed\"\ndefinition bbb { relation who: user }")},
		"shared.zed": {Data: []byte("definition user {}")},
	}, reads: map[string]int{}}
	if _, err := Compose(fsys, "root.zed", "use import\nimport \"a.zed\"\nimport \"b.zed\"\n"); err != nil {
		t.Fatal(err)
	}
	if fsys.reads["shared.zed"] != 1 || fsys.reads["a.zed"] != 1 || fsys.reads["b.zed"] != 1 {
		t.Errorf("reads = %v, want each file once", fsys.reads)
	}
	plain := "// kept as written\ndefinition user {}\n"
	got, err := Compose(fsys, "root.zed", plain)
	if err != nil || got != plain {
		t.Errorf("Compose(no imports) = %q, %v; want the text unchanged", got, err)
	}
}

type countingFS struct {
	fstest.MapFS
	reads map[string]int
}

func (c countingFS) ReadFile(name string) ([]byte, error) {
	c.reads[name]++
	return c.MapFS.ReadFile(name)
}
