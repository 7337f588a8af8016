package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Composable schemas (`use import`): `import "file.zed"` brings in another schema file's
// definitions, caveats and partials. The server never reads files: a client composes the
// files into one schema text and writes that, as zed does with `zed schema compile`, and the
// server keeps and returns the text it received. Compose is that step for kengen's CLI
// (`kengen schema write`, `kengen validate`).
//
// As in SpiceDB: an import path is relative to the importing file's directory and may not
// leave it (no `..`, no absolute path); a file imported twice on different branches (a
// diamond) is read once; a file that imports itself, directly or through others, is an error;
// imported files come before the importing file's own definitions. kengen counts the `use`
// directives of all the files for all of them, where SpiceDB wants each file to declare those
// it uses.

// Compose resolves the imports of source, the text of the schema file name in fsys, and
// returns one schema text without imports: the composed schema as Generate prints it, so with
// partials expanded. A source without any `import` is returned unchanged. Errors are an
// ErrorList whose positions name their file.
func Compose(fsys fs.FS, name, source string) (string, error) {
	root, errs := parse(source, name)
	if len(root.imports) == 0 {
		return source, nil
	}
	c := &composer{fsys: fsys, visited: map[string]bool{name: true}, out: &fileNode{}}
	c.errs = errs
	c.add(root, name, []string{name})
	s, err := build(c.out, c.errs)
	if err != nil {
		return "", err
	}
	return s.Generate(), nil
}

type composer struct {
	fsys    fs.FS
	visited map[string]bool // every file read so far
	out     *fileNode       // the composed file
	errs    ErrorList
}

func (c *composer) errorf(pos Position, format string, args ...any) {
	c.errs = append(c.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// add appends f, parsed from file name, to the composed file: first the files it imports
// (each once), then its own definitions, caveats and partials. branch is the chain of files
// that imported it, name last.
func (c *composer) add(f *fileNode, name string, branch []string) {
	for _, im := range f.imports {
		if !c.resolve(im, name, branch) {
			// What the file would have declared is missing: do not report its names as unknown.
			c.out.lostDefinition, c.out.lostCaveat = true, true
		}
	}
	o := c.out
	o.useExpiration = o.useExpiration || f.useExpiration
	o.useSelf = o.useSelf || f.useSelf
	o.useTypechecking = o.useTypechecking || f.useTypechecking
	o.usePartial = o.usePartial || f.usePartial
	o.useImport = o.useImport || f.useImport
	o.imports = append(o.imports, f.imports...)
	o.definitions = append(o.definitions, f.definitions...)
	o.caveats = append(o.caveats, f.caveats...)
	o.partials = append(o.partials, f.partials...)
	o.lostDefinition = o.lostDefinition || f.lostDefinition
	o.lostCaveat = o.lostCaveat || f.lostCaveat
}

// resolve reads the file im names, relative to the importing file name, and adds it, unless
// it was read already. It reports whether the import is sound (a file read before counts).
func (c *composer) resolve(im *importNode, name string, branch []string) bool {
	where := fmt.Sprintf("`import %q`", im.path)
	switch {
	case im.path == "":
		c.errorf(im.pathPos, "%s: the path is empty; name a schema file relative to %s", where, dirOf(name))
		return false
	case strings.Contains(im.path, ".."):
		c.errorf(im.pathPos, "%s: the path contains `..`; an import names a file in or below the importing file's directory", where)
		return false
	case path.IsAbs(im.path) || strings.Contains(im.path, "\\"):
		c.errorf(im.pathPos, "%s: the path must be relative, with `/` between directories, to the importing file's directory", where)
		return false
	}
	target := path.Join(path.Dir(name), im.path)
	for i, b := range branch {
		if b == target {
			c.errorf(im.pos, "%s: circular import: %s", where, strings.Join(append(append([]string(nil), branch[i:]...), target), " imports "))
			return true // the file is there; only the cycle is wrong
		}
	}
	if c.visited[target] {
		return true
	}
	c.visited[target] = true
	data, err := fs.ReadFile(c.fsys, target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.errorf(im.pos, "%s: there is no file %s (a path is relative to the importing file's directory)", where, target)
		return false
	case err != nil:
		c.errorf(im.pos, "%s: %v", where, err)
		return false
	}
	g, errs := parse(string(data), target)
	c.errs = append(c.errs, errs...)
	c.add(g, target, append(append([]string(nil), branch...), target))
	return true
}

func dirOf(name string) string {
	if d := path.Dir(name); d != "." {
		return d + "/"
	}
	return "the importing file's directory"
}
