//go:build integration

package integration

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Rotation timings of the tests: the lower bounds (a 75 s lead is above
// oidc-provider's 60 s floor for a fetched JWKS; a 1 m overlap is above a
// client assertion's 60 s life), the period as short as the lead allows.
const (
	testKeyPeriod  = 75 * time.Second
	testKeyLead    = 75 * time.Second
	testKeyOverlap = 60 * time.Second
	testTokenTTL   = 10 * time.Second
	wantRotations  = 3
)

// keyFields are the config fields of a generated key on the test timings.
func keyFields() []string {
	return []string{"client_auth=private_key_jwt", "generate_key=true", "key_rotation_period=" + testKeyPeriod.String(),
		"key_publish_lead=" + testKeyLead.String(), "key_overlap=" + testKeyOverlap.String()}
}

// TestGeneratedKeysAtRealIdPs: configs whose keys are made in Vault and
// registered at the IdP only by jwks_uri (the mount's jwks/<config>), with no
// secret ever written: oidc-provider (client_credentials with private_key_jwt,
// and an RFC 7523 jwt-bearer role whose grant assertion it verifies against
// the same jwks_uri) and Ory Hydra (client_credentials with private_key_jwt).
// Three scheduled rotations each, on the periodic function, while readers
// read all the time: no read fails, every assertion either IdP saw was signed
// by a key the JWKS served just before and just after, every new key was
// published key_publish_lead before it signed, and the old keys left the
// JWKS key_overlap after they stopped signing (all but the last, still in
// its overlap at the end, which TestHAKeyRotationFailover waits out).
func TestGeneratedKeysAtRealIdPs(t *testing.T) {
	t.Parallel()
	began := time.Now()
	v := StartDevVault(t)
	const opPath, hydraPath = "/v1/idp/jwks/op-keys", "/v1/idp/jwks/hydra-keys"
	op := StartOIDCProvider(t, testTokenTTL, "OIDC_JWKS_URI_CLIENT_URI="+v.Addr+opPath)
	hydra := StartHydra(t, testTokenTTL)
	hydra.CreateClient(t, map[string]any{
		"client_id": "vault-keys", "grant_types": []string{"client_credentials"}, "scope": "api:read",
		"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
		"jwks_uri": v.Addr + hydraPath,
	})

	v.Write("idp/config/op-keys", append([]string{"token_url=" + op.Issuer + "/token", "client_id=jwks-uri-client", "scopes=api:read"}, keyFields()...)...)
	v.Write("idp/roles/op-cc", "config=op-keys", "grant_type=client_credentials")
	v.Write("idp/roles/op-jb", "config=op-keys", "grant_type=jwt_bearer", "jwt_subject=svc-reports")
	v.Write("idp/config/hydra-keys", append([]string{"token_url=" + hydra.TokenURL, "client_id=vault-keys", "scopes=api:read"}, keyFields()...)...)
	v.Write("idp/roles/hydra-cc", "config=hydra-keys", "grant_type=client_credentials")
	for _, name := range []string{"op-keys", "hydra-keys"} {
		var read Secret
		v.JSON(&read, "read", "idp/config/"+name)
		if read.Data["client_secret_set"] != false || read.Data["private_key_set"] != false || read.Data["generate_key"] != true {
			t.Fatalf("config %s holds a written credential: %v", name, read.Data)
		}
	}

	// What the JWKS serves, from before the first token request on.
	addrs := func() []string { return []string{v.Addr} }
	opWatch := watchJWKS(opPath, addrs, 250*time.Millisecond)
	hydraWatch := watchJWKS(hydraPath, addrs, 250*time.Millisecond)
	time.Sleep(time.Second)

	// The IdPs' answers, then everything under load.
	if in := op.Introspect(t, "basic-client", v.ReadCreds("op-cc").String("access_token")); in["active"] != true || in["client_id"] != "jwks-uri-client" {
		t.Fatalf("oidc-provider: the client_credentials token: %v", in)
	}
	if in := op.Introspect(t, "basic-client", v.ReadCreds("op-jb").String("access_token")); in["active"] != true || in["client_id"] != "jwks-uri-client" {
		t.Fatalf("oidc-provider: the jwt-bearer token: %v", in)
	}
	if in := hydra.Introspect(t, v.ReadCreds("hydra-cc").String("access_token")); in["active"] != true || in["client_id"] != "vault-keys" {
		t.Fatalf("Hydra: the token: %v", in)
	}

	readers := startReaders(v.Token, func() string { return v.Addr }, []string{"op-cc", "op-jb", "hydra-cc"}, 2, 100*time.Millisecond)
	histories := map[string]*keyHistory{"op-keys": {}, "hydra-keys": {}}
	var wg sync.WaitGroup
	for name, h := range histories {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// wantRotations rotations: one key more seen signing, the last
			// long enough to sign a few token requests (the last retiring
			// key's overlap is not waited for: the ones before are checked).
			deadline := time.Now().Add(12 * time.Minute)
			var lastSwitch time.Time
			for time.Now().Before(deadline) {
				var read Secret
				v.JSON(&read, "read", "idp/config/"+name)
				views, _ := read.Data["keys"].([]any)
				var maps []map[string]any
				for _, x := range views {
					if m, ok := x.(map[string]any); ok {
						maps = append(maps, m)
					}
				}
				h.observe(maps)
				if kids := h.signingKids(); len(kids) > wantRotations {
					if lastSwitch.IsZero() {
						lastSwitch = h.get(kids[wantRotations]).SignsFrom
					}
					if time.Since(lastSwitch) > 2*testTokenTTL {
						return
					}
				}
				time.Sleep(time.Second)
			}
		}()
	}
	wg.Wait()
	readers.close()
	opSnaps, hydraSnaps := opWatch.close(), hydraWatch.close()

	// No read failed.
	if n := readers.failed.Load(); n != 0 {
		t.Errorf("%d of %d reads failed: %s", n, readers.reads.Load(), readers.errs())
	}
	for name, snaps := range map[string][]jwksSnapshot{"op-keys": opSnaps, "hydra-keys": hydraSnaps} {
		h := histories[name]
		kids := h.signingKids()
		if len(kids) <= wantRotations {
			t.Fatalf("%s: %d keys signed within the deadline (%v), want %d rotations", name, len(kids), kids, wantRotations)
		}
		failed := 0
		for _, s := range snaps {
			if s.Err != nil {
				failed++
				t.Errorf("%s: JWKS poll at %s: %v", name, s.At.Format(time.StampMilli), s.Err)
			} else if s.CacheControl != "public, max-age=15" || s.ContentType != "application/json" {
				t.Errorf("%s: JWKS Cache-Control %q, Content-Type %q", name, s.CacheControl, s.ContentType)
			}
		}
		for i, kid := range kids[:wantRotations+1] {
			k := h.get(kid)
			first, last := firstAndLastServed(snaps, kid)
			// Published first: key_publish_lead before it signed (the first
			// key signs at once).
			if i > 0 && (first.IsZero() || k.SignsFrom.Sub(first) < testKeyLead-2*time.Second) {
				t.Errorf("%s: key %d (%s) first served %s, signing from %s: less than the lead", name, i+1, kid, first.Format(time.StampMilli), k.SignsFrom.Format(time.StampMilli))
			}
			// Gone after its overlap (the last retiring key was still in
			// its overlap at the end, the newest signing).
			if i < wantRotations {
				if k.PublishedUntil.IsZero() || !k.PublishedUntil.Equal(k.SignsUntil.Add(testKeyOverlap)) {
					t.Errorf("%s: key %d (%s) signs until %s, published until %s: want the overlap after", name, i+1, kid, k.SignsUntil, k.PublishedUntil)
				}
			}
			if i == wantRotations-1 && (last.Before(k.SignsUntil) || !last.Before(k.PublishedUntil)) {
				t.Errorf("%s: key %d (%s) last served %s: want it served past its signs_until %s, within its overlap", name, i+1, kid, last.Format(time.StampMilli), k.SignsUntil)
			}
			if i < wantRotations-1 {
				if last.After(k.PublishedUntil.Add(time.Second)) || last.Before(k.PublishedUntil.Add(-2*time.Second)) {
					t.Errorf("%s: key %d (%s) last served %s, published until %s", name, i+1, kid, last.Format(time.StampMilli), k.PublishedUntil.Format(time.StampMilli))
				}
			}
			if i > 0 {
				prev := h.get(kids[i-1])
				if !prev.SignsUntil.Equal(k.SignsFrom) {
					t.Errorf("%s: key %d signs until %s, key %d from %s", name, i, prev.SignsUntil, i+1, k.SignsFrom)
				}
			}
		}
		t.Logf("%s: keys %v; JWKS polled %d times (%d failed)", name, kids, len(snaps), failed)
	}

	// Every assertion the IdPs saw was signed by a key the JWKS served at
	// the time, and every key signed.
	opSeen := oidcProviderRequests(t, op.Log)
	var opCC, opJB []seenAssertion
	for _, a := range opSeen {
		if a.Grant == "client_credentials" {
			opCC = append(opCC, a)
		} else {
			opJB = append(opJB, a)
		}
	}
	for _, c := range []struct {
		name   string
		config string
		seen   []seenAssertion
		snaps  []jwksSnapshot
		grant  bool
	}{
		{"oidc-provider client_credentials", "op-keys", opCC, opSnaps, false},
		{"oidc-provider jwt-bearer", "op-keys", opJB, opSnaps, true},
		{"Hydra client_credentials", "hydra-keys", hydra.rec.all(), hydraSnaps, false},
	} {
		used := checkAssertionKids(t, c.name, c.seen, c.snaps)
		for _, kid := range histories[c.config].signingKids()[:wantRotations+1] {
			if used[kid] == 0 {
				t.Errorf("%s: key %s never signed a request the IdP saw", c.name, kid)
			}
		}
		for _, a := range c.seen {
			if c.grant && (a.GrantKid == "" || a.GrantKid != a.ClientKid) {
				t.Errorf("%s: request at %s: client assertion kid %q, grant assertion kid %q", c.name, a.At.Format(time.StampMilli), a.ClientKid, a.GrantKid)
			}
		}
		kids := histories[c.config].signingKids()
		counts := make([]int, len(kids))
		for i, kid := range kids {
			counts[i] = used[kid]
		}
		t.Logf("%s: %d token requests; assertions by key, oldest first: %v", c.name, len(c.seen), counts)
	}
	if slices.ContainsFunc(opSeen, func(a seenAssertion) bool { return a.Client != "jwks-uri-client" }) {
		t.Error("oidc-provider saw an assertion of another client")
	}
	t.Logf("%d reads, %d failed, in %s", readers.reads.Load(), readers.failed.Load(), time.Since(began).Round(time.Second))
}
