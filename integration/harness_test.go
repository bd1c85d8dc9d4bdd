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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	pluginName = "vault-plugin-idp-tokens"
	rootToken  = "root"
)

var (
	repoRoot   string // absolute path of the repository
	vaultBin   string // the Vault binary
	pluginDir  string // plugin_directory holding the freshly built plugin
	pluginSHA  string // sha256 of the plugin binary, for registration
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

	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "install-vault.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("scripts/install-vault.sh: %w", err)
	}
	vaultBin = strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(vaultBin, '\n'); i >= 0 {
		vaultBin = vaultBin[i+1:]
	}

	pluginDir = filepath.Join(tmp, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(pluginDir, pluginName)
	build := exec.Command("go", "build", "-o", bin, "./cmd/"+pluginName)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the plugin: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	pluginSHA = hex.EncodeToString(sum[:])
	return nil
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is a child process in its own process group, so that ending it also ends
// what it started (Vault's plugin processes).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc starts name with args, output to logPath, and kills it in t.Cleanup.
func startProc(t *testing.T, name, logPath string, env []string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("last lines of the %s log (%s):\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop(t *testing.T) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Logf("%s did not stop on SIGTERM; killing it", p.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Plugin processes that outlived Vault are in the same group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Vault is one running Vault server and the CLI environment that talks to it.
type Vault struct {
	t     *testing.T
	Addr  string
	Token string
	dir   string
	port  int
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
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+v.dir, "VAULT_ADDR="+v.Addr, "VAULT_FORMAT=table")
	if token != "" {
		env = append(env, "VAULT_TOKEN="+token)
	}
	return env
}

// StartDevVault starts `vault server -dev` with the plugin directory, registers the
// plugin by its sha256 and mounts it at idp/.
func StartDevVault(t *testing.T) *Vault {
	t.Helper()
	requireSetup(t)
	dir := t.TempDir()
	v := &Vault{t: t, dir: dir, dev: true, Token: rootToken, log: filepath.Join(dir, "vault.log")}
	v.conf = filepath.Join(dir, "vault.hcl")
	writeFile(t, v.conf, fmt.Sprintf("plugin_directory = %q\ndisable_mlock = true\n", pluginDir))
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		v.port = freePort(t)
		v.Addr = fmt.Sprintf("http://127.0.0.1:%d", v.port)
		v.proc = startProc(t, "vault", v.log, v.cliEnv(""), vaultBin, "server", "-dev",
			"-dev-root-token-id="+rootToken, fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", v.port),
			"-config="+v.conf)
		if lastErr = v.waitHealth(200, 30*time.Second); lastErr == nil {
			break
		}
		v.proc.stop(t)
	}
	if lastErr != nil {
		t.Fatalf("vault dev server did not start: %v\n%s", lastErr, tail(v.log, 40))
	}
	v.RegisterAndMount()
	return v
}

// StartFileVault starts a non-dev Vault with file storage, initialises it with one
// key share, unseals it, registers the plugin and mounts it at idp/.
func StartFileVault(t *testing.T) *Vault {
	t.Helper()
	requireSetup(t)
	dir := t.TempDir()
	v := &Vault{t: t, dir: dir, log: filepath.Join(dir, "vault.log")}
	v.port = freePort(t)
	v.Addr = fmt.Sprintf("http://127.0.0.1:%d", v.port)
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
`, filepath.Join(dir, "data"), v.port, v.Addr, pluginDir))
	v.start()

	var init struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	v.JSON(&init, "operator", "init", "-key-shares=1", "-key-threshold=1")
	if len(init.Keys) != 1 || init.RootToken == "" {
		t.Fatalf("operator init gave %+v", init)
	}
	v.unsealKey, v.Token = init.Keys[0], init.RootToken
	v.unseal()
	v.RegisterAndMount()
	return v
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
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	last := errors.New("no answer")
	for time.Now().Before(deadline) {
		if v.proc.exited() {
			return fmt.Errorf("vault exited: %v", v.proc.err)
		}
		resp, err := client.Get(v.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if status == 0 || resp.StatusCode == status {
				return nil
			}
			last = fmt.Errorf("health answered %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// RegisterAndMount registers the plugin binary by sha256 and enables it at idp/.
func (v *Vault) RegisterAndMount() {
	v.t.Helper()
	v.Run("plugin", "register", "-sha256="+pluginSHA, "-command="+pluginName, "secret", pluginName)
	v.Run("secrets", "enable", "-path=idp", pluginName)
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

var nodeOnce struct {
	sync.Once
	script string
	err    error
}

// oidcProviderScript installs oidc-provider (once per run) and returns server.js.
func oidcProviderScript(t *testing.T) string {
	t.Helper()
	nodeOnce.Do(func() {
		if _, err := exec.LookPath("node"); err != nil {
			nodeOnce.err = fmt.Errorf("node is not installed: %w", err)
			return
		}
		cmd := exec.Command(filepath.Join(repoRoot, "scripts", "install-test-idp.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			nodeOnce.err = fmt.Errorf("scripts/install-test-idp.sh: %w", err)
			return
		}
		nodeOnce.script = strings.TrimSpace(string(out))
	})
	if nodeOnce.err != nil {
		t.Fatal(nodeOnce.err)
	}
	return nodeOnce.script
}
