// Package storagecount wraps a Vault storage to count the calls made to
// it: in an external plugin each is a gRPC round trip to Vault, so tests
// and the benchmark assert and report them.
package storagecount

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/vault/sdk/logical"
)

// Storage counts the calls made through it to the storage it wraps.
type Storage struct {
	logical.Storage
	Gets, Lists, Puts, Deletes atomic.Int64
}

func (s *Storage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	s.Gets.Add(1)
	return s.Storage.Get(ctx, k)
}

func (s *Storage) List(ctx context.Context, p string) ([]string, error) {
	s.Lists.Add(1)
	return s.Storage.List(ctx, p)
}

func (s *Storage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.Puts.Add(1)
	return s.Storage.Put(ctx, e)
}

func (s *Storage) Delete(ctx context.Context, k string) error {
	s.Deletes.Add(1)
	return s.Storage.Delete(ctx, k)
}

// Total is every call counted.
func (s *Storage) Total() int64 {
	return s.Gets.Load() + s.Lists.Load() + s.Puts.Load() + s.Deletes.Load()
}

// Reset starts the counts again.
func (s *Storage) Reset() {
	s.Gets.Store(0)
	s.Lists.Store(0)
	s.Puts.Store(0)
	s.Deletes.Store(0)
}

func (s *Storage) String() string {
	return fmt.Sprintf("%d get, %d list, %d put, %d delete", s.Gets.Load(), s.Lists.Load(), s.Puts.Load(), s.Deletes.Load())
}
