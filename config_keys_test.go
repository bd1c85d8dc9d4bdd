package idptokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// writeKeyConfig writes config k (private_key_jwt, generated key) with
// extra fields, and role r of it.
func (k *keysEnv) writeKeyConfig(extra map[string]any) *logical.Response {
	k.tt.Helper()
	data := map[string]any{"token_url": k.idp.tokenURL(), "client_id": "c", "client_auth": "private_key_jwt", "generate_key": true}
	for f, v := range extra {
		data[f] = v
	}
	resp := k.ok(logical.UpdateOperation, "config/k", data)
	k.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "k"})
	return resp
}

// storedKeys is config k's key set as stored.
func (k *keysEnv) storedKeys() *keySetEntry {
	k.tt.Helper()
	ks, err := loadKeySet(context.Background(), k.storage, "k")
	if err != nil {
		k.tt.Fatal(err)
	}
	return ks
}

// A config with generate_key and no secret gets tokens: the IdP verifies
// the client assertion with the key the JWKS serves, whose kid it names.
func TestGeneratedKeyClientCredentials(t *testing.T) {
	for _, alg := range backend.GeneratedKeyAlgs {
		t.Run(alg, func(t *testing.T) {
			k := newKeysEnv(t)
			k.writeKeyConfig(map[string]any{"signing_alg": alg})
			status, cc, kids := k.jwks("k")
			if status != http.StatusOK || len(kids) != 1 {
				t.Fatalf("jwks: %d %v", status, kids)
			}
			// max-age: a fifth of the 1h default lead, capped at 5m, below the lead.
			if cc != "public, max-age=300" {
				t.Errorf("Cache-Control %q, want public, max-age=300", cc)
			}
			k.creds("r")
			got := k.idp.lastRequest(t)
			if got.Auth != "private_key_jwt" || got.ClientKid != kids[0] {
				t.Fatalf("the IdP saw %+v, want a private_key_jwt assertion of kid %s", got, kids[0])
			}
			read := k.ok(logical.ReadOperation, "config/k", nil).Data
			if read["client_secret_set"] != false || read["private_key_set"] != false || read["generate_key"] != true || read["signing_alg"] != alg {
				t.Errorf("config read: %v", read)
			}
			if states := k.keyStates("k"); states[kids[0]] != backend.KeySigning || len(states) != 1 {
				t.Errorf("config read keys %v, want %s signing", states, kids[0])
			}
		})
	}
}

