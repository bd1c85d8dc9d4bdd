// Package vaultproc starts and stops a real Vault server process for tests
// and benchmarks: a `vault server -dev` on a free loopback port, with a
// plugin directory, health waits, plugin registration by sha256, mounts and
// an API client. Every process it starts runs in its own process group, so
// Stop also ends the plugin processes Vault started.
package vaultproc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// RootToken is the dev server's root token.
const RootToken = "root"

// FindVault returns the Vault binary: $VAULT_BIN, else what
// scripts/install-vault.sh (under repoRoot) prints (it builds and caches it).
func FindVault(repoRoot string) (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "install-vault.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/install-vault.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// VersionVar is the variable -ldflags -X stamps with the plugin's version.
const VersionVar = "github.com/idp-tokens/vault-plugin-idp-tokens.Version"

// RepoVersion is the version in repoRoot's VERSION file, the one every
// build of the plugin reports (scripts/version.sh reads the same line).
func RepoVersion(repoRoot string) (string, error) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "VERSION"))
	if err != nil {
		return "", err
	}
	v, _, _ := strings.Cut(string(b), "\n")
	if v = strings.TrimSpace(v); !strings.HasPrefix(v, "v") {
		return "", fmt.Errorf("VERSION holds %q, want a version such as v1.2.3", v)
	}
	return v, nil
}

// BuildPlugin builds the Go package pkg (relative to repoRoot, e.g.
// "./cmd/foo") into dir/name, stamped with the VERSION file, and returns
// the binary's sha256 in hex.
func BuildPlugin(repoRoot, pkg, dir, name string) (string, error) {
	version, err := RepoVersion(repoRoot)
	if err != nil {
		return "", err
	}
	return BuildPluginVersion(repoRoot, pkg, dir, name, version)
}

// BuildPluginVersion is BuildPlugin stamped with version instead, for
// tests that register two versions of the plugin.
func BuildPluginVersion(repoRoot, pkg, dir, name, version string) (string, error) {
	bin := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-X "+VersionVar+"="+version, "-o", bin, pkg)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, out)
	}
	return FileSHA256(bin)
}

// FileSHA256 is the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Options configures a dev server.
type Options struct {
	VaultBin  string
	PluginDir string // plugin_directory; may be empty
	Dir       string // working directory for config and log; a temp dir when empty
	// ExtraConfig is appended to the HCL config (e.g. raw_storage_endpoint = true).
	ExtraConfig string
	// Args are extra `vault server` flags (e.g. -log-level=trace).
	Args []string
	// Env is added to the server's environment.
	Env []string
	// HealthTimeout is how long each start attempt may take to become
	// healthy; 60 s when zero.
	HealthTimeout time.Duration
}

// Server is a running Vault dev server.
type Server struct {
	Addr    string // http://127.0.0.1:PORT
	Token   string
	Client  *api.Client
	Dir     string
	LogPath string
	Proc    *Proc
	ownDir  bool
}

// StartDev starts `vault server -dev` on a free loopback port and waits
// until it is healthy and active. It retries on another port if the first
// was taken in the meantime.
func StartDev(ctx context.Context, o Options) (*Server, error) {
	dir, own := o.Dir, false
	if dir == "" {
		d, err := os.MkdirTemp("", "vaultproc-")
		if err != nil {
			return nil, err
		}
		dir, own = d, true
	}
	conf := filepath.Join(dir, "vault.hcl")
	hcl := "disable_mlock = true\n" + o.ExtraConfig + "\n"
	if o.PluginDir != "" {
		hcl += fmt.Sprintf("plugin_directory = %q\n", o.PluginDir)
	}
	if err := os.WriteFile(conf, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	timeout := o.HealthTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: fmt.Sprintf("http://127.0.0.1:%d", port), Token: RootToken, Dir: dir,
			LogPath: filepath.Join(dir, "vault.log"), ownDir: own}
		args := append([]string{"server", "-dev", "-dev-root-token-id=" + RootToken,
			fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-config=" + conf}, o.Args...)
		if s.Proc, err = StartProc(o.VaultBin, args, append(Env(dir, s.Addr), o.Env...), s.LogPath); err != nil {
			return nil, err
		}
		if lastErr = s.WaitHealthy(ctx, timeout); lastErr == nil {
			cfg := api.DefaultConfig()
			cfg.Address = s.Addr
			c, err := api.NewClient(cfg)
			if err != nil {
				s.Stop()
				return nil, err
			}
			c.SetToken(s.Token)
			s.Client = c
			return s, nil
		}
		s.stopKeepDir()
	}
	if own {
		os.RemoveAll(dir)
	}
	return nil, fmt.Errorf("vault dev server did not start: %w", lastErr)
}

// Env is the environment of a Vault server or CLI: this process'
// environment without its VAULT_* settings and HOME, a private HOME (the
// CLI's token helper writes there) and VAULT_ADDR.
func Env(home, addr string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "VAULT_ADDR="+addr)
}

