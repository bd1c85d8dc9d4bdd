//go:build integration

package integration

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPresets configures each provider preset with the CLI against its fake IdP and
// checks what a user sees from `vault read idp/creds/<role>` (for MyID, after a
// person's login through a browser stand-in).
func TestPresets(t *testing.T) {
	t.Parallel()
	const ttl = 30 * time.Second
	v := StartDevVault(t)
	for _, p := range presets(ttl) {
		t.Run(p.provider, func(t *testing.T) {
			v := v.For(t)
			opts := p.opts
			if p.login != nil {
				opts.RedirectURIs = []string{v.callbackURL()}
			}
			idp := StartFakeIdP(t, opts)
			role := p.provider
			v.Write("idp/config/"+p.provider, p.config(idp)...)
			v.Write("idp/roles/"+role, "config="+p.provider, "grant_type="+p.grant)
			if p.login != nil {
				p.login(t, v, role)
			}

			s := v.ReadCreds(role)
			tok := s.String("access_token")
			if got := bearerStatus(t, idp.ResourceURL(), tok); got != http.StatusOK {
				t.Errorf("the token from idp/creds/%s gets %d at the IdP's resource, want 200", role, got)
			}
			if d := math.Abs(float64(s.LeaseDuration) - ttl.Seconds()); d > 2 {
				t.Errorf("lease_duration = %d, want the IdP's expires_in %v within 2 s", s.LeaseDuration, ttl.Seconds())
			}
			if s.Renewable {
				t.Error("lease is renewable, want not renewable")
			}
			if s.LeaseID == "" || !strings.HasPrefix(s.LeaseID, "idp/creds/"+role+"/") {
				t.Errorf("lease_id = %q, want idp/creds/%s/...", s.LeaseID, role)
			}
			if tt := s.String("token_type"); !strings.EqualFold(tt, "bearer") {
				t.Errorf("token_type = %q, want Bearer", tt)
			}
			exp, err := time.Parse(time.RFC3339, s.String("expires_at"))
			if err != nil {
				t.Errorf("expires_at %q is not RFC 3339: %v", s.String("expires_at"), err)
			} else if d := time.Until(exp); d <= 0 || d > ttl+2*time.Second {
				t.Errorf("expires_at is %v from now, want within (0, %v]", d, ttl)
			}
			if p.opts.IDTokens && s.String("id_token") == "" {
				t.Error("id_token is empty though the IdP sent one")
			}
			// One request: the token (for MyID, the code exchange of the login).
			if n := idp.TokenRequests(); n != 1 {
				t.Errorf("IdP saw %d token requests after the first read, want 1", n)
			}

			// A second read reuses the cached token.
			s2 := v.ReadCreds(role)
			if s2.String("access_token") != tok {
				t.Error("second read returned a different token, want the cached one")
			}
			if s2.LeaseID == s.LeaseID {
				t.Error("second read returned the same lease ID, want a new lease")
			}
			if s2.LeaseDuration > s.LeaseDuration || float64(s2.LeaseDuration) < ttl.Seconds()-5 {
				t.Errorf("second lease_duration = %d (first %d), want the token's remaining lifetime", s2.LeaseDuration, s.LeaseDuration)
			}
			if n := idp.TokenRequests(); n != 1 {
				t.Errorf("IdP saw %d token requests after two reads, want 1", n)
			}

			// The lease is visible to operators.
			var keys []string
			v.JSON(&keys, "list", "sys/leases/lookup/idp/creds/"+role)
			suffix := strings.TrimPrefix(s.LeaseID, "idp/creds/"+role+"/")
			if !contains(keys, suffix) {
				t.Errorf("vault list sys/leases/lookup/idp/creds/%s = %v, want it to hold %q", role, keys, suffix)
			}

			// Revoking a lease is allowed and leaves the cached token alone.
			v.Run("lease", "revoke", s.LeaseID)
			s3 := v.ReadCreds(role)
			if s3.String("access_token") != tok {
				t.Error("read after lease revoke returned a different token, want the cached one")
			}
			if n := idp.TokenRequests(); n != 1 {
				t.Errorf("IdP saw %d token requests after revoke and read, want 1", n)
			}
			if got := bearerStatus(t, idp.ResourceURL(), tok); got != http.StatusOK {
				t.Errorf("after lease revoke the token gets %d at the IdP, want 200 (still cached and valid)", got)
			}
		})
	}
}

