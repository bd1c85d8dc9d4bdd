package vaultproc

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/vault/api"
)

// RaftServer is a single-node Vault with integrated storage (raft): every
// lease, token and config write is a raft log entry, as in production.
type RaftServer struct {
	*Server
	bin, conf string
	env       []string
	unsealKey string
	timeout   time.Duration
}

// StartRaft starts a one-node raft Vault on free loopback ports in o.Dir,
// initialises it with one key share, unseals it and waits until it is
// active. o.ExtraConfig is appended to its HCL (a telemetry stanza, say).
func StartRaft(ctx context.Context, o Options) (*RaftServer, error) {
	dir := o.Dir
	if dir == "" {
		return nil, fmt.Errorf("StartRaft needs a directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		return nil, err
	}
	apiPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	clusterPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	hcl := fmt.Sprintf(`
storage "raft" {
  path    = %q
  node_id = "node1"
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr      = %q
cluster_addr  = "https://127.0.0.1:%d"
disable_mlock = true
%s
`, filepath.Join(dir, "raft"), apiPort, clusterPort, addr, clusterPort, o.ExtraConfig)
	if o.PluginDir != "" {
		hcl += fmt.Sprintf("plugin_directory = %q\n", o.PluginDir)
	}
	conf := filepath.Join(dir, "vault.hcl")
	if err := os.WriteFile(conf, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	timeout := o.HealthTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	r := &RaftServer{Server: &Server{Addr: addr, Dir: dir, LogPath: filepath.Join(dir, "vault.log")},
		bin: o.VaultBin, conf: conf, env: append(Env(dir, addr), o.Env...), timeout: timeout}
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		r.Stop()
		return nil, err
	}
	init, err := c.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		r.Stop()
		return nil, fmt.Errorf("operator init: %w", err)
	}
	r.unsealKey, r.Token = init.KeysB64[0], init.RootToken
	c.SetToken(r.Token)
	r.Client = c
	if err := r.unseal(ctx); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

func (r *RaftServer) start(ctx context.Context) error {
	p, err := StartProc(r.bin, []string{"server", "-config=" + r.conf}, r.env, r.LogPath)
	if err != nil {
		return err
	}
	r.Proc = p
	// Any answer will do: 501 uninitialised, 503 sealed.
	if err := WaitHealth(ctx, r.Addr, 0, r.timeout, p); err != nil {
		r.Stop()
		return fmt.Errorf("raft vault did not start: %w; log:\n%s", err, Tail(r.LogPath, 30))
	}
	return nil
}

// unseal unseals with the one key share and waits until the node is active.
func (r *RaftServer) unseal(ctx context.Context) error {
	if _, err := r.Client.Sys().UnsealWithContext(ctx, r.unsealKey); err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	if err := WaitHealth(ctx, r.Addr, http.StatusOK, r.timeout, r.Proc); err != nil {
		return fmt.Errorf("raft vault did not become active: %w; log:\n%s", err, Tail(r.LogPath, 30))
	}
	return nil
}

// Restart stops the server (and its plugins), starts it on the same data,
// unseals it and waits until it is active again. It returns when the node
// answers as active; mounts may still be loading.
func (r *RaftServer) Restart(ctx context.Context) error {
	r.Proc.Stop()
	if err := r.start(ctx); err != nil {
		return err
	}
	return r.unseal(ctx)
}

// CommittedIndex is the raft log's committed index (sys/leader): its
// growth counts raft writes.
func (r *RaftServer) CommittedIndex() (uint64, error) {
	l, err := r.Client.Sys().Leader()
	if err != nil {
		return 0, err
	}
	return l.RaftCommittedIndex, nil
}
