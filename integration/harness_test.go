//go:build integration

// Package integration runs the plugin inside a real Vault server, driven with the
// vault CLI as a user would, against in-process fake IdPs and a third-party OpenID
// Provider (oidc-provider under node). Run with `make test-integration`.
//
// The Vault binary comes from scripts/install-vault.sh (VAULT_BIN overrides it); the
// plugin is built once per run into a temporary plugin directory. Every process a
// test starts is killed in t.Cleanup, also when the test fails.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

const pluginName = "vault-plugin-idp-tokens"

var (
	repoRoot   string // absolute path of the repository
	vaultBin   string // the Vault binary
	pluginDir  string // plugin_directory holding the freshly built plugin
	pluginSHA  string // sha256 of the plugin binary, for registration
	pluginVer  string // the VERSION file, stamped into the plugin binary
	setupError error  // set when TestMain could not prepare; every test fails with it
)

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "idp-tokens-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	setupError = setup(tmp)
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

func setup(tmp string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	repoRoot = filepath.Dir(wd)
	if vaultBin, err = vaultproc.FindVault(repoRoot); err != nil {
		return err
	}
	pluginDir = filepath.Join(tmp, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return err
	}
	if pluginVer, err = vaultproc.RepoVersion(repoRoot); err != nil {
		return err
	}
	pluginSHA, err = vaultproc.BuildPluginVersion(repoRoot, "./cmd/"+pluginName, pluginDir, pluginName, pluginVer)
	return err
}