// The timeline on a fake clock: with key_rotation_period 2h, lead 30m and
// overlap 20m, the periodic function makes the next key (published at
// once) a minute before it must be published, it signs exactly one period
// after the key before it, which retires and is gone from the JWKS after
// the overlap; nothing of this waits for the periodic function but the
// making of the key and the forgetting of the old one in storage.
func TestGeneratedKeyRotationTimeline(t *testing.T) {
	k := newKeysEnv(t)
	t0 := k.clock.Now()
	k.writeKeyConfig(map[string]any{"key_rotation_period": "2h", "key_publish_lead": "30m", "key_overlap": "20m"})
	_, cc, kids := k.jwks("k")
	a := kids[0]
	if cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q", cc)
	}
	// 88 minutes in: not due (due at 2h - 30m - 1m = 89m).
	k.clock.Advance(88 * time.Minute)
	k.periodic()
	if _, _, kids := k.jwks("k"); len(kids) != 1 {
		t.Fatalf("a key was made before it was due: %v", kids)
	}
	k.clock.Advance(time.Minute)
	k.counted.Reset()
	k.periodic()
	if k.counted.Puts.Load() != 1 {
		t.Errorf("the rotation made %d storage writes, want 1", k.counted.Puts.Load())
	}
	_, _, kids = k.jwks("k")
	if len(kids) != 2 || kids[0] != a {
		t.Fatalf("after the periodic function the JWKS serves %v, want %s and the next key", kids, a)
	}
	b := kids[1]
	ks := k.storedKeys()
	if got := ks.Keys[1].SignsFrom; !got.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("the next key signs from %s, want one period after the first began: %s", got, t0.Add(2*time.Hour))
	}
	if got := ks.Keys[0].PublishedUntil; !got.Equal(t0.Add(2*time.Hour + 20*time.Minute)) {
		t.Errorf("the first key is published until %s, want the switch plus the overlap", got)
	}
	if st := k.keyStates("k"); st[a] != backend.KeySigning || st[b] != backend.KeyNext {
		t.Errorf("states %v, want %s signing and %s next", st, a, b)
	}
	// Until the switch the first key signs (tokens fetched each minute).
	k.freshCreds("r")
	if got := k.idp.lastRequest(t).ClientKid; got != a {
		t.Errorf("before the switch the assertion was signed by %s, want %s", got, a)
	}
	k.clock.Advance(t0.Add(2*time.Hour - time.Second).Sub(k.clock.Now()))
	k.creds("r") // cached or fetched: either way not signed by b yet
	for _, r := range k.idp.requests() {
		if r.ClientKid == b {
			t.Fatalf("the next key signed before its signs_from")
		}
	}
	// The switch, with no periodic run: the next key signs.
	k.clock.Advance(time.Second)
	k.freshCreds("r")
	if got := k.idp.lastRequest(t).ClientKid; got != b {
		t.Errorf("after the switch the assertion was signed by %s, want %s", got, b)
	}
	if st := k.keyStates("k"); st[a] != backend.KeyRetiring || st[b] != backend.KeySigning {
		t.Errorf("states %v, want %s retiring and %s signing", st, a, b)
	}
	if _, _, kids := k.jwks("k"); !slices.Equal(kids, []string{a, b}) {
		t.Errorf("during the overlap the JWKS serves %v, want both", kids)
	}
	// After the overlap the old key is gone from the JWKS at once, and from
	// storage at the next periodic run.
	k.clock.Advance(t0.Add(2*time.Hour + 20*time.Minute).Sub(k.clock.Now()))
	if _, _, kids := k.jwks("k"); !slices.Equal(kids, []string{b}) {
		t.Errorf("after the overlap the JWKS serves %v, want only %s", kids, b)
	}
	k.periodic()
	if ks := k.storedKeys(); len(ks.Keys) != 1 || ks.Keys[0].KID != b {
		t.Errorf("after the overlap storage holds %d keys", len(ks.Keys))
	}
	// The next rotation keeps the period: due at 2h + 2h - 31m.
	k.clock.Advance(t0.Add(4*time.Hour - 32*time.Minute).Sub(k.clock.Now()))
	k.periodic()
	if _, _, kids := k.jwks("k"); len(kids) != 1 {
		t.Fatalf("second rotation made early: %v", kids)
	}
	k.clock.Advance(time.Minute)
	k.periodic()
	if ks := k.storedKeys(); len(ks.Keys) != 2 || !ks.Keys[1].SignsFrom.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("second rotation: %+v", ks.Keys)
	}
	// The periodic function never asks the IdP for a token.
	before := len(k.idp.requests())
	for range 5 {
		k.clock.Advance(time.Hour)
		k.periodic()
	}
	if n := len(k.idp.requests()) - before; n != 0 {
		t.Errorf("the periodic function made %d token requests", n)
	}
}

// rotate-key: the next key is published at once and signs after
// key_publish_lead; one rotation at a time; a manual-only config
// (key_rotation_period 0) is never rotated by the periodic function.
// client_auth=auto counts a key made in Vault as a held credential: with
// an issuer that advertises private_key_jwt, generate_key alone makes a
// complete config whose assertions sign, and with a client secret beside
// it the key still wins, the stronger of the two.
func TestGeneratedKeyWithClientAuthAuto(t *testing.T) {
	k := newKeysEnv(t)
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"issuer": k.idp.srv.URL, "client_id": "c", "generate_key": true})
	k.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "k"})
	k.freshCreds("r")
	if got := k.idp.lastRequest(t); got.Auth != "private_key_jwt" {
		t.Fatalf("auto with a generated key authenticated with %q", got.Auth)
	}
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"client_secret": "s3cret"})
	k.freshCreds("r")
	if got := k.idp.lastRequest(t); got.Auth != "private_key_jwt" {
		t.Fatalf("auto with a generated key and a secret authenticated with %q", got.Auth)
	}
	// From auto to private_key_jwt: no former method to keep the secret for.
	resp := k.ok(logical.UpdateOperation, "config/k", map[string]any{"client_auth": "private_key_jwt"})
	if !slices.ContainsFunc(resp.Warnings, func(w string) bool { return strings.Contains(w, "client_auth was auto") }) {
		t.Fatalf("the move from auto warned %v", resp.Warnings)
	}
	if read := k.ok(logical.ReadOperation, "config/k", nil); read.Data["previous_client_secret_set"] != false {
		t.Fatalf("the move from auto kept a previous secret: %v", read.Data)
	}
}

