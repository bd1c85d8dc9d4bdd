package main

import (
	"context"
	"fmt"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	idptokens "github.com/idp-tokens/vault-plugin-idp-tokens"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/storagecount"
)

// startupCalls counts, in-process, the storage calls the plugin makes when
// it starts on storage that holds o.restart configs and roles (what a Vault
// restart, a plugin reload or a failover does), and on its first read.
func (e *env) startupCalls() error {
	mem := &logical.InmemStorage{}

	b, err := mountInProcess(mem)
	if err != nil {
		return err
	}
	do := func(b logical.Backend, s logical.Storage, op logical.Operation, path string, data map[string]any) error {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Data: data, Storage: s})
		if err == nil && resp != nil && resp.IsError() {
			err = resp.Error()
		}
		return err
	}
	for i := range e.o.restart {
		n := fmt.Sprintf("r%05d", i)
		if err := do(b, mem, logical.UpdateOperation, "config/"+n, map[string]any{
			"token_url": e.idpTS.URL + e.idp.TokenPath(), "client_id": clientID, "client_secret": secret,
		}); err != nil {
			return err
		}
		if err := do(b, mem, logical.UpdateOperation, "roles/"+n, map[string]any{"config": n, "scopes": "read"}); err != nil {
			return err
		}
	}
	if err := do(b, mem, logical.ReadOperation, "token/r00000", nil); err != nil { // a stored token too
		return err
	}
	counted := &storagecount.Storage{Storage: mem}
	t0 := time.Now()
	b2, err := mountInProcess(counted)
	if err != nil {
		return err
	}
	e.rep.raft.startCalls = counted.String()
	e.rep.raft.startTime = time.Since(t0)
	counted.Reset()
	if err := do(b2, counted, logical.ReadOperation, "token/r00000", nil); err != nil {
		return err
	}
	e.rep.raft.firstReadCalls = counted.String()
	e.rep.raft.startEntries = e.o.restart
	return nil
}

// mountInProcess mounts the plugin's backend on s in this process (a start
// after a restart, reload or failover when s holds a mount's storage).
func mountInProcess(s logical.Storage) (logical.Backend, error) {
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	conf.Logger = hclog.NewNullLogger()
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: 768 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}
	return idptokens.Factory(context.Background(), conf)
}
