//go:build integration

package integration

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/promtext"
)

// TestMetrics reads idp/metrics through a real Vault as a Prometheus scraper
// would: a bearer token whose policy grants read on idp/metrics only, and
// format=prometheus answered as a raw text body across the plugin boundary.
func TestMetrics(t *testing.T) {
	t.Parallel()
	v := StartDevVault(t)
	idp := StartFakeIdP(t, fakeidp.Options{ClientID: "app", ClientSecret: "metrics-secret", Scopes: []string{"read"}})
	v.Write("idp/config/m", "token_url="+idp.TokenURL(), "client_id=app", "client_secret=metrics-secret")
	v.Write("idp/roles/m", "config=m", "scopes=read")
	tok := v.ReadCreds("m").String("access_token")
	v.ReadCreds("m")

	if r := v.CLIAs(v.Token, `path "idp/metrics" { capabilities = ["read"] }`, "policy", "write", "idp-metrics", "-"); r.Err != nil {
		t.Fatalf("policy write: %v %s", r.Err, r.Stderr)
	}
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	v.JSON(&created, "token", "create", "-policy=idp-metrics", "-ttl=1h")
	scraper := created.Auth.ClientToken
	v.JSON(&created, "token", "create", "-policy=default", "-ttl=1h")
	other := created.Auth.ClientToken

	get := func(token, path string) (int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, v.Addr+"/v1/"+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, body
	}

	status, h, body := get(scraper, "idp/metrics?format=prometheus")
	if status != http.StatusOK || h.Get("Content-Type") != backend.PrometheusContentType {
		t.Fatalf("scrape: HTTP %d, Content-Type %q: %s", status, h.Get("Content-Type"), body)
	}
	fams, err := promtext.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	p := backend.MetricPrefix
	for _, c := range []struct {
		sample string
		labels map[string]string
		want   float64
	}{
		{p + "cache_hits_total", map[string]string{"config": "m"}, 1},
		{p + "cache_misses_total", map[string]string{"config": "m"}, 1},
		{p + "token_requests_total", map[string]string{"config": "m", "grant": "client_credentials", "outcome": "success"}, 1},
		{p + "idp_request_duration_seconds_count", map[string]string{"config": "m"}, 1},
		{p + "cached_tokens", map[string]string{}, 1},
	} {
		if got, ok := promtext.Value(fams, c.sample, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.sample, c.labels, got, ok, c.want)
		}
	}
	for _, secret := range []string{"metrics-secret", tok} {
		if strings.Contains(string(body), secret) {
			t.Fatalf("the metrics contain a secret or token")
		}
	}

	// JSON is the default, through the CLI.
	var js struct {
		Data struct {
			Configs map[string]backend.ConfigSnapshot `json:"configs"`
		} `json:"data"`
	}
	v.JSONAs(scraper, &js, "read", "idp/metrics")
	if js.Data.Configs["m"].CacheHits != 1 {
		t.Errorf("JSON metrics: %+v", js.Data.Configs)
	}

	// Policy-controlled: the scraper reads nothing else, others not the metrics.
	if status, _, _ := get(scraper, "idp/creds/m"); status != http.StatusForbidden {
		t.Errorf("the metrics token read idp/creds: HTTP %d, want 403", status)
	}
	if status, _, _ := get(other, "idp/metrics?format=prometheus"); status != http.StatusForbidden {
		t.Errorf("a token without the policy read idp/metrics: HTTP %d, want 403", status)
	}
	if status, _, _ := get("", "idp/metrics?format=prometheus"); status != http.StatusForbidden {
		t.Errorf("no token read idp/metrics: HTTP %d, want 403", status)
	}
}