func TestRotateKey(t *testing.T) {
	k := newKeysEnv(t)
	k.writeKeyConfig(map[string]any{"key_publish_lead": "10m"})
	_, _, kids := k.jwks("k")
	a := kids[0]
	for range 3 {
		k.clock.Advance(24 * time.Hour)
		k.periodic()
	}
	if _, _, kids := k.jwks("k"); len(kids) != 1 {
		t.Fatalf("key_rotation_period 0 rotated: %v", kids)
	}
	resp := k.ok(logical.UpdateOperation, "config/k/rotate-key", nil)
	views := resp.Data["keys"].([]map[string]any)
	if len(views) != 2 || views[1]["state"] != backend.KeyNext || views[0]["kid"] != a {
		t.Fatalf("rotate-key answered %v", views)
	}
	b := views[1]["kid"].(string)
	if want := k.clock.Now().Add(10 * time.Minute).Format(time.RFC3339); views[1]["signs_from"] != want {
		t.Errorf("signs_from %v, want %s", views[1]["signs_from"], want)
	}
	k.fails(logical.UpdateOperation, "config/k/rotate-key", nil, "a rotation is under way: key "+b)
	k.freshCreds("r")
	if got := k.idp.lastRequest(t).ClientKid; got != a {
		t.Errorf("signed by %s during the lead, want %s", got, a)
	}
	k.clock.Advance(10 * time.Minute)
	k.freshCreds("r")
	if got := k.idp.lastRequest(t).ClientKid; got != b {
		t.Errorf("signed by %s after the lead, want %s", got, b)
	}
	// The next manual rotation may begin now.
	k.ok(logical.UpdateOperation, "config/k/rotate-key", nil)

	// Manual rotations faster than key_overlap keep keys published; past
	// maxPublishedKeys the next is refused, saying when the oldest leaves.
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"key_overlap": "24h"})
	for i := 0; ; i++ {
		k.clock.Advance(10 * time.Minute)
		resp, err := k.do(logical.UpdateOperation, "config/k/rotate-key", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.IsError() {
			if _, _, kids := k.jwks("k"); len(kids) != maxPublishedKeys || !strings.Contains(respErr(resp), "keys are still published") {
				t.Fatalf("rotation %d refused with %d keys published: %q", i, len(kids), respErr(resp))
			}
			break
		}
		if i > maxPublishedKeys {
			t.Fatalf("%d manual rotations within key_overlap, none refused", i)
		}
	}
}

