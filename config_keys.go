// Keys made in Vault (generate_key): a config's stored key set, its
// timeline, what a config write does to it, and the rotation the periodic
// function runs on the active node. The IdP side (generation, kids, the
// JWKS) is backend/keyset.go.
//
// Each key's timeline is fixed in storage when the key is made: it is
// published at once, signs from signs_from (key_publish_lead later), and,
// once a successor is made, signs until the successor's signs_from and
// stays published key_overlap longer. Which key signs and which are
// published follows from the clock alone, so a restart or a failover in
// the middle of a rotation changes nothing, and reads never write.

package idptokens

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

const (
	defaultKeyPublishLead = time.Hour
	defaultKeyOverlap     = time.Hour
	// minKeyPublishLead: an IdP may keep a fetched JWKS longer than its
	// max-age (oidc-provider keeps it at least 60 s, whatever the max-age
	// says); 15 s more covers the fetch itself and clocks a little apart.
	minKeyPublishLead = 75 * time.Second
	// minKeyOverlap: a client assertion lives 60 s (backend.AssertionLifetime):
	// one signed just before the switch is still verified against the
	// key that signed it.
	minKeyOverlap = time.Minute
	// maxKeyDuration bounds each of the key durations (ten years).
	maxKeyDuration = 10 * 365 * 24 * time.Hour
	// maxJWKSMaxAge bounds the JWKS Cache-Control max-age, a fifth of
	// key_publish_lead otherwise.
	maxJWKSMaxAge = 5 * time.Minute
	// periodicInterval: Vault calls the periodic function about once a
	// minute, so a scheduled key is made that much early and still signs
	// exactly one rotation period after the key before it.
	periodicInterval = time.Minute
)

// keySetEntry is a config's keys made in Vault as stored (seal-wrapped) at
// keys/<name>, oldest first.
type keySetEntry struct {
	Keys []storedKey `json:"keys"`
}

// storedKey is one generated key and its timeline. A zero SignsUntil or
// PublishedUntil: no successor yet.
type storedKey struct {
	KID            string    `json:"kid"`
	Alg            string    `json:"alg"`
	PrivateKey     string    `json:"private_key"` // PKCS#8 PEM; never read out
	Created        time.Time `json:"created"`
	SignsFrom      time.Time `json:"signs_from"`
	SignsUntil     time.Time `json:"signs_until"`
	PublishedUntil time.Time `json:"published_until"`
}

// keyAlg is the kind of key the config makes.
func keyAlg(e *configEntry) string {
	if e.SigningAlg == "" {
		return backend.GeneratedKeyAlgs[0]
	}
	return e.SigningAlg
}

func keyPublishLead(e *configEntry) time.Duration {
	if e.KeyPublishLead == 0 {
		return defaultKeyPublishLead
	}
	return e.KeyPublishLead
}

func keyOverlap(e *configEntry) time.Duration {
	if e.KeyOverlap == 0 {
		return defaultKeyOverlap
	}
	return e.KeyOverlap
}

// jwksMaxAge is the JWKS's Cache-Control max-age: shorter than the publish
// lead, so that an IdP that honours it has the next key before it signs.
func jwksMaxAge(e *configEntry) time.Duration {
	return min(keyPublishLead(e)/5, maxJWKSMaxAge).Truncate(time.Second)
}

// newStoredKey makes a key of alg, published from now, signing from signsFrom.
func newStoredKey(alg string, now, signsFrom time.Time) (storedKey, error) {
	keyPEM, err := backend.GenerateKeyPEM(alg)
	if err != nil {
		return storedKey{}, err
	}
	signer, err := backend.NewGeneratedSigner(keyPEM, alg)
	if err != nil {
		return storedKey{}, err
	}
	return storedKey{KID: signer.KeyID(), Alg: alg, PrivateKey: keyPEM, Created: now, SignsFrom: signsFrom}, nil
}

// latest is the newest key: the one without a successor.
func (ks *keySetEntry) latest() *storedKey {
	if len(ks.Keys) == 0 {
		return nil
	}
	return &ks.Keys[len(ks.Keys)-1]
}

// pending is the key published but not yet signing, if any.
func (ks *keySetEntry) pending(now time.Time) *storedKey {
	if k := ks.latest(); k != nil && now.Before(k.SignsFrom) {
		return k
	}
	return nil
}

// add appends a successor: the key before it signs until k does, and stays
// published overlap longer.
func (ks *keySetEntry) add(k storedKey, overlap time.Duration) {
	if prev := ks.latest(); prev != nil {
		prev.SignsUntil, prev.PublishedUntil = k.SignsFrom, k.SignsFrom.Add(overlap)
	}
	ks.Keys = append(ks.Keys, k)
}