// Proc is a child process in its own process group, so that ending it also
// ends what it started (Vault's plugin processes).
type Proc struct {
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// StartProc starts bin with args and the environment env, its output
// appended to logPath.
func StartProc(bin string, args, env []string, logPath string) (*Proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &Proc{LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process ID, also its process group ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process' exit error, once Done is closed.
func (p *Proc) Err() error { return p.err }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process group: SIGTERM, SIGKILL after 10 s, then SIGKILL
// for processes of the group that outlived the leader (Vault's plugins). It
// does nothing if the process has already exited, and reports whether
// SIGTERM was not enough.
func (p *Proc) Stop() (killed bool) {
	pgid := p.cmd.Process.Pid
	if p.Exited() {
		// Vault is gone, but its plugin processes share its group and may
		// have outlived it. The group id stays taken while any member lives.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return false
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		killed = true
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // plugins that outlived Vault
	return killed
}

// WaitHealth polls addr's sys/health until it answers status (0: any
// status, e.g. 501 uninitialised or 503 sealed) or timeout passes. It gives
// up early when ctx ends or when p, the Vault process, exits.
func WaitHealth(ctx context.Context, addr string, status int, timeout time.Duration, p *Proc) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	last := errors.New("no answer")
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("vault exited: %w", p.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(addr + "/v1/sys/health")
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

// WaitHealthy polls sys/health until it answers 200 (active, unsealed).
func (s *Server) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	err := WaitHealth(ctx, s.Addr, http.StatusOK, timeout, s.Proc)
	if err != nil && s.Proc.Exited() {
		return fmt.Errorf("%w; log:\n%s", err, Tail(s.LogPath, 30))
	}
	return err
}

// Stop ends Vault and every process of its group (its plugins): SIGTERM,
// SIGKILL after 10 s. It removes the directory if StartDev created it.
func (s *Server) Stop() {
	s.stopKeepDir()
	if s.ownDir {
		os.RemoveAll(s.Dir)
	}
}

func (s *Server) stopKeepDir() {
	if s.Proc != nil {
		s.Proc.Stop()
	}
}

// RegisterPlugin registers a secrets plugin binary (in the plugin
// directory) by name and sha256.
func (s *Server) RegisterPlugin(name, sha string) error {
	return s.Client.Sys().RegisterPlugin(&api.RegisterPluginInput{
		Name: name, Type: api.PluginTypeSecrets, Command: name, SHA256: sha,
	})
}

// Mount enables a secrets engine of type typ at path.
func (s *Server) Mount(path, typ string) error {
	return s.Client.Sys().Mount(path, &api.MountInput{Type: typ})
}

// PluginPIDs lists the processes whose executable name is name, among
// Vault's process group (the plugin processes it started).
func (s *Server) PluginPIDs(name string) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		// comm is cut at 15 characters.
		if c := strings.TrimSpace(string(comm)); c == name || (len(c) == 15 && strings.HasPrefix(name, c)) {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid == s.Proc.Pid() {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// VaultPID is the server's process ID.
func (s *Server) VaultPID() int { return s.Proc.Pid() }

// RSS is a process' resident set size in bytes (VmRSS of /proc/PID/status).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Tail is the last n lines of a file (for error messages).
func Tail(path string, n int) string {
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

// CPUTime is a process' user+system CPU time so far (/proc/PID/stat), at
// the kernel's clock-tick resolution (normally 10 ms).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields follow the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond, nil
}