// Bad input: a clear 400 naming the field, and nothing stored.
func TestGeneratedKeyBadInput(t *testing.T) {
	pasted := pastedKeyPEM(t)
	k := newKeysEnv(t)
	base := map[string]any{"token_url": k.idp.tokenURL(), "client_id": "c", "client_auth": "private_key_jwt", "generate_key": true}
	with := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for f, v := range base {
			out[f] = v
		}
		for f, v := range extra {
			out[f] = v
		}
		return out
	}
	for _, c := range []struct {
		name string
		data map[string]any
		want string
	}{
		{"generate_key with a pasted private_key", with(map[string]any{"private_key": pasted}), "generate_key: a key made in Vault and a pasted private_key"},
		{"unknown signing_alg", with(map[string]any{"signing_alg": "HS256"}), "signing_alg: must be one of ES256, RS256, PS256, EdDSA"},
		{"ES512", with(map[string]any{"signing_alg": "ES512"}), "signing_alg"},
		{"lead longer than the period", with(map[string]any{"key_rotation_period": "1h", "key_publish_lead": "2h"}), "key_publish_lead: 2h0m0s is longer than key_rotation_period 1h0m0s"},
		{"default lead longer than the period", with(map[string]any{"key_rotation_period": "30m"}), "key_publish_lead: 1h0m0s is longer than key_rotation_period"},
		{"lead under the bound", with(map[string]any{"key_publish_lead": "60s"}), "key_publish_lead: must be between 1m15s"},
		{"overlap under the bound", with(map[string]any{"key_overlap": "30s"}), "key_overlap: must be between 1m0s"},
		{"period over the bound", with(map[string]any{"key_rotation_period": "100000h"}), "key_rotation_period: must be at most"},
		{"overlap longer than the period", with(map[string]any{"key_rotation_period": "1h", "key_overlap": "720h"}), "key_overlap: 720h0m0s is longer than key_rotation_period 1h0m0s"},
		{"private_key_id with a generated key", with(map[string]any{"private_key_id": "mine"}), "private_key_id: is the kid of a pasted private_key"},
		{"key timing without generate_key", with(map[string]any{"generate_key": false, "client_auth": "basic", "client_secret": "s3cret", "key_rotation_period": "720h"}),
			"key_rotation_period: is for keys made in Vault"},
		{"private_key_jwt with neither key", with(map[string]any{"generate_key": false}), "private_key: required for client_auth=private_key_jwt (or generate_key=true)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k.testEnv.t = t
			k.fails(logical.UpdateOperation, "config/bad", c.data, c.want)
			if k.stored(configPrefix+"bad") != nil || k.stored(keysPrefix+"bad") != nil {
				t.Fatal("a refused write stored something")
			}
		})
	}
	k.testEnv.t = t

	// On a stored config: refused, and the stored config and keys unchanged.
	k.writeKeyConfig(nil)
	cfgBefore, keysBefore := k.stored(configPrefix+"k"), k.stored(keysPrefix+"k")
	k.fails(logical.UpdateOperation, "config/k", map[string]any{"private_key": pasted}, "generate_key: a key made in Vault and a pasted private_key")
	k.fails(logical.UpdateOperation, "config/k", map[string]any{"signing_alg": "none"}, "signing_alg")
	k.fails(logical.UpdateOperation, "config/k", map[string]any{"key_rotation_period": "59m"}, "key_publish_lead: 1h0m0s is longer than key_rotation_period 59m0s")
	k.fails(logical.UpdateOperation, "config/k/rotate", map[string]any{"private_key": pasted}, "private_key: config \"k\"'s keys are made in Vault (generate_key): rotate them with vault write -f idp/config/k/rotate-key")
	if string(k.stored(configPrefix+"k")) != string(cfgBefore) || string(k.stored(keysPrefix+"k")) != string(keysBefore) {
		t.Fatal("a refused write changed the stored config or keys")
	}

	// rotate-key and public-keys of a config without generated keys, and
	// the JWKS of one: 4xx naming generate_key, the JWKS the same for a
	// config that does not exist.
	k.ok(logical.UpdateOperation, "config/plain", map[string]any{"token_url": k.idp.tokenURL(), "client_id": "c", "client_auth": "basic", "client_secret": "s3cret"})
	k.fails(logical.UpdateOperation, "config/plain/rotate-key", nil, "generate_key: config \"plain\" has no keys made in Vault")
	k.fails(logical.ReadOperation, "config/plain/public-keys", nil, "generate_key: config \"plain\" has no keys made in Vault")
	for _, name := range []string{"plain", "nosuch"} {
		resp, err := k.do(logical.ReadOperation, "jwks/"+name, nil)
		if err != nil {
			t.Fatal(err)
		}
		body := string(resp.Data[logical.HTTPRawBody].([]byte))
		want, _ := json.Marshal(map[string][]string{"errors": {fmt.Sprintf("generate_key: no config named %q has keys made in Vault", name)}})
		if resp.Data[logical.HTTPStatusCode] != http.StatusNotFound || body != string(want) {
			t.Errorf("jwks/%s: %v %s", name, resp.Data[logical.HTTPStatusCode], body)
		}
	}
	if k.stored(keysPrefix+"plain") != nil {
		t.Fatal("keys stored for a config without generate_key")
	}
}

