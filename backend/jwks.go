package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// JWKS timings.
const (
	// JWKSTTL is how long fetched keys are used before they are read again.
	JWKSTTL = time.Hour
	// JWKSRefetchAfter bounds how often an unknown kid makes the set be read
	// again (a key rotated in at the IdP), so that tokens naming made-up
	// kids cannot make Vault hammer the IdP.
	JWKSRefetchAfter = time.Minute
)

// IdPKeySet reads and caches an IdP's public keys (RFC 7517 JWK Set), for
// verifying the ID tokens it signs. The exported fields are set before
// first use; it is safe for concurrent use.
type IdPKeySet struct {
	// URL returns the JWK Set's URL (configured, or from discovery).
	URL  func(ctx context.Context) (string, error)
	HTTP *http.Client
	Now  func() time.Time

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
	flight  singleflight.Group
}

func (k *IdPKeySet) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Key returns the keys of kid ("" when the token names none: every key),
// reading the set again when it is old, or when kid is unknown and the set
// was not read within JWKSRefetchAfter.
func (k *IdPKeySet) Key(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	keys, fetched := k.keys, k.fetched
	k.mu.Unlock()
	age := k.now().Sub(fetched)
	if keys != nil && age < JWKSTTL {
		if found := pick(keys, kid); len(found) > 0 || age < JWKSRefetchAfter {
			return found, nil
		}
	}
	v, err, _ := k.flight.Do("", func() (any, error) { return k.fetch(context.WithoutCancel(ctx)) })
	if err != nil {
		if keys != nil && age < DiscoveryMaxStale {
			return pick(keys, kid), nil // an outage of the key set must not stop logins with known keys
		}
		return nil, err
	}
	return pick(v.(*jose.JSONWebKeySet), kid), nil
}

func pick(set *jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}

func (k *IdPKeySet) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	u, err := k.URL(ctx)
	if err != nil {
		return nil, err
	}
	if u == "" {
		return nil, errors.New("no JWK Set URL: set the config's jwks_url, or give it an issuer whose metadata names a jwks_uri")
	}
	body, err := getDocument(ctx, k.HTTP, u)
	if err != nil {
		return nil, fmt.Errorf("reading the JWK Set from %s: %w", Sanitize(u, 200), err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("the JWK Set at %s is not one (RFC 7517)", Sanitize(u, 200))
	}
	k.mu.Lock()
	k.keys, k.fetched = &set, k.now()
	k.mu.Unlock()
	return &set, nil
}
