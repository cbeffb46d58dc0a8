package smolvlm

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"strings"
	"testing"
)

// What `go doc` shows must be documented: every exported type, function, method, and constant or
// variable group has a comment, and a declaration's comment starts with its name.
func TestEveryExportIsDocumented(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") },
		parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	p := doc.New(pkgs["smolvlm"], "smolvlm", 0)
	if !strings.HasPrefix(p.Doc, "Package smolvlm ") {
		t.Errorf("package comment: %q", p.Doc)
	}
	named := func(kind, name, comment string) {
		if !strings.HasPrefix(comment, name+" ") {
			t.Errorf("%s %s: its comment must start with %q: %q", kind, name, name, comment)
		}
	}
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			if v.Doc == "" {
				t.Errorf("undocumented group: %v", v.Names)
			}
		}
	}
	values(p.Consts)
	values(p.Vars)
	for _, f := range p.Funcs {
		named("func", f.Name, f.Doc)
	}
	for _, ty := range p.Types {
		named("type", ty.Name, ty.Doc)
		values(ty.Consts)
		values(ty.Vars)
		for _, f := range append(ty.Funcs, ty.Methods...) {
			named("func", f.Name, f.Doc)
		}
		for _, spec := range ty.Decl.Specs {
			st, ok := spec.(*ast.TypeSpec).Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, field := range st.Fields.List {
				for _, n := range field.Names {
					if n.IsExported() && field.Doc == nil && field.Comment == nil && len(field.Names) == 1 {
						t.Errorf("field %s.%s is undocumented", ty.Name, n.Name)
					}
				}
			}
		}
	}
}