// pastedKeyPEM is a P-256 key as an operator would paste it.
func pastedKeyPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// The private key is in no read, no answer, no log line and no error: its
// PEM body and its JWK private member are looked for in all of them.
func TestGeneratedKeyNeverShown(t *testing.T) {
	k := newKeysEnv(t)
	k.writeKeyConfig(map[string]any{"key_rotation_period": "2h", "key_publish_lead": "30m", "signing_alg": "RS256"})
	var outputs []string
	add := func(resp *logical.Response, err error) {
		raw, _ := json.Marshal(resp)
		outputs = append(outputs, string(raw))
		if err != nil {
			outputs = append(outputs, err.Error())
		}
	}
	add(k.do(logical.ReadOperation, "config/k", nil))
	add(k.do(logical.ReadOperation, "config/k/public-keys", nil))
	add(k.do(logical.UpdateOperation, "config/k/rotate-key", nil))
	add(k.do(logical.UpdateOperation, "config/k/rotate-key", nil)) // refused: under way
	add(k.do(logical.ReadOperation, "jwks/k", nil))
	add(k.do(logical.ReadOperation, "creds/r", nil))
	k.idp.set(false, false, nil) // the IdP refuses: the error goes to the reader and the log
	k.clock.Advance(61 * time.Second)
	add(k.do(logical.ReadOperation, "creds/r", nil))
	k.clock.Advance(3 * time.Hour)
	k.periodic()
	add(k.do(logical.ReadOperation, "config/k", nil))
	add(k.do(logical.UpdateOperation, "config/k", map[string]any{"scopes": "a"}))
	add(k.do(logical.ReadOperation, "jwks/k", nil))
	outputs = append(outputs, k.log.String())
	if !strings.Contains(k.log.String(), "signing key rotation begun") {
		t.Fatal("the log was not captured")
	}

	var secrets []string
	for _, key := range k.storedKeys().Keys {
		block, _ := pem.Decode([]byte(key.PrivateKey))
		body := strings.Join(strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(block))), "\n")[1:3], "")
		secrets = append(secrets, body[20:80])
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		jwk, err := json.Marshal(jose.JSONWebKey{Key: parsed})
		if err != nil {
			t.Fatal(err)
		}
		var members map[string]string
		_ = json.Unmarshal(jwk, &members)
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			secrets = append(secrets, members[m][:40])
		}
	}
	if len(secrets) < 14 {
		t.Fatalf("found %d secret fragments, want those of two RSA keys", len(secrets))
	}
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("a private key fragment is in an output: %.200s", out)
			}
		}
		if strings.Contains(out, "PRIVATE KEY") {
			t.Fatalf("an output holds a PEM private key: %.200s", out)
		}
	}
}

// A config write of other fields keeps the generated keys; the secret
// rotation and clear_previous leave them alone; a delete deletes them.
func TestGeneratedKeysKeptAndDeleted(t *testing.T) {
	k := newKeysEnv(t)
	k.writeKeyConfig(nil)
	keys := string(k.stored(keysPrefix + "k"))
	_, _, kids := k.jwks("k")
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"scopes": "api:read", "request_timeout": "10s"})
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"client_secret": "s3cret"}) // held but unused
	k.ok(logical.UpdateOperation, "config/k/rotate", map[string]any{"client_secret": "n3w"})
	k.ok(logical.UpdateOperation, "config/k/rotate", map[string]any{"clear_previous": true})
	if string(k.stored(keysPrefix+"k")) != keys {
		t.Fatal("a config write or rotate changed the generated keys")
	}
	if _, _, again := k.jwks("k"); !slices.Equal(again, kids) {
		t.Fatalf("the JWKS serves %v after the writes, want %v", again, kids)
	}
	k.freshCreds("r")
	if got := k.idp.lastRequest(t); got.Auth != "private_key_jwt" || got.ClientKid != kids[0] {
		t.Fatalf("after the writes the IdP saw %+v", got)
	}
	// A signing_alg change keeps the keys and says when the new kind comes.
	resp := k.ok(logical.UpdateOperation, "config/k", map[string]any{"signing_alg": "EdDSA"})
	if !strings.Contains(strings.Join(resp.Warnings, " "), "the keys made so far stay ES256; the next rotation makes a EdDSA key") {
		t.Errorf("warnings %v", resp.Warnings)
	}
	k.ok(logical.UpdateOperation, "config/k/rotate-key", nil)
	if ks := k.storedKeys(); ks.Keys[0].KID != kids[0] || ks.Keys[1].Alg != "EdDSA" {
		t.Fatalf("keys after the alg change: %+v", ks.Keys)
	}

	k.ok(logical.DeleteOperation, "config/k", nil)
	if k.stored(keysPrefix+"k") != nil {
		t.Fatal("the config's keys outlived its delete")
	}
	if status, _, _ := k.jwks("k"); status != http.StatusNotFound {
		t.Fatalf("jwks of a deleted config: %d", status)
	}
	// A config written again under the name gets new keys.
	k.writeKeyConfig(nil)
	if _, _, fresh := k.jwks("k"); len(fresh) != 1 || fresh[0] == kids[0] {
		t.Fatalf("the new config's JWKS %v", fresh)
	}
	// generate_key=false (with a secret to use instead) forgets them.
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"generate_key": false, "client_auth": "basic", "client_secret": "s3cret"})
	if k.stored(keysPrefix+"k") != nil {
		t.Fatal("generate_key=false kept the keys")
	}
}

