package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	idptokens "github.com/idp-tokens/vault-plugin-idp-tokens"
)

// countingStorage counts the storage calls the plugin makes; in a real
// Vault each is a gRPC round trip from the plugin to Vault.
type countingStorage struct {
	logical.Storage
	gets, lists, puts, deletes atomic.Int64
}

func (s *countingStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	s.gets.Add(1)
	return s.Storage.Get(ctx, k)
}

func (s *countingStorage) List(ctx context.Context, p string) ([]string, error) {
	s.lists.Add(1)
	return s.Storage.List(ctx, p)
}

func (s *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.puts.Add(1)
	return s.Storage.Put(ctx, e)
}

func (s *countingStorage) Delete(ctx context.Context, k string) error {
	s.deletes.Add(1)
	return s.Storage.Delete(ctx, k)
}

func (s *countingStorage) reset() {
	s.gets.Store(0)
	s.lists.Store(0)
	s.puts.Store(0)
	s.deletes.Store(0)
}

func (s *countingStorage) String() string {
	return fmt.Sprintf("%d get, %d list, %d put, %d delete", s.gets.Load(), s.lists.Load(), s.puts.Load(), s.deletes.Load())
}

// startupCalls counts, in-process, the storage calls the plugin makes when
// it starts on storage that holds o.restart configs and roles (what a Vault
// restart, a plugin reload or a failover does), and on its first read.
func (e *env) startupCalls() error {
	mem := &logical.InmemStorage{}
	mount := func(s logical.Storage) (logical.Backend, error) {
		conf := logical.TestBackendConfig()
		conf.StorageView = s
		conf.Logger = hclog.NewNullLogger()
		conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: 768 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}
		return idptokens.Factory(context.Background(), conf)
	}
	b, err := mount(mem)
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
	counted := &countingStorage{Storage: mem}
	t0 := time.Now()
	b2, err := mount(counted)
	if err != nil {
		return err
	}
	e.rep.raft.startCalls = counted.String()
	e.rep.raft.startTime = time.Since(t0)
	counted.reset()
	if err := do(b2, counted, logical.ReadOperation, "token/r00000", nil); err != nil {
		return err
	}
	e.rep.raft.firstReadCalls = counted.String()
	e.rep.raft.startEntries = e.o.restart
	return nil
}
