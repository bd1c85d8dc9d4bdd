package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestReleaseReproducible: `make release` (scripts/release.sh) run twice on
// one source tree, once from a copy at another path, gives the same
// SHA256SUMS, and the binaries report the VERSION file.
func TestReleaseReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: cross-builds the plugin for 4 targets twice (about 15 s with a warm build cache, minutes cold)")
	}
	version := run(t, repoRoot, nil, "./scripts/version.sh")
	distA, distB := t.TempDir(), t.TempDir()
	copyDir := t.TempDir()
	copySource(t, repoRoot, copyDir)

	run(t, repoRoot, nil, "./scripts/release.sh", distA)
	run(t, copyDir, nil, "./scripts/release.sh", distB)

	a := readFile(t, filepath.Join(distA, "SHA256SUMS"))
	b := readFile(t, filepath.Join(distB, "SHA256SUMS"))
	if a != b {
		t.Fatalf("two release builds differ:\n%s\nvs\n%s", a, b)
	}
	lines := strings.Split(strings.TrimSpace(a), "\n")
	if len(lines) != 4 {
		t.Fatalf("SHA256SUMS has %d lines, want 4 (linux and darwin, amd64 and arm64):\n%s", len(lines), a)
	}
	// sha256sum -c is what an operator runs on a downloaded dist/.
	run(t, distA, nil, "sha256sum", "-c", "--quiet", "SHA256SUMS")

	native := filepath.Join(distA, "vault-plugin-idp-tokens_"+version+"_"+runtime.GOOS+"_"+runtime.GOARCH)
	if _, err := os.Stat(native); err != nil {
		t.Skipf("no release binary for this machine to run: %v", err)
	}
	if got := run(t, "", nil, native, "-version"); got != version {
		t.Errorf("%s -version printed %q, want %q", filepath.Base(native), got, version)
	}
}

// copySource copies what a build reads (Go files, go.mod, go.sum, VERSION,
// scripts) from src to dst.
func copySource(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "dist", ".dev", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, ".sh") &&
			name != "go.mod" && name != "go.sum" && name != "VERSION" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
