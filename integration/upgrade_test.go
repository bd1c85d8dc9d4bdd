//go:build integration

package integration

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// release is one version of the plugin as `make release` makes it and an
// operator installs it: the release file, copied into the plugin directory
// under its own name, and its sha256 from SHA256SUMS.
type release struct {
	version, file, sha string
}

// buildRelease runs scripts/release.sh for this machine's platform, stamped
// with version, and copies the binary into plugins as an operator would.
func buildRelease(t *testing.T, plugins, version string) release {
	t.Helper()
	dist := t.TempDir()
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "release.sh"), dist)
	cmd.Env = append(os.Environ(), "VERSION="+version, "TARGETS="+runtime.GOOS+"/"+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release.sh with VERSION=%s: %v\n%s", version, err, out)
	}
	r := release{version: version, file: pluginName + "_" + version + "_" + runtime.GOOS + "_" + runtime.GOARCH}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(sums), "\n") {
		if sha, name, ok := strings.Cut(line, "  "); ok && name == r.file {
			r.sha = sha
		}
	}
	if r.sha == "" {
		t.Fatalf("SHA256SUMS has no line for %s:\n%s", r.file, sums)
	}
	// Moved, not copied: a file this process wrote could still be open for
	// writing in a child forked meanwhile by a parallel test, and exec would
	// fail with "text file busy".
	if err := os.Rename(filepath.Join(dist, r.file), filepath.Join(plugins, r.file)); err != nil {
		t.Fatal(err)
	}
	// The operator's check of what they are about to register.
	out, err := exec.Command(filepath.Join(plugins, r.file), "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != version {
		t.Fatalf("%s -version printed %q (%v), want %s", r.file, out, err, version)
	}
	return r
}

// register is the README's `vault plugin register -sha256 -version -command`.
func (v *Vault) register(r release) CLIResult {
	v.t.Helper()
	return v.CLI("plugin", "register", "-sha256="+r.sha, "-version="+r.version, "-command="+r.file,
		"secret", pluginName)
}

// switchTo is the README's upgrade (or downgrade) of the idp/ mount to a
// registered version: tune, then reload the mount's plugin.
func (v *Vault) switchTo(r release) {
	v.t.Helper()
	v.Run("secrets", "tune", "-plugin-version="+r.version, "idp/")
	v.Run("write", "sys/plugins/reload/backend", "mounts=idp/")
	waitMountReady(v)
}

// mountInfo is an entry of `vault secrets list -detailed -format=json`.
type mountInfo struct {
	Type                 string `json:"type"`
	PluginVersion        string `json:"plugin_version"`
	RunningPluginVersion string `json:"running_plugin_version"`
	RunningSHA256        string `json:"running_sha256"`
}

// checkRunning asserts what `vault secrets list -detailed` says runs at idp/.
func (v *Vault) checkRunning(r release) {
	v.t.Helper()
	var mounts map[string]mountInfo
	v.JSON(&mounts, "secrets", "list", "-detailed")
	m, ok := mounts["idp/"]
	if !ok {
		v.t.Fatalf("vault secrets list has no idp/: %v", mounts)
	}
	if m.Type != pluginName || m.PluginVersion != r.version || m.RunningPluginVersion != r.version || m.RunningSHA256 != r.sha {
		v.t.Errorf("idp/ is %+v, want %s plugin_version and running_plugin_version %s, running_sha256 %s",
			m, pluginName, r.version, r.sha)
	}
}

// TestUpgrade follows the README's install and upgrade steps with the vault
// CLI: release builds of two versions side by side in the plugin directory,
// each registered with -sha256 and -version; the mount is tuned to the new
// version, reloaded, and back again. The cached token is served throughout
// with no new IdP request, since it lives in Vault storage.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	plugins := t.TempDir()
	v1 := buildRelease(t, plugins, "v0.9.0-test1")
	v := startBareDevVault(t, plugins)

	// Install.
	if r := v.register(v1); r.Err != nil {
		t.Fatalf("vault plugin register %s: %v\n%s", v1.version, r.Err, r.Stderr)
	}
	v.Run("secrets", "enable", "-path=idp", "-plugin-version="+v1.version, pluginName)
	v.checkRunning(v1)

	idp := StartFakeIdP(t, fakeidp.Options{
		Style: fakeidp.StyleOAuth2, ClientID: "upgrade-client", ClientSecret: "upgrade-secret",
		Scopes: []string{"read"}, TokenTTL: 10 * time.Minute,
	})
	v.Write("idp/config/up", "provider=oauth2", "token_url="+idp.TokenURL(),
		"client_id=upgrade-client", "client_secret=upgrade-secret", "scopes=read")
	v.Write("idp/roles/up", "config=up", "grant_type=client_credentials")
	tok := v.ReadCreds("up").String("access_token")
	if n := idp.TokenRequests(); n != 1 {
		t.Fatalf("IdP saw %d token requests after the first read, want 1", n)
	}
	sameToken := func(after string) {
		t.Helper()
		s := v.ReadCreds("up")
		if s.String("access_token") != tok {
			t.Errorf("after %s idp/creds/up returned another token, want the cached one", after)
		}
		if n := idp.TokenRequests(); n != 1 {
			t.Errorf("after %s the IdP saw %d token requests, want 1", after, n)
		}
		if got := bearerStatus(t, idp.ResourceURL(), s.String("access_token")); got != http.StatusOK {
			t.Errorf("after %s the token gets %d at the IdP, want 200", after, got)
		}
	}

	v2 := buildRelease(t, plugins, "v0.9.0-test2")
	// A version mismatch: Vault checks the version the binary
	// reports against -version.
	wrong := v2
	wrong.version = v1.version
	if r := v.register(wrong); r.Err == nil || !strings.Contains(r.Stderr, "did not match requested version") {
		t.Fatalf("registering the %s binary as %s: err=%v stderr=%s, want a version mismatch", v2.version, v1.version, r.Err, r.Stderr)
	}

	// Upgrade.
	if r := v.register(v2); r.Err != nil {
		t.Fatalf("vault plugin register %s: %v\n%s", v2.version, r.Err, r.Stderr)
	}
	v.switchTo(v2)
	v.checkRunning(v2)
	sameToken("the upgrade to " + v2.version)

	// Downgrade: the old release is still in the plugin directory and the catalog.
	v.switchTo(v1)
	v.checkRunning(v1)
	sameToken("the downgrade to " + v1.version)
}
