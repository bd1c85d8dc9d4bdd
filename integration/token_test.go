//go:build integration

package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// TestTokenPathThroughVault: `vault read idp/token/<role>` answers the
// cached token with no lease; a policy may grant idp/token/<role> without
// idp/creds/<role>, and the other way round; nothing of the token read
// leaves a lease in Vault.
func TestTokenPathThroughVault(t *testing.T) {
	t.Parallel()
	v := StartDevVault(t)
	idp := StartFakeIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "tok-client", ClientSecret: "tok-secret",
		Scopes: []string{"read"}, TokenTTL: time.Hour})
	v.Write("idp/config/c", "token_url="+idp.TokenURL(), "client_id=tok-client", "client_secret=tok-secret", "scopes=read")
	v.Write("idp/roles/app", "config=c")

	tokenOnly := v.policyToken("token-only", `path "idp/token/app" { capabilities = ["read"] }`)
	credsOnly := v.policyToken("creds-only", `path "idp/creds/app" { capabilities = ["read"] }`)

	var unleased Secret
	v.JSONAs(tokenOnly, &unleased, "read", "idp/token/app")
	if unleased.LeaseID != "" || unleased.LeaseDuration != 0 || unleased.Renewable {
		t.Fatalf("idp/token/app has a lease: id %q duration %d renewable %v", unleased.LeaseID, unleased.LeaseDuration, unleased.Renewable)
	}
	access := unleased.String("access_token")
	if got := bearerStatus(t, idp.ResourceURL(), access); got != http.StatusOK {
		t.Fatalf("the token read's access token gets %d at the IdP, want 200", got)
	}
	in, ok := unleased.Data["expires_in"].(float64) // a JSON number
	if !ok || in < 3590 || in > 3600 {
		t.Fatalf("expires_in %#v, want about 3600 seconds as a number", unleased.Data["expires_in"])
	}
	if unleased.String("token_type") != "Bearer" || unleased.String("scope") != "read" || unleased.String("expires_at") == "" {
		t.Fatalf("token read data %v", keys(unleased.Data))
	}
	if r := v.CLIAs(tokenOnly, "", "read", "idp/creds/app"); r.Err == nil || !strings.Contains(r.Stderr, "permission denied") {
		t.Fatalf("a token-only policy read creds: err %v, %s", r.Err, r.Stderr)
	}

	var leased Secret
	v.JSONAs(credsOnly, &leased, "read", "idp/creds/app")
	if leased.LeaseID == "" || leased.String("access_token") != access {
		t.Fatalf("creds: lease %q, same token %v; want a lease on the one cached token", leased.LeaseID, leased.String("access_token") == access)
	}
	if r := v.CLIAs(credsOnly, "", "read", "idp/token/app"); r.Err == nil || !strings.Contains(r.Stderr, "permission denied") {
		t.Fatalf("a creds-only policy read token: err %v, %s", r.Err, r.Stderr)
	}
	for range 5 {
		v.JSONAs(tokenOnly, &unleased, "read", "idp/token/app")
	}
	if n := idp.TokenRequests(); n != 1 {
		t.Fatalf("IdP saw %d token requests for one cached token, want 1", n)
	}
	// Vault holds the one creds lease and none for the six token reads.
	var list []string
	v.JSON(&list, "list", "sys/leases/lookup/idp/creds/app/")
	if len(list) != 1 {
		t.Fatalf("leases under idp/creds/app: %d, want 1", len(list))
	}
	if r := v.CLI("list", "-format=json", "sys/leases/lookup/idp/token/app/"); r.Err == nil && strings.TrimSpace(r.Stdout) != "[]" {
		t.Fatalf("leases under idp/token/app: %s", r.Stdout)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