// prune forgets the keys past their overlap; it says whether any went.
func (ks *keySetEntry) prune(now time.Time) bool {
	kept := ks.Keys[:0]
	for _, k := range ks.Keys {
		if k.PublishedUntil.IsZero() || now.Before(k.PublishedUntil) {
			kept = append(kept, k)
		}
	}
	gone := len(kept) != len(ks.Keys)
	ks.Keys = kept
	return gone
}

// scheduledRotation says whether key_rotation_period calls for a new key
// now, and when it signs: one period after the current key began to sign,
// and never less than key_publish_lead after it is published. One rotation
// at a time: none while a key is still to sign.
func scheduledRotation(e *configEntry, ks *keySetEntry, now time.Time) (time.Time, bool) {
	period, lead := e.KeyRotationPeriod, keyPublishLead(e)
	cur := ks.latest()
	if period == 0 || cur == nil || ks.pending(now) != nil {
		return time.Time{}, false
	}
	if now.Before(cur.SignsFrom.Add(period - lead - periodicInterval)) {
		return time.Time{}, false
	}
	signsFrom := cur.SignsFrom.Add(period)
	if earliest := now.Add(lead); signsFrom.Before(earliest) {
		signsFrom = earliest
	}
	return signsFrom, true
}

// loadKeySet reads a config's keys; nil when it has none.
func loadKeySet(ctx context.Context, s logical.Storage, name string) (*keySetEntry, error) {
	raw, err := s.Get(ctx, keysPrefix+name)
	if err != nil || raw == nil {
		return nil, err
	}
	var ks keySetEntry
	if err := raw.DecodeJSON(&ks); err != nil {
		return nil, fmt.Errorf("the stored keys of config %q are unreadable", name)
	}
	return &ks, nil
}

// storeKeySet writes a config's keys and puts them in the cached config's
// ring.
func (b *idpBackend) storeKeySet(ctx context.Context, s logical.Storage, name string, ks *keySetEntry) error {
	raw, err := logical.StorageEntryJSON(keysPrefix+name, ks)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, raw); err != nil {
		return err
	}
	if st, ok := b.configs.Get(name); ok && st.endpoint.Keys != nil {
		gen := st.endpoint.Keys.MarkStale() // a read of the former set in flight stays stale
		if set, err := keySetOf(st.entry, ks); err == nil {
			st.endpoint.Keys.Store(set, gen)
		}
	}
	return nil
}

// ensureKeys loads a config's key set into its endpoint's ring when the
// ring has none yet or another node changed it; otherwise it is memory only.
func (b *idpBackend) ensureKeys(ctx context.Context, s logical.Storage, st *configState) error {
	ring := st.endpoint.Keys
	if ring == nil || !ring.Stale() {
		return nil
	}
	gen := ring.Generation()
	ks, err := loadKeySet(ctx, s, st.name)
	if err != nil {
		return err
	}
	if ks == nil {
		return fmt.Errorf("config %q has generate_key=true but no keys are stored for it; write generate_key=true again to make one", st.name)
	}
	set, err := keySetOf(st.entry, ks)
	if err != nil {
		return err
	}
	ring.Store(set, gen)
	return nil
}

// keysChanged: another node rewrote a config's keys (Invalidate).
func (b *idpBackend) keysChanged(name string) {
	if st, ok := b.configs.Get(name); ok && st.endpoint.Keys != nil {
		st.endpoint.Keys.MarkStale()
	}
}

// keySetOf decodes stored keys for signing and publishing. A private_key
// pasted before the config moved to generated keys, kept as the previous
// key, is published too while it is held, so that the IdP still verifies
// the fallback to it while it moves to the JWKS URL.
func keySetOf(e *configEntry, ks *keySetEntry) (*backend.KeySet, error) {
	var keys []backend.SetKey
	if e.PreviousPrivateKey != "" {
		prev, err := backend.NewAssertionSigner(e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg)
		if err != nil {
			return nil, fmt.Errorf("the previous private_key: %w", err)
		}
		jwk := prev.PublicJWK()
		if jwk.KeyID == "" {
			if jwk.KeyID, err = backend.KeyThumbprint(prev.Public()); err != nil {
				return nil, err
			}
		}
		keys = append(keys, backend.SetKey{Public: jwk})
	}
	for _, k := range ks.Keys {
		signer, err := backend.NewGeneratedSigner(k.PrivateKey, k.Alg)
		if err != nil {
			return nil, fmt.Errorf("generated key %s: %w", k.KID, err)
		}
		keys = append(keys, backend.SetKey{Signer: signer, Public: signer.PublicJWK(),
			SignsFrom: k.SignsFrom, SignsUntil: k.SignsUntil, PublishedUntil: k.PublishedUntil})
	}
	return backend.NewKeySet(keys...), nil
}

// maxPublishedKeys bounds a config's keys: a rotate-key that would publish
// more is refused (each key is a JWK in every JWKS answer and part of one
// storage entry). Scheduled rotations publish at most three, as
// key_overlap is at most key_rotation_period.
const maxPublishedKeys = 10