// TestSecretsWriteOnly: secrets written to a config never come back out.
func TestSecretsWriteOnly(t *testing.T) {
	t.Parallel()
	v := StartDevVault(t)
	const secret, password, key = "s3cr3t-client-secret-value", "s3cr3t-password-value", "s3cr3t-security-key"
	v.Write("idp/config/x", "provider=mwi", "token_url=http://127.0.0.1:1/connect/token",
		"client_id=x-client", "client_secret="+secret, "username=u", "password="+password,
		"access_code=AC", "security_key="+key, "scopes=test_api")

	for _, args := range [][]string{
		{"read", "idp/config/x"},
		{"read", "-format=json", "idp/config/x"},
	} {
		out := v.Run(args...)
		for _, s := range []string{secret, password, key} {
			if strings.Contains(out, s) {
				t.Errorf("vault %s shows a secret value:\n%s", strings.Join(args, " "), out)
			}
		}
	}
	var s Secret
	v.JSON(&s, "read", "idp/config/x")
	if set, _ := s.Data["client_secret_set"].(bool); !set {
		t.Errorf("client_secret_set = %v, want true; data %v", s.Data["client_secret_set"], s.Data)
	}
	if _, ok := s.Data["client_secret"]; ok {
		t.Errorf("config read has a client_secret field: %v", s.Data)
	}
	if got, _ := s.Data["client_id"].(string); got != "x-client" {
		t.Errorf("client_id = %q, want x-client", got)
	}

	// Updating another field keeps the secret set.
	v.Write("idp/config/x", "scopes=test_api,other")
	v.JSON(&s, "read", "idp/config/x")
	if set, _ := s.Data["client_secret_set"].(bool); !set {
		t.Errorf("after an update without client_secret, client_secret_set = %v, want true", s.Data["client_secret_set"])
	}
}

// TestPolicies: a token allowed only to read idp/creds/mwi gets exactly that.
func TestPolicies(t *testing.T) {
	t.Parallel()
	v := StartDevVault(t)
	var mwi, other preset
	for _, p := range presets(time.Minute) {
		switch p.provider {
		case "mwi":
			mwi = p
		case "oauth2":
			other = p
		}
	}
	idp := StartFakeIdP(t, mwi.opts)
	idp2 := StartFakeIdP(t, other.opts)
	v.Write("idp/config/mwi", mwi.config(idp)...)
	v.Write("idp/roles/mwi", "config=mwi", "grant_type=password")
	v.Write("idp/config/other", other.config(idp2)...)
	v.Write("idp/roles/other", "config=other", "grant_type=client_credentials")

	if r := v.CLIAs(v.Token, `path "idp/creds/mwi" { capabilities = ["read"] }`, "policy", "write", "mwi-reader", "-"); r.Err != nil {
		t.Fatalf("policy write: %v %s", r.Err, r.Stderr)
	}
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	v.JSON(&created, "token", "create", "-policy=mwi-reader", "-ttl=1h")
	tok := created.Auth.ClientToken
	if tok == "" {
		t.Fatal("token create gave no token")
	}

	var s Secret
	v.JSONAs(tok, &s, "read", "idp/creds/mwi")
	if got := bearerStatus(t, idp.ResourceURL(), s.String("access_token")); got != http.StatusOK {
		t.Errorf("the policy-limited token's creds get %d at the IdP, want 200", got)
	}

	denied := [][]string{
		{"read", "idp/config/mwi"},
		{"list", "idp/config"},
		{"write", "idp/config/mwi", "client_secret=stolen"},
		{"delete", "idp/config/mwi"},
		{"read", "idp/roles/mwi"},
		{"list", "idp/roles"},
		{"write", "idp/roles/mwi", "ttl=1h"},
		{"read", "idp/creds/other"},
	}
	for _, args := range denied {
		r := v.CLIAs(tok, "", args...)
		if r.Err == nil {
			t.Errorf("vault %s with the mwi-reader token succeeded, want permission denied:\n%s", strings.Join(args, " "), r.Stdout)
		} else if !strings.Contains(strings.ToLower(r.Stderr), "permission denied") {
			t.Errorf("vault %s failed without 'permission denied': %s", strings.Join(args, " "), r.Stderr)
		}
	}
	// The denied writes changed nothing.
	s = v.ReadCreds("mwi")
	if got := bearerStatus(t, idp.ResourceURL(), s.String("access_token")); got != http.StatusOK {
		t.Errorf("after the denied writes, root's creds get %d at the IdP, want 200", got)
	}
}

// For returns a copy of v whose failures are reported on t (a subtest).
func (v *Vault) For(t *testing.T) *Vault {
	c := *v
	c.t = t
	return &c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
