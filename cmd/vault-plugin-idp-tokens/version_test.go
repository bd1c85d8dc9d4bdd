package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const repoRoot = "../.."

// run runs a command in dir with extra environment and returns its stdout.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// TestVersionFlag: what `make build` makes answers -version with the
// VERSION file, and a VERSION override is what gets stamped.
func TestVersionFlag(t *testing.T) {
	want := run(t, repoRoot, nil, "./scripts/version.sh")
	raw, err := os.ReadFile(filepath.Join(repoRoot, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(raw)) != want {
		t.Fatalf("scripts/version.sh prints %q, VERSION holds %q", want, raw)
	}

	bin := filepath.Join(t.TempDir(), "plugin")
	run(t, repoRoot, nil, "./scripts/build.sh", bin)
	if got := run(t, "", nil, bin, "-version"); got != want {
		t.Errorf("-version printed %q, want %q", got, want)
	}

	run(t, repoRoot, []string{"VERSION=v9.8.7-override"}, "./scripts/build.sh", bin)
	if got := run(t, "", nil, bin, "-version"); got != "v9.8.7-override" {
		t.Errorf("built with VERSION=v9.8.7-override, -version printed %q", got)
	}
}