func requireSetup(t *testing.T) {
	t.Helper()
	if setupError != nil {
		t.Fatalf("integration setup failed: %v", setupError)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := vaultproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// proc is a child process (in its own process group) that the test stops in
// t.Cleanup, logging the end of its log if the test failed.
type proc struct {
	*vaultproc.Proc
	name string
}

// startProc starts name with args, output to logPath, and stops it in t.Cleanup.
func startProc(t *testing.T, name, logPath string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p, err := vaultproc.StartProc(bin, args, env, logPath)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	return stopInCleanup(t, name, p)
}

func stopInCleanup(t *testing.T, name string, p *vaultproc.Proc) *proc {
	pr := &proc{Proc: p, name: name}
	t.Cleanup(func() {
		pr.stop(t)
		if t.Failed() {
			t.Logf("last lines of the %s log (%s):\n%s", name, p.LogPath, tail(p.LogPath, 40))
		}
	})
	return pr
}

// stop ends the process group: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop(t *testing.T) {
	if p.Stop() {
		t.Logf("%s did not stop on SIGTERM; killed it", p.name)
	}
}

func tail(path string, n int) string { return vaultproc.Tail(path, n) }

// Vault is one running Vault server and the CLI environment that talks to it.
type Vault struct {
	t     *testing.T
	Addr  string
	Token string
	dir   string
	dev   bool
	proc  *proc
	log   string
	conf  string
	// file-storage mode
	unsealKey string
}

// cliEnv is the environment of every vault CLI and Agent process: no inherited
// VAULT_* settings, a private HOME (token helper), and the server's address.
func (v *Vault) cliEnv(token string) []string {
	env := append(vaultproc.Env(v.dir, v.Addr), "VAULT_FORMAT=table")
	if token != "" {
		env = append(env, "VAULT_TOKEN="+token)
	}
	return env
}

// StartDevVault starts `vault server -dev` with the plugin directory and
// extraArgs (more `vault server` flags, e.g. -log-level=trace), registers the
// plugin by its sha256 and mounts it at idp/.
func StartDevVault(t *testing.T, extraArgs ...string) *Vault {
	t.Helper()
	v := startBareDevVault(t, pluginDir, extraArgs...)
	v.RegisterAndMount()
	return v
}

// startBareDevVault starts `vault server -dev` with plugins as its plugin
// directory and registers nothing.
func startBareDevVault(t *testing.T, plugins string, extraArgs ...string) *Vault {
	t.Helper()
	requireSetup(t)
	dir := t.TempDir()
	srv, err := vaultproc.StartDev(context.Background(), vaultproc.Options{VaultBin: vaultBin, PluginDir: plugins,
		Dir: dir, Args: extraArgs, Env: []string{"VAULT_FORMAT=table"}, HealthTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(filepath.Join(dir, "vault.log"), 40))
	}
	return &Vault{t: t, dir: dir, dev: true, Addr: srv.Addr, Token: srv.Token, log: srv.LogPath,
		proc: stopInCleanup(t, "vault", srv.Proc)}
}

// StartFileVault starts a non-dev Vault with file storage, initialises it with one
// key share, unseals it, registers the plugin and mounts it at idp/.
func StartFileVault(t *testing.T) *Vault {
	t.Helper()
	requireSetup(t)
	dir := t.TempDir()
	port := freePort(t)
	v := &Vault{t: t, dir: dir, Addr: fmt.Sprintf("http://127.0.0.1:%d", port), log: filepath.Join(dir, "vault.log")}
	v.conf = filepath.Join(dir, "vault.hcl")
	writeFile(t, v.conf, fmt.Sprintf(`
storage "file" {
  path = %q
}
listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}
api_addr         = %q
plugin_directory = %q
disable_mlock    = true
`, filepath.Join(dir, "data"), port, v.Addr, pluginDir))
	v.start()
	v.unsealKey, v.Token = v.initOneShare()
	v.unseal()
	v.RegisterAndMount()
	return v
}

// initOneShare runs `vault operator init` with one key share and returns the
// unseal key and the root token.
func (v *Vault) initOneShare() (unsealKey, rootToken string) {
	v.t.Helper()
	var init struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	v.JSON(&init, "operator", "init", "-key-shares=1", "-key-threshold=1")
	if len(init.Keys) != 1 || init.RootToken == "" {
		v.t.Fatalf("operator init gave %+v", init)
	}
	return init.Keys[0], init.RootToken
}

func (v *Vault) start() {
	v.t.Helper()
	v.proc = startProc(v.t, "vault", v.log, v.cliEnv(""), vaultBin, "server", "-config="+v.conf)
	// Any answer will do: 501 uninitialised, 503 sealed.
	if err := v.waitHealth(0, 30*time.Second); err != nil {
		v.t.Fatalf("vault server did not start: %v\n%s", err, tail(v.log, 40))
	}
}

func (v *Vault) unseal() {
	v.t.Helper()
	v.Run("operator", "unseal", v.unsealKey)
	if err := v.waitHealth(200, 30*time.Second); err != nil {
		v.t.Fatalf("vault did not become active after unseal: %v\n%s", err, tail(v.log, 40))
	}
}

// Restart stops the (file-storage) server and starts and unseals it again.
func (v *Vault) Restart() {
	v.t.Helper()
	if v.dev {
		v.t.Fatal("Restart needs a file-storage Vault")
	}
	v.proc.stop(v.t)
	v.start()
	v.unseal()
}

// waitHealth polls /v1/sys/health until it answers status (0: any status).
func (v *Vault) waitHealth(status int, timeout time.Duration) error {
	return vaultproc.WaitHealth(context.Background(), v.Addr, status, timeout, v.proc.Proc)
}

// RegisterAndMount registers the plugin binary by sha256 and version, as
// the README does, and enables it at idp/.
func (v *Vault) RegisterAndMount() {
	v.t.Helper()
	v.Run("plugin", "register", "-sha256="+pluginSHA, "-version="+pluginVer, "-command="+pluginName, "secret", pluginName)
	v.Run("secrets", "enable", "-path=idp", "-plugin-version="+pluginVer, pluginName)
}

// CLIResult is the outcome of one vault CLI command.
type CLIResult struct {
	Stdout, Stderr string
	Err            error
}

// CLIAs runs the vault CLI with token (may be "") and stdin (may be "").
func (v *Vault) CLIAs(token, stdin string, args ...string) CLIResult {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, vaultBin, args...)
	cmd.Env = v.cliEnv(token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	return CLIResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// CLI runs the vault CLI as the root token.
func (v *Vault) CLI(args ...string) CLIResult {
	v.t.Helper()
	return v.CLIAs(v.Token, "", args...)
}

// Run runs the vault CLI as root and fails the test if the command fails.
func (v *Vault) Run(args ...string) string {
	v.t.Helper()
	r := v.CLI(args...)
	if r.Err != nil {
		v.t.Fatalf("vault %s: %v\nstdout: %s\nstderr: %s", strings.Join(redact(args), " "), r.Err, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// JSON runs `vault <args...> -format=json` (the flag goes after the subcommand
// words) as root and decodes stdout into out.
func (v *Vault) JSON(out any, args ...string) {
	v.t.Helper()
	v.JSONAs(v.Token, out, args...)
}

// JSONAs is JSON with a given token.
func (v *Vault) JSONAs(token string, out any, args ...string) {
	v.t.Helper()
	r := v.CLIAs(token, "", withFormatJSON(args)...)
	if r.Err != nil {
		v.t.Fatalf("vault %s: %v\nstdout: %s\nstderr: %s", strings.Join(redact(args), " "), r.Err, r.Stdout, r.Stderr)
	}
	if err := json.Unmarshal([]byte(r.Stdout), out); err != nil {
		v.t.Fatalf("vault %s: decoding %q: %v", strings.Join(redact(args), " "), r.Stdout, err)
	}
}

// withFormatJSON inserts -format=json right after the command words (before the
// first flag or path argument), where every vault subcommand accepts it.
func withFormatJSON(args []string) []string {
	words := 1
	if len(args) > 0 {
		switch args[0] {
		case "operator", "plugin", "secrets", "lease", "token", "policy", "auth":
			words = 2
		}
	}
	if words > len(args) {
		words = len(args)
	}
	out := append([]string{}, args[:words]...)
	out = append(out, "-format=json")
	return append(out, args[words:]...)
}

// redact hides the values of secret-looking key=value arguments in failure output.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if k, _, ok := strings.Cut(a, "="); ok {
			switch k {
			case "client_secret", "password", "security_key", "access_code":
				out[i] = k + "=<redacted>"
			}
		}
	}
	return out
}

// Secret is the JSON form of `vault read -format=json` of a leased secret.
type Secret struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	LeaseDuration int            `json:"lease_duration"`
	Renewable     bool           `json:"renewable"`
	Data          map[string]any `json:"data"`
	Warnings      []string       `json:"warnings"`
}

func (s Secret) String(key string) string {
	v, _ := s.Data[key].(string)
	return v
}

// ReadCreds reads idp/creds/<role> as root.
func (v *Vault) ReadCreds(role string, args ...string) Secret {
	v.t.Helper()
	var s Secret
	v.JSON(&s, append([]string{"read", "idp/creds/" + role}, args...)...)
	if s.String("access_token") == "" {
		v.t.Fatalf("idp/creds/%s has no access_token: %+v", role, s.Data)
	}
	return s
}

// Write runs `vault write path k=v...` as root.
func (v *Vault) Write(path string, kv ...string) {
	v.t.Helper()
	v.Run(append([]string{"write", path}, kv...)...)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every interval until it is true or timeout passes.
func eventually(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// bearerStatus GETs url with the bearer token and returns the status code.
func bearerStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// installer runs one of the project's install scripts once per run; what
// it prints is the path of what it installed (cached after the first run).
type installer struct {
	script string
	once   sync.Once
	path   string
	err    error
}

var (
	testIdPInstall = &installer{script: "install-test-idp.sh"}
	hydraInstall   = &installer{script: "install-hydra.sh"}
)

func (i *installer) get(t *testing.T) string {
	t.Helper()
	i.once.Do(func() {
		began := time.Now()
		cmd := exec.Command(filepath.Join(repoRoot, "scripts", i.script))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			i.err = fmt.Errorf("scripts/%s: %w", i.script, err)
			return
		}
		i.path = strings.TrimSpace(string(out))
		t.Logf("scripts/%s: %s (%s)", i.script, i.path, time.Since(began).Round(time.Second))
	})
	if i.err != nil {
		t.Fatal(i.err)
	}
	return i.path
}

// oidcProviderScript installs oidc-provider (once per run) and returns server.js.
// The script installs Node.js too when it is missing, so node is looked for
// only after it ran.
func oidcProviderScript(t *testing.T) string {
	t.Helper()
	script := testIdPInstall.get(t)
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("scripts/install-test-idp.sh ran, yet node is not on the PATH: %v", err)
	}
	return script
}

// policyToken writes a policy and returns a token holding only it.
func (v *Vault) policyToken(name, policy string) string {
	v.t.Helper()
	if r := v.CLIAs(v.Token, policy, "policy", "write", name, "-"); r.Err != nil {
		v.t.Fatalf("policy write: %v %s", r.Err, r.Stderr)
	}
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	v.JSON(&created, "token", "create", "-policy="+name, "-ttl=1h")
	return created.Auth.ClientToken
}
