package idptokens

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/promtext"
)

func (e *testEnv) metricsJSON() backend.Snapshot {
	e.t.Helper()
	resp := e.ok(logical.ReadOperation, "metrics", nil)
	return backend.Snapshot{
		Configs:      resp.Data["configs"].(map[string]backend.ConfigSnapshot),
		CachedTokens: resp.Data["cached_tokens"].(int),
	}
}

func (e *testEnv) metricsProm() map[string]*promtext.Family {
	e.t.Helper()
	resp := e.ok(logical.ReadOperation, "metrics", map[string]any{"format": "prometheus"})
	if resp.Data[logical.HTTPStatusCode] != 200 || resp.Data[logical.HTTPContentType] != backend.PrometheusContentType {
		e.t.Fatalf("raw response status %v type %v", resp.Data[logical.HTTPStatusCode], resp.Data[logical.HTTPContentType])
	}
	body := resp.Data[logical.HTTPRawBody].([]byte)
	fams, err := promtext.Parse(bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("%v\n%s", err, body)
	}
	return fams
}

// Reads count as hits and misses, IdP answers by outcome; nothing secret
// shows; deleting a config drops its series.
func TestMetricsCounts(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	for range 4 {
		e.creds("mwi") // one miss, three hits
	}
	// A second role of another config whose IdP refuses, then fails.
	_, url := startIdP(t, fakeidp.Options{ClientID: "app", ClientSecret: "right"})
	e.ok(logical.UpdateOperation, "config/bad", map[string]any{"token_url": url, "client_id": "app", "client_secret": "wrong"})
	e.ok(logical.UpdateOperation, "roles/bad", map[string]any{"config": "bad"})
	e.fails(logical.ReadOperation, "creds/bad", nil, "invalid_client")
	idp.FailNext(1, 503) // the next MWI fetch is retried once, then succeeds
	e.creds("mwi")       // still a hit: the IdP is not asked

	s := e.metricsJSON()
	mwi, bad := s.Configs["mwi"], s.Configs["bad"]
	if mwi.CacheHits != 4 || mwi.CacheMisses != 1 || bad.CacheMisses != 1 || bad.CacheHits != 0 {
		t.Fatalf("hits/misses: mwi %d/%d bad %d/%d, want 4/1 and 0/1", mwi.CacheHits, mwi.CacheMisses, bad.CacheHits, bad.CacheMisses)
	}
	if mwi.Requests["password"]["success"] != 1 || bad.Requests["client_credentials"]["refused"] != 1 {
		t.Fatalf("requests: mwi %v bad %v", mwi.Requests, bad.Requests)
	}
	if s.CachedTokens != 1 || mwi.Latency.Count != 1 {
		t.Fatalf("cached tokens %d, latency count %d; want 1 and 1", s.CachedTokens, mwi.Latency.Count)
	}

	// A forced refetch (min_ttl beyond the token's half life is capped, so
	// change the scope set instead) meets the 503 and retries.
	e.ok(logical.UpdateOperation, "config/mwi", map[string]any{"scopes": "test_api"})
	e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"config": "mwi", "scopes": "test_api", "extra_params": map[string]any{"x": "1"}})
	e.creds("mwi")
	fams := e.metricsProm()
	p := backend.MetricPrefix
	for _, c := range []struct {
		sample string
		labels map[string]string
		want   float64
	}{
		{p + "cache_misses_total", map[string]string{"config": "mwi"}, 2},
		{p + "token_requests_total", map[string]string{"config": "mwi", "grant": "password", "outcome": "error"}, 1},
		{p + "token_requests_total", map[string]string{"config": "mwi", "grant": "password", "outcome": "success"}, 2},
		{p + "retries_total", map[string]string{"config": "mwi"}, 1},
		{p + "token_requests_total", map[string]string{"config": "bad", "grant": "client_credentials", "outcome": "refused"}, 1},
	} {
		if got, ok := promtext.Value(fams, c.sample, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.sample, c.labels, got, ok, c.want)
		}
	}

	raw := e.ok(logical.ReadOperation, "metrics", map[string]any{"format": "prometheus"}).Data[logical.HTTPRawBody].([]byte)
	for _, secret := range []string{mwiPassword, mwiSecurityKey, "s3cret", "wrong", "access_token"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("metrics contain %q", secret)
		}
	}

	e.ok(logical.DeleteOperation, "roles/bad", nil)
	e.ok(logical.DeleteOperation, "config/bad", nil)
	if _, ok := e.metricsJSON().Configs["bad"]; ok {
		t.Fatal("a deleted config keeps its series")
	}
	e.fails(logical.ReadOperation, "metrics", map[string]any{"format": "xml"}, "format")
}