// A node whose storage is read-only (a performance standby) serves the
// JWKS but its periodic function writes nothing; a read that is served
// from memory makes no storage call, the generated key included.
func TestGeneratedKeysStandbyAndHotPath(t *testing.T) {
	k := newKeysEnv(t)
	k.writeKeyConfig(map[string]any{"key_rotation_period": "2h", "key_publish_lead": "30m"})
	k.creds("r")
	k.counted.Reset()
	for range 20 {
		k.creds("r")
		k.jwks("k")
	}
	if n := k.counted.Total(); n != 0 {
		t.Fatalf("cached reads and JWKS reads made %d storage calls (%s), want 0", n, k.counted)
	}

	k.sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	k.clock.Advance(3 * time.Hour)
	k.counted.Reset()
	k.periodic()
	if n := k.counted.Puts.Load() + k.counted.Deletes.Load(); n != 0 {
		t.Fatalf("the standby's periodic function made %d writes", n)
	}
	if status, _, kids := k.jwks("k"); status != http.StatusOK || len(kids) != 1 {
		t.Fatalf("the standby's JWKS: %d %v", status, kids)
	}
	k.sys.ReplicationStateVal = 0
	k.periodic()
	if _, _, kids := k.jwks("k"); len(kids) != 2 {
		t.Fatalf("the active node did not rotate: %v", kids)
	}
}

// A change of the stored keys that arrives (Invalidate) while a standby is
// reading the former set leaves its ring stale: the next read loads the
// new set, and the JWKS does not go without the next key for its lead.
func TestGeneratedKeysInvalidateDuringAReload(t *testing.T) {
	k := newKeysEnv(t)
	k.writeKeyConfig(map[string]any{"key_publish_lead": "10m", "key_overlap": "5m"})
	gate := &gatedStorage{Storage: k.storage, key: keysPrefix + "k", entered: make(chan struct{}), release: make(chan struct{})}
	other := k.mount(gate) // a standby, whose first read of the keys waits at the gate
	done := make(chan []string)
	go func() { _, _, kids := other.jwks("k"); done <- kids }()
	<-gate.entered
	k.ok(logical.UpdateOperation, "config/k/rotate-key", nil)
	other.b.invalidate(context.Background(), keysPrefix+"k")
	close(gate.release)
	if during := <-done; len(during) != 1 {
		t.Fatalf("the read begun before the rotation served %v, want the one key it read", during)
	}
	if _, _, after := other.jwks("k"); len(after) != 2 {
		t.Fatalf("after the rotation's Invalidate the standby serves %v, want the signing and the next key", after)
	}
}

// gatedStorage holds the first Get of key until release, saying when it
// is held.
type gatedStorage struct {
	logical.Storage
	key              string
	once             sync.Once
	entered, release chan struct{}
}

func (g *gatedStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == g.key {
		first := false
		g.once.Do(func() { first = true })
		if first {
			e, err := g.Storage.Get(ctx, key)
			close(g.entered)
			<-g.release
			return e, err
		}
	}
	return g.Storage.Get(ctx, key)
}

