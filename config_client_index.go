// The client index: which configs name which client of which IdP, so that
// a config write finds another config of a single-active client without
// reading every config (a mount may hold thousands).

package idptokens

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

// clientIndexVersion counts the changes of clientKeys and normalURL (3:
// paths case-blind, the discovered token endpoint): an index built by an
// older version is built again once, on first use.
const clientIndexVersion = "3"

// clientKeys are the index keys of a config's client: its client_id at its
// token endpoint (explicit or discovered), and at its issuer.
func clientKeys(e *configEntry) []string {
	var keys []string
	for _, at := range []struct{ kind, url string }{{"token", e.tokenEndpoint()}, {"issuer", e.Issuer}} {
		if at.url != "" {
			sum := sha256.Sum256([]byte(at.kind + "\x00" + normalURL(at.url) + "\x00" + e.ClientID))
			keys = append(keys, hex.EncodeToString(sum[:16]))
		}
	}
	return keys
}

// normalURL is a token endpoint as the IdP tells clients apart: scheme,
// host and path case-blind (IdentityServer, behind MWI and MicroTek, routes
// paths so), a default port, repeated slashes and a trailing slash of the
// path ignored, and the query ignored (an endpoint does not become another
// client's by a parameter). Host names are not resolved: localhost and
// 127.0.0.1 stay different (docs/idps.md says so).
func normalURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return raw
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if port := u.Port(); (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		host = strings.TrimSuffix(host, ":"+port)
	}
	p := strings.ToLower(u.Path)
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return scheme + "://" + host + strings.TrimSuffix(p, "/")
}

// configsOfClient names the configs that may hold e's client (sameClient
// decides).
func (b *idpBackend) configsOfClient(ctx context.Context, s logical.Storage, e *configEntry) ([]string, error) {
	if err := b.ensureClientIndex(ctx, s); err != nil {
		return nil, err
	}
	var names []string
	for _, k := range clientKeys(e) {
		list, err := readClientIndex(ctx, s, k)
		if err != nil {
			return nil, err
		}
		names = append(names, list...)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// The index must never miss a config that storage holds, so a write
// enters a config under its client's keys before the config is stored, and
// a config leaves its former client's keys only once storage no longer
// holds it there. A failure in between leaves an entry naming a config that
// does not hold that client: harmless, since every candidate is loaded and
// checked with sameClient.

// enterClientIndex adds a config to the keys of its client e.
func (b *idpBackend) enterClientIndex(ctx context.Context, s logical.Storage, name string, e *configEntry) error {
	if err := b.ensureClientIndex(ctx, s); err != nil {
		return err
	}
	for _, k := range clientKeys(e) {
		if err := editClientIndex(ctx, s, k, name, true); err != nil {
			return err
		}
	}
	return nil
}

// leaveClientIndex removes a config, once stored or deleted, from the keys
// of its former client old (nil: none) that its client now (e, nil when
// deleted) does not share. A failure leaves only stale entries, so it is
// logged, and the request, which took effect, succeeds.
func (b *idpBackend) leaveClientIndex(ctx context.Context, s logical.Storage, name string, old, e *configEntry) {
	if old == nil {
		return
	}
	var keep []string
	if e != nil {
		keep = clientKeys(e)
	}
	for _, k := range clientKeys(old) {
		if slices.Contains(keep, k) {
			continue
		}
		if err := editClientIndex(ctx, s, k, name, false); err != nil {
			b.Logger().Warn("the client index still names the config under its former client (harmless: candidates are checked)", "config", name, "error", err)
			return
		}
	}
}

// ensureClientIndex enters every stored config once, the first time the
// index is used.
func (b *idpBackend) ensureClientIndex(ctx context.Context, s logical.Storage) error {
	if b.clientIndexBuilt.Load() {
		return nil
	}
	marker, err := s.Get(ctx, clientIndexBuiltKey)
	if err != nil {
		return err
	}
	if marker == nil || string(marker.Value) != clientIndexVersion {
		// Entries under keys of an older version stay: a candidate is
		// always checked with sameClient, so they cost a read, never a
		// wrong answer.
		names, err := s.List(ctx, configPrefix)
		if err != nil {
			return err
		}
		for _, name := range names {
			e, err := loadConfigEntry(ctx, s, name)
			if err != nil {
				return err
			}
			if e == nil {
				continue // deleted since the list
			}
			for _, k := range clientKeys(e) {
				if err := editClientIndex(ctx, s, k, name, true); err != nil {
					return err
				}
			}
		}
		if err := s.Put(ctx, &logical.StorageEntry{Key: clientIndexBuiltKey, Value: []byte(clientIndexVersion)}); err != nil {
			return err
		}
	}
	b.clientIndexBuilt.Store(true)
	return nil
}

func readClientIndex(ctx context.Context, s logical.Storage, key string) ([]string, error) {
	names, err := getJSON[[]string](ctx, s, clientIndexPrefix+key)
	if err != nil || names == nil {
		return nil, err
	}
	return *names, nil
}

// editClientIndex adds name to key's list, or removes it.
func editClientIndex(ctx context.Context, s logical.Storage, key, name string, add bool) error {
	names, err := readClientIndex(ctx, s, key)
	if err != nil {
		return err
	}
	has := slices.Contains(names, name)
	switch {
	case add && !has:
		names = append(names, name)
		slices.Sort(names)
	case !add && has:
		names = slices.DeleteFunc(names, func(n string) bool { return n == name })
	default:
		return nil
	}
	if len(names) == 0 {
		return s.Delete(ctx, clientIndexPrefix+key)
	}
	return putJSON(ctx, s, clientIndexPrefix+key, names)
}