// rotationRefusedError: rotate-key may not begin a rotation now, and why
// (from the same clock reading as the check).
type rotationRefusedError struct{ why string }

func (e *rotationRefusedError) Error() string { return e.why }

// startRotation makes the next key of a config now (rotate-key): it signs
// key_publish_lead from now. It answers the stored set.
func (b *idpBackend) startRotation(ctx context.Context, s logical.Storage, name string, e *configEntry) (*keySetEntry, error) {
	ks, err := loadKeySet(ctx, s, name)
	if err != nil || ks == nil {
		return nil, err
	}
	now := b.clock()
	if next := ks.pending(now); next != nil {
		return nil, &rotationRefusedError{fmt.Sprintf("a rotation is under way: key %s signs from %s; start the next one after that",
			next.KID, next.SignsFrom.UTC().Format(time.RFC3339))}
	}
	ks.prune(now)
	if len(ks.Keys) >= maxPublishedKeys {
		return nil, &rotationRefusedError{fmt.Sprintf("%d keys are still published (key_overlap); the oldest leaves the JWKS at %s",
			len(ks.Keys), ks.Keys[0].PublishedUntil.UTC().Format(time.RFC3339))}
	}
	k, err := newStoredKey(keyAlg(e), now, now.Add(keyPublishLead(e)))
	if err != nil {
		return nil, err
	}
	ks.add(k, keyOverlap(e))
	if err := b.storeKeySet(ctx, s, name, ks); err != nil {
		return nil, err
	}
	b.Logger().Info("signing key rotation begun", "config", name, "kid", k.KID, "signs_from", k.SignsFrom.UTC().Format(time.RFC3339), "by", "rotate-key")
	return ks, nil
}

// rotateKeys is the periodic part of generated keys, on a node that can
// write only: it makes the keys key_rotation_period calls for and forgets
// those past their overlap. It never asks an IdP for anything.
func (b *idpBackend) rotateKeys(ctx context.Context, s logical.Storage) error {
	if b.storageReadOnly() {
		return nil
	}
	names, err := s.List(ctx, keysPrefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := b.rotateKeysOf(ctx, s, name); err != nil {
			errs = append(errs, fmt.Errorf("config %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (b *idpBackend) rotateKeysOf(ctx context.Context, s logical.Storage, name string) error {
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	e, err := loadConfigEntry(ctx, s, name)
	if err != nil {
		return err
	}
	ks, err := loadKeySet(ctx, s, name)
	if err != nil || ks == nil {
		return err
	}
	if e == nil || !e.GenerateKey {
		// Left by a write or delete that stopped between its two steps.
		return s.Delete(ctx, keysPrefix+name)
	}
	now := b.clock()
	changed := ks.prune(now)
	if signsFrom, due := scheduledRotation(e, ks, now); due {
		k, err := newStoredKey(keyAlg(e), now, signsFrom)
		if err != nil {
			return err
		}
		ks.add(k, keyOverlap(e))
		changed = true
		b.Logger().Info("signing key rotation begun", "config", name, "kid", k.KID, "signs_from", signsFrom.UTC().Format(time.RFC3339), "by", "key_rotation_period")
	}
	if !changed {
		return nil
	}
	return b.storeKeySet(ctx, s, name, ks)
}

// keyViews are a config's keys as reads show them: kid, alg, state and
// times, never the private key.
func keyViews(ks *keySetEntry, now time.Time) []map[string]any {
	out := []map[string]any{}
	if ks == nil {
		return out
	}
	for _, k := range ks.Keys {
		view := map[string]any{
			"kid":             k.KID,
			"alg":             k.Alg,
			"state":           backend.KeyStateAt(now, k.SignsFrom, k.SignsUntil, k.PublishedUntil),
			"created":         k.Created.UTC().Format(time.RFC3339),
			"signs_from":      k.SignsFrom.UTC().Format(time.RFC3339),
			"signs_until":     timeOrEmpty(k.SignsUntil),
			"published_until": timeOrEmpty(k.PublishedUntil),
		}
		if view["state"] != backend.KeyRetired {
			out = append(out, view)
		}
	}
	return out
}

func timeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// configKeysView is what a config read shows of its generated keys.
func (b *idpBackend) configKeysView(ctx context.Context, s logical.Storage, name string, e *configEntry) ([]map[string]any, error) {
	if !e.GenerateKey {
		return []map[string]any{}, nil
	}
	ks, err := loadKeySet(ctx, s, name)
	if err != nil {
		return nil, err
	}
	return keyViews(ks, b.clock()), nil
}

// keyViewSchema describes one entry of keyViews, for the OpenAPI document.
func keyViewSchema() *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeSlice,
		Description: "The keys made in Vault that are published: kid (RFC 7638 thumbprint), alg, state (next, signing, retiring), " +
			"created, signs_from, signs_until and published_until (RFC 3339; empty while the key has no successor)."}
}