// Another node's rotation reaches this node's cached key set through
// Invalidate; a restart in the middle of a rotation (a new backend on the
// same storage) finishes it on time.
func TestGeneratedKeysInvalidateAndRestart(t *testing.T) {
	k := newKeysEnv(t)
	k.writeKeyConfig(map[string]any{"key_publish_lead": "10m", "key_overlap": "5m"})
	other := k.mount(k.storage) // a standby of the same cluster
	_, _, kids := other.jwks("k")
	k.ok(logical.UpdateOperation, "config/k/rotate-key", nil)
	if _, _, stale := other.jwks("k"); len(stale) != 1 {
		t.Fatalf("the other node changed without Invalidate: %v", stale)
	}
	other.b.invalidate(context.Background(), keysPrefix+"k")
	_, _, fresh := other.jwks("k")
	if len(fresh) != 2 || fresh[0] != kids[0] {
		t.Fatalf("after Invalidate the other node serves %v", fresh)
	}

	// The active node dies mid-rotation; a new one takes over the storage.
	restarted := k.mount(k.storage)
	if _, _, got := restarted.jwks("k"); !slices.Equal(got, fresh) {
		t.Fatalf("after the restart the JWKS serves %v, want %v", got, fresh)
	}
	restarted.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "k"})
	k.idp.env = &keysEnv{testEnv: restarted, clock: k.clock, tt: t}
	k.clock.Advance(10 * time.Minute)
	restarted.creds("r")
	if got := k.idp.lastRequest(t).ClientKid; got != fresh[1] {
		t.Fatalf("after the restart and the lead the assertion was signed by %s, want %s", got, fresh[1])
	}
	k.clock.Advance(5 * time.Minute)
	restarted.periodic()
	if _, _, got := restarted.jwks("k"); !slices.Equal(got, fresh[1:]) {
		t.Fatalf("after the overlap the new node serves %v", got)
	}
}

// From a client secret to a generated key without a gap: the key is made
// and published while client_auth stays basic; switching client_auth keeps
// the secret as the previous credential, tried when the IdP still refuses
// the assertion; once the IdP takes the JWKS, clear_previous.
func TestMigrationFromClientSecret(t *testing.T) {
	k := newKeysEnv(t)
	k.idp.set(true, false, nil) // the IdP knows the secret only
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"token_url": k.idp.tokenURL(), "client_id": "c", "client_auth": "basic", "client_secret": "s3cret"})
	k.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "k"})
	k.creds("r")
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"generate_key": true})
	_, _, kids := k.jwks("k")
	if len(kids) != 1 {
		t.Fatalf("the key was not published: %v", kids)
	}
	k.freshCreds("r")
	if got := k.idp.lastRequest(t); got.Auth != "basic" {
		t.Fatalf("with client_auth still basic the IdP saw %+v", got)
	}
	resp := k.ok(logical.UpdateOperation, "config/k", map[string]any{"client_auth": "private_key_jwt"})
	if !strings.Contains(strings.Join(resp.Warnings, " "), "the client secret is kept as the previous credential") {
		t.Errorf("warnings %v", resp.Warnings)
	}
	read := k.ok(logical.ReadOperation, "config/k", nil).Data
	if read["client_secret_set"] != false || read["previous_client_secret_set"] != true || read["previous_client_auth"] != "basic" {
		t.Fatalf("config read after the switch: %v", read)
	}
	// Vault switched first: the assertion is refused, the secret works.
	n := len(k.idp.requests())
	k.freshCreds("r")
	seen := k.idp.requests()[n:]
	if len(seen) != 2 || seen[0].Auth != "private_key_jwt" || seen[1].Auth != "basic" {
		t.Fatalf("the IdP saw %+v, want the assertion then the secret", seen)
	}
	// The IdP switches to the JWKS URL.
	k.idp.set(false, true, nil)
	n = len(k.idp.requests())
	k.freshCreds("r")
	if seen := k.idp.requests()[n:]; len(seen) != 1 || seen[0].Auth != "private_key_jwt" || seen[0].ClientKid != kids[0] {
		t.Fatalf("after the IdP switched it saw %+v", seen)
	}
	k.ok(logical.UpdateOperation, "config/k/rotate", map[string]any{"clear_previous": true})
	read = k.ok(logical.ReadOperation, "config/k", nil).Data
	if read["previous_client_secret_set"] != false || read["previous_client_auth"] != "" {
		t.Fatalf("after clear_previous: %v", read)
	}
	k.freshCreds("r")
	if got := k.idp.lastRequest(t); got.ClientKid != kids[0] {
		t.Fatalf("after clear_previous the IdP saw %+v", got)
	}
}

