package archtest

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/swarmship/swarmship"

// pkg is one package of the module as the rules see it.
type pkg struct {
	path    string   // module-relative: "agent", "seeder/tracker", "." for the root
	imports []string // of its non-test files
	tests   []string // of its _test.go files (both test packages)
	files   []string // its non-test .go files, absolute
}

// roles are the packages that assemble a deployment or run a role; nothing
// below them may import them.
var roles = []string{"agent", "seeder", "localswarm", "cmd", "e2e", "interop", "."}

// ioPackages are the standard packages through which code reaches the disk,
// the network, processes or the logs. policy decides; it must not act.
var ioPackages = []string{"os", "os/exec", "os/signal", "os/user", "io/fs", "io/ioutil", "syscall",
	"net", "net/http", "net/rpc", "net/smtp", "database/sql", "log", "log/slog", "log/syslog", "embed", "plugin"}

// clockFuncs read the wall clock or wait on it; policy takes "now" as an
// argument so that every decision is reproducible in a test.
var clockFuncs = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"}

// torrentClient is the torrent library's client; catalog and policy know
// torrents only as metadata.
var torrentClient = []string{"github.com/anacrolix/torrent", "github.com/anacrolix/torrent/storage"}

func TestImports(t *testing.T) {
	pkgs := loadModule(t)
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages; is the module root right?", len(pkgs))
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestPolicyReadsNoClock checks that policy's code never reads the clock.
func TestPolicyReadsNoClock(t *testing.T) {
	pkgs := loadModule(t)
	p := pkgs["policy"]
	if p == nil || len(p.files) == 0 {
		t.Fatal("policy not found")
	}
	for _, f := range p.files {
		for _, call := range clockCalls(t, f) {
			t.Errorf("policy/%s: policy reads the clock; take now as an argument", call)
		}
	}
}

// TestRulesCatchViolations feeds the rules a module with one violation of
// each, so that a rule that silently stopped matching fails here.
func TestRulesCatchViolations(t *testing.T) {
	pkgs := map[string]*pkg{
		"internal/leaf":  {path: "internal/leaf", imports: []string{module + "/catalog"}},
		"internal/other": {path: "internal/other", tests: []string{module + "/seeder"}},
		"policy":         {path: "policy", imports: []string{"strings", module + "/internal/io"}},
		"internal/io":    {path: "internal/io", imports: []string{"os"}},
		"catalog":        {path: "catalog", imports: []string{module + "/policy"}},
		"catalog/sub":    {path: "catalog/sub", imports: []string{"github.com/anacrolix/torrent"}},
		"agent":          {path: "agent", imports: []string{module + "/internal/leaf"}, tests: []string{module + "/seeder/tracker"}},
		"seeder":         {path: "seeder"},
		"seeder/tracker": {path: "seeder/tracker"},
		"seeder/rollout": {path: "seeder/rollout", imports: []string{module + "/seeder/tracker"}},
	}
	pkgs["seeder/catalogfeed"] = &pkg{path: "seeder/catalogfeed", imports: []string{module + "/seeder"}}
	got := strings.Join(violations(pkgs), "\n")
	for _, want := range []string{
		"internal/leaf imports catalog",
		"internal/other (tests) imports seeder",
		"policy imports os (through internal/io)",
		"catalog imports policy",
		"catalog/sub imports github.com/anacrolix/torrent",
		"agent (tests) imports seeder/tracker",
		"seeder/rollout imports seeder/tracker",
		"seeder/catalogfeed imports seeder",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations do not include %q; got:\n%s", want, got)
		}
	}
}

