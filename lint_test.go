package stanza

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/stanza-io/stanza"

// leafPackages import no sibling package of the project (their own
// sub-packages are fine): imports point down only.
var leafPackages = []string{"statemachine", "storage", "transport", "linearizability"}

// pureForbidden are the imports that would let the state machine see a clock,
// randomness, the OS, the network or concurrency.
var pureForbidden = []string{"time", "math/rand", "math/rand/v2", "crypto/rand", "os", "net", "sync", "sync/atomic", "context", "log", "log/slog", "unsafe"}

func goFiles(t *testing.T, dir string, withTests bool) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && (withTests || !strings.HasSuffix(path, "_test.go")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

func TestImportRules(t *testing.T) {
	fset := token.NewFileSet()
	for _, pkg := range leafPackages {
		for _, path := range goFiles(t, pkg, true) {
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if !strings.HasPrefix(p, module+"/") {
					continue
				}
				rel := strings.TrimPrefix(p, module+"/")
				if rel != pkg && !strings.HasPrefix(rel, pkg+"/") {
					t.Errorf("%s imports sibling %s: %s must import no other stanza package", path, p, pkg)
				}
			}
		}
	}

	// The state machine is pure: no clock, randomness, I/O or goroutines, in
	// its code (tests may use what they like). Generated protobuf code is
	// exempt: its runtime plumbing (lazy descriptor init) is not our logic.
	for _, path := range goFiles(t, "statemachine", false) {
		if strings.HasSuffix(path, ".pb.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range pureForbidden {
				if p == bad {
					t.Errorf("%s imports %s: the state machine must stay pure", path, p)
				}
			}
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			s := strings.TrimSpace(line)
			if strings.HasPrefix(s, "go ") || strings.HasPrefix(s, "go func") || strings.Contains(s, "select {") {
				t.Errorf("%s:%d: goroutine or select in the state machine: %q", path, i+1, s)
			}
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestLint(t *testing.T) {
	if testing.Short() {
		t.Skip("lint runs in the full test run (make test)")
	}
	files := goFiles(t, ".", true)
	if out := run(t, "gofmt", append([]string{"-l"}, files...)...); strings.TrimSpace(out) != "" {
		t.Errorf("gofmt would change:\n%s", out)
	}
	run(t, "go", "vet", "./...")
	run(t, "go", "tool", "staticcheck", "./...")
}