// From a pasted private_key: generate_key keeps the pasted key as the
// previous one, published beside the new key, so the IdP that still has
// the uploaded key accepts the fallback, and one that fetched the JWKS
// verifies either.
func TestMigrationFromPastedKey(t *testing.T) {
	k := newKeysEnv(t)
	pasted := pastedKeyPEM(t)
	signer, err := backend.NewAssertionSigner(pasted, "uploaded", "")
	if err != nil {
		t.Fatal(err)
	}
	upload := jose.JSONWebKey{Key: signer.Public(), KeyID: "uploaded", Algorithm: "ES256", Use: "sig"}
	k.idp.set(false, false, &upload)
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"token_url": k.idp.tokenURL(), "client_id": "c", "client_auth": "private_key_jwt",
		"private_key": pasted, "private_key_id": "uploaded"})
	k.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "k"})
	k.creds("r")
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"generate_key": true})
	_, _, kids := k.jwks("k")
	if len(kids) != 2 || kids[0] != "uploaded" {
		t.Fatalf("the JWKS serves %v, want the pasted key and the generated one", kids)
	}
	if st := k.keyStates("k"); st[kids[1]] != backend.KeySigning {
		t.Fatalf("states %v", st)
	}
	n := len(k.idp.requests())
	k.freshCreds("r")
	seen := k.idp.requests()[n:]
	if len(seen) != 2 || seen[0].ClientKid != kids[1] || seen[1].ClientKid != "uploaded" {
		t.Fatalf("the IdP with the uploaded key saw %+v, want the generated key then the pasted one", seen)
	}
	k.idp.set(false, true, nil) // registered the JWKS URL instead
	k.freshCreds("r")
	if got := k.idp.lastRequest(t).ClientKid; got != kids[1] {
		t.Fatalf("signed by %s", got)
	}
	k.ok(logical.UpdateOperation, "config/k/rotate", map[string]any{"clear_previous": true})
	if _, _, got := k.jwks("k"); !slices.Equal(got, kids[1:]) {
		t.Fatalf("after clear_previous the JWKS serves %v", got)
	}
}

// A jwt_bearer role signs its grant assertion with the generated key too,
// across a rotation, with no client authentication.
func TestGeneratedKeyJWTBearer(t *testing.T) {
	k := newKeysEnv(t)
	k.ok(logical.UpdateOperation, "config/k", map[string]any{"token_url": k.idp.tokenURL(), "client_id": "c", "client_auth": "none",
		"generate_key": true, "key_publish_lead": "10m"})
	k.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "k", "grant_type": "jwt_bearer", "jwt_subject": "svc"})
	_, _, kids := k.jwks("k")
	k.creds("b")
	if got := k.idp.lastRequest(t); got.Grant != backend.JWTBearerGrantURN || got.Auth != "none" || got.GrantKid != kids[0] {
		t.Fatalf("the IdP saw %+v", got)
	}
	k.ok(logical.UpdateOperation, "config/k/rotate-key", nil)
	_, _, both := k.jwks("k")
	k.clock.Advance(10 * time.Minute)
	k.freshCreds("b")
	if got := k.idp.lastRequest(t); got.GrantKid != both[1] {
		t.Fatalf("after the rotation the grant assertion was signed by %s, want %s", got.GrantKid, both[1])
	}
}

// The JWKS max-age is always shorter than the publish lead, so an IdP that
// honours it has the next key before it signs: a fifth of the lead, at most
// five minutes.
func TestJWKSMaxAgeBelowLead(t *testing.T) {
	for _, c := range []struct{ lead, want time.Duration }{
		{minKeyPublishLead, 15 * time.Second},
		{10 * time.Minute, 2 * time.Minute},
		{defaultKeyPublishLead, 5 * time.Minute},
		{30 * 24 * time.Hour, 5 * time.Minute},
	} {
		got := jwksMaxAge(&configEntry{KeyPublishLead: c.lead})
		if got != c.want || got >= c.lead {
			t.Errorf("lead %s: max-age %s, want %s (below the lead)", c.lead, got, c.want)
		}
	}
}