// violations applies the import rules of docs/architecture.md. Rules on
// module packages follow imports through other module packages, so a leaf
// cannot smuggle in what its importer may not use.
func violations(pkgs map[string]*pkg) []string {
	var out []string
	check := func(p *pkg, tests bool, bad func(imp string) bool, why string) {
		direct := p.imports
		label := p.path
		if tests {
			direct, label = p.tests, p.path+" (tests)"
		}
		for _, imp := range direct {
			for _, reached := range reach(pkgs, imp) {
				if !bad(reached) {
					continue
				}
				msg := label + " imports " + rel(reached)
				if reached != imp {
					msg += " (through " + rel(imp) + ")"
				}
				out = append(out, msg+": "+why)
			}
		}
	}
	paths := make([]string, 0, len(pkgs))
	for path := range pkgs {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	for _, path := range paths {
		p := pkgs[path]
		switch {
		case under(path, "internal"):
			bad := func(imp string) bool {
				return isModule(imp) && (underAny(rel(imp), roles...) || under(rel(imp), "catalog"))
			}
			check(p, false, bad, "nothing under internal/ imports a role or catalog")
			check(p, true, bad, "nothing under internal/ imports a role or catalog")
		case path == "policy":
			check(p, false, func(imp string) bool {
				return slices.Contains(ioPackages, imp) || slices.Contains(torrentClient, imp) ||
					(isModule(imp) && !under(rel(imp), "internal"))
			}, "policy is pure: no I/O, no torrent client, no role or catalog")
		case under(path, "catalog"):
			check(p, false, func(imp string) bool {
				return slices.Contains(torrentClient, imp) || (isModule(imp) && (rel(imp) == "policy" || underAny(rel(imp), roles...)))
			}, "catalog imports neither policy, a role nor the torrent client")
		case path == "seeder/rollout" || path == "seeder/catalogfeed":
			// What they need from the origin comes in as functions; a
			// circle between the two would be one package in two folders.
			check(p, false, func(imp string) bool {
				return isModule(imp) && under(rel(imp), "seeder") && !under(rel(imp), path)
			}, path+" imports neither the origin nor its other parts")
		case path == "agent":
			bad := func(imp string) bool { return isModule(imp) && under(rel(imp), "seeder") }
			check(p, false, bad, "the agent imports no origin package")
			check(p, true, bad, "the agent imports no origin package")
		}
	}
	return out
}

// reach returns imp and, if it is a module package, everything it imports
// in turn (standard and third-party packages are not followed).
func reach(pkgs map[string]*pkg, imp string) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		out = append(out, p)
		if !isModule(p) {
			return
		}
		if mp := pkgs[rel(p)]; mp != nil {
			for _, next := range mp.imports {
				walk(next)
			}
		}
	}
	walk(imp)
	return out
}

func isModule(imp string) bool { return imp == module || strings.HasPrefix(imp, module+"/") }

// rel turns a module import path into a module-relative one; others stay.
func rel(imp string) string {
	if imp == module {
		return "."
	}
	return strings.TrimPrefix(imp, module+"/")
}

func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

func underAny(path string, dirs ...string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return under(path, d) })
}

// loadModule reads the imports of every package of the module with
// go/build, without running the go command.
func loadModule(t *testing.T) map[string]*pkg {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	pkgs := map[string]*pkg{}
	err = filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); dir != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		bp, err := build.ImportDir(dir, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		r, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		p := &pkg{path: filepath.ToSlash(r), imports: bp.Imports, tests: append(slices.Clone(bp.TestImports), bp.XTestImports...)}
		for _, f := range bp.GoFiles {
			p.files = append(p.files, filepath.Join(dir, f))
		}
		pkgs[p.path] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// clockCalls lists "file:line: time.Func" for every time.Func of clockFuncs that
// the file refers to.
func clockCalls(t *testing.T, file string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	timeName := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "" {
		return nil
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == timeName && slices.Contains(clockFuncs, sel.Sel.Name) {
			pos := fset.Position(sel.Pos())
			out = append(out, filepath.Base(pos.Filename)+":"+strconv.Itoa(pos.Line)+": time."+sel.Sel.Name)
		}
		return true
	})
	return out
}
