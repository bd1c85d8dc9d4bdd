package backend

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/promtext"
)

func TestExchangeOutcome(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, OutcomeSuccess},
		{&IdPError{Status: 400, Code: "invalid_client"}, OutcomeRefused},
		{&IdPError{Status: 401}, OutcomeRefused},
		{&IdPError{Status: 429, Temporary: true}, OutcomeError},
		{&IdPError{Status: 503, Temporary: true}, OutcomeError},
		{&IdPError{Status: 200, Detail: "the token response is not JSON"}, OutcomeError},
		{&IdPError{Detail: "connection refused", Temporary: true}, OutcomeError},
		{&IdPError{Detail: "timed out"}, OutcomeTimeout},
		{&IdPError{Detail: "device authorization: timed out"}, OutcomeTimeout},
	}
	for _, c := range cases {
		if got := ExchangeOutcome(Exchange{Err: c.err}); got != c.want {
			t.Errorf("%v: outcome %s, want %s", c.err, got, c.want)
		}
	}
	device := []struct {
		x    Exchange
		want string
	}{
		{Exchange{Grant: GrantDeviceCode, Err: &IdPError{Status: 400, Code: DeviceAuthorizationPending}}, OutcomePending},
		{Exchange{Grant: GrantDeviceCode, Err: &IdPError{Status: 400, Code: DeviceSlowDown}}, OutcomePending},
		{Exchange{Grant: GrantDeviceCode, Err: &IdPError{Status: 400, Code: DeviceAccessDenied}}, OutcomeRefused},
		{Exchange{Grant: GrantClientCredentials, Err: &IdPError{Status: 400, Code: DeviceAuthorizationPending}}, OutcomeRefused},
		{Exchange{Grant: GrantDeviceCode, DeviceAuthorization: true, Err: &IdPError{Status: 400, Code: DeviceSlowDown}}, OutcomeRefused},
	}
	for _, c := range device {
		if got := ExchangeOutcome(c.x); got != c.want {
			t.Errorf("%s %v (device authorization %v): outcome %s, want %s", c.x.Grant, c.x.Err, c.x.DeviceAuthorization, got, c.want)
		}
	}
}

// A real client timeout and a real refusal reach the counters through
// Endpoint.Observe with the right outcome, retries counted.
func TestMetricsThroughEndpoint(t *testing.T) {
	var mu sync.Mutex
	status, delay := http.StatusOK, time.Duration(0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st, d := status, delay
		mu.Unlock()
		time.Sleep(d)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		if st == http.StatusOK {
			w.Write([]byte(`{"access_token":"at","token_type":"Bearer","expires_in":60}`))
		} else {
			w.Write([]byte(`{"error":"invalid_client"}`))
		}
	}))
	defer srv.Close()
	var m Metrics
	e := &Endpoint{
		Config: "c1", TokenURL: srv.URL, ClientID: "id", ClientSecret: "sec", ClientAuth: ClientAuthBasic,
		HTTP:    &http.Client{Timeout: 200 * time.Millisecond},
		Retry:   RetryPolicy{Attempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, MaxElapsed: 5 * time.Second},
		Observe: func(x Exchange) { m.ObserveExchange("c1", x) },
	}
	ctx := context.Background()
	req := TokenRequest{Grant: GrantClientCredentials}
	if _, err := e.RequestToken(ctx, req); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	status = http.StatusUnauthorized
	mu.Unlock()
	if _, err := e.RequestToken(ctx, req); err == nil {
		t.Fatal("want a refusal")
	}
	mu.Lock()
	status, delay = http.StatusOK, time.Second
	mu.Unlock()
	if _, err := e.RequestToken(ctx, req); err == nil {
		t.Fatal("want a timeout")
	}
	c := m.Snapshot(0).Configs["c1"]
	want := map[string]uint64{OutcomeSuccess: 1, OutcomeRefused: 1, OutcomeTimeout: 2}
	for o, n := range want {
		if got := c.Requests["client_credentials"][o]; got != n {
			t.Errorf("%s: %d, want %d (all: %v)", o, got, n, c.Requests)
		}
	}
	if c.Retries != 1 || c.Latency.Count != 4 {
		t.Errorf("retries %d latency count %d, want 1 and 4", c.Retries, c.Latency.Count)
	}
}

func TestMetricsPrometheusText(t *testing.T) {
	var m Metrics
	for i := range 3 {
		m.CacheHit("a")
		m.ObserveExchange("a", Exchange{Grant: GrantPassword, Duration: time.Duration(i*30) * time.Millisecond, Attempt: 1})
	}
	m.CacheMiss("a")
	m.CacheHitOn("a", ReadToken)
	m.CacheHitOn("a", ReadToken)
	m.ObserveExchange(`we"ird\name`, Exchange{Grant: GrantRefreshToken, Status: 400, Err: &IdPError{Status: 400}, Duration: 3 * time.Second, Attempt: 2})
	m.Refresh("a")
	m.RefreshFallback(`we"ird\name`)
	m.AuthCodeLogin("a", true)
	m.AuthCodeLogin("a", false)
	m.AuthCodeLogin("a", false)
	m.SecretFallback("a", true)
	m.ObserveExchange("a", Exchange{Grant: GrantDeviceCode, DeviceAuthorization: true, Status: 200, Duration: 20 * time.Second, Attempt: 1})
	m.ObserveExchange("a", Exchange{Grant: GrantDeviceCode, DeviceAuthorization: true, Status: 400, Err: &IdPError{Status: 400}, Attempt: 1})

	var buf bytes.Buffer
	if err := m.Snapshot(7).WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	fams, err := promtext.Parse(&buf)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	p := MetricPrefix
	checks := []struct {
		sample string
		labels map[string]string
		want   float64
	}{
		{p + "cache_hits_total", map[string]string{"config": "a"}, 5},
		{p + "cache_misses_total", map[string]string{"config": "a"}, 1},
		{p + "reads_total", map[string]string{"config": "a", "path": "creds", "result": "hit"}, 3},
		{p + "reads_total", map[string]string{"config": "a", "path": "creds", "result": "miss"}, 1},
		{p + "reads_total", map[string]string{"config": "a", "path": "token", "result": "hit"}, 2},
		{p + "reads_total", map[string]string{"config": "a", "path": "token", "result": "miss"}, 0},
		{p + "token_requests_total", map[string]string{"config": "a", "grant": "password", "outcome": "success"}, 3},
		{p + "token_requests_total", map[string]string{"config": "a", "grant": "password", "outcome": "refused"}, 0},
		{p + "token_requests_total", map[string]string{"config": `we"ird\name`, "grant": "refresh_token", "outcome": "refused"}, 1},
		{p + "retries_total", map[string]string{"config": `we"ird\name`}, 1},
		{p + "refreshes_total", map[string]string{"config": "a"}, 1},
		{p + "refresh_fallbacks_total", map[string]string{"config": `we"ird\name`}, 1},
		{p + "auth_code_logins_total", map[string]string{"config": "a", "outcome": "failure"}, 2},
		{p + "secret_fallbacks_total", map[string]string{"config": "a", "outcome": "success"}, 1},
		{p + "secret_fallbacks_total", map[string]string{"config": "a", "outcome": "failure"}, 0},
		{p + "device_authorizations_total", map[string]string{"config": "a", "outcome": "success"}, 1},
		{p + "device_authorizations_total", map[string]string{"config": "a", "outcome": "refused"}, 1},
		{p + "device_authorizations_total", map[string]string{"config": "a", "outcome": "timeout"}, 0},
		{p + "idp_request_duration_seconds_count", map[string]string{"config": "a"}, 3}, // device authorization is not a token request
		{p + "idp_request_duration_seconds_bucket", map[string]string{"config": "a", "le": "0.005"}, 1},
		{p + "idp_request_duration_seconds_bucket", map[string]string{"config": "a", "le": "0.05"}, 2},
		{p + "idp_request_duration_seconds_bucket", map[string]string{"config": "a", "le": "0.1"}, 3},
		{p + "idp_request_duration_seconds_count", map[string]string{"config": `we"ird\name`}, 1},
		{p + "idp_request_duration_seconds_bucket", map[string]string{"config": `we"ird\name`, "le": "2.5"}, 0},
		{p + "idp_request_duration_seconds_bucket", map[string]string{"config": `we"ird\name`, "le": "5"}, 1},
		{p + "cached_tokens", map[string]string{}, 7},
	}
	for _, c := range checks {
		if got, ok := promtext.Value(fams, c.sample, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.sample, c.labels, got, ok, c.want)
		}
	}
	if len(fams) != 14 {
		t.Errorf("%d families, want 14", len(fams))
	}

	m.DropConfig(`we"ird\name`)
	m.Retain([]string{"b"})
	buf.Reset()
	m.Snapshot(0).WritePrometheus(&buf)
	if strings.Contains(buf.String(), "config=") {
		t.Fatalf("series of dropped configs remain:\n%s", buf.String())
	}
	if _, err := promtext.Parse(&buf); err != nil {
		t.Fatal(err)
	}
}

// The parser itself rejects what a scraper would misread.
func TestPromtextStrict(t *testing.T) {
	bad := []string{
		"x 1\n", // no TYPE
		"# HELP x h\n# TYPE x counter\nx{a=\"b} 1\n",                                                 // unterminated label
		"# HELP x h\n# TYPE x counter\nx 1\nx 2\n",                                                   // repeated series
		"# HELP x h\n# TYPE x counter\ny 1\n",                                                        // other family
		"# HELP x h\n# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 1\nx_count 1\n", // not cumulative
		"# HELP x h\n# TYPE x counter\nx{a=\"\\q\"} 1\n",                                             // bad escape
	}
	for _, b := range bad {
		if _, err := promtext.Parse(strings.NewReader(b)); err == nil {
			t.Errorf("accepted %q", b)
		}
	}
}

func BenchmarkMetricsCacheHit(b *testing.B) {
	var m Metrics
	m.CacheHit("c")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.CacheHit("c")
		}
	})
}

// The extension grants (JWT bearer, token exchange, device code) are counted under their own names, not "other".
func TestMetricsExtensionGrants(t *testing.T) {
	var m Metrics
	for _, g := range []GrantType{GrantJWTBearer, GrantTokenExchange, GrantDeviceCode} {
		m.ObserveExchange("c", Exchange{Grant: g, Status: 200, Attempt: 1})
	}
	c := m.Snapshot(0).Configs["c"]
	for _, g := range []string{"jwt_bearer", "token_exchange", "device_code"} {
		if c.Requests[g]["success"] != 1 {
			t.Errorf("requests[%s] = %v, want one success", g, c.Requests[g])
		}
	}
	if len(c.Requests["other"]) != 0 {
		t.Errorf("requests[other] = %v", c.Requests["other"])
	}
}

// TestTelemetryDocListsEveryMetric keeps docs/telemetry.md's table and the
// exposition in step: every family written is documented with its type, and
// nothing documented is missing from the output.
func TestTelemetryDocListsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("../docs/telemetry.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{} // name -> type
	for _, m := range regexp.MustCompile("(?m)^\\| `("+MetricPrefix+"[a-z_]+)` \\| ([a-z]+) \\|").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = m[2]
	}
	var m Metrics
	m.CacheHit("a")
	var buf bytes.Buffer
	if err := m.Snapshot(1).WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	fams, err := promtext.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range fams {
		if typ, ok := documented[name]; !ok || typ != f.Type {
			t.Errorf("%s (%s) is written but docs/telemetry.md lists it as %q", name, f.Type, typ)
		}
		delete(documented, name)
	}
	for name := range documented {
		t.Errorf("docs/telemetry.md lists %s, which is not written", name)
	}
}

// Per-entity roles are counted by config and role, never by entity.
func TestMetricsPerEntityRoles(t *testing.T) {
	var m Metrics
	m.PerEntityRead("myid", "people", true)
	m.PerEntityRead("myid", "people", true)
	m.PerEntityRead("myid", "people", false)
	m.PerEntityLogin("myid", "people", LoginSuccess)
	m.PerEntityLogin("myid", "people", LoginRefusedSubject)
	var b strings.Builder
	if err := m.Snapshot(0).WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	fams, err := promtext.Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	p := MetricPrefix
	for _, c := range []struct {
		sample string
		labels map[string]string
		want   float64
	}{
		{p + "per_entity_reads_total", map[string]string{"config": "myid", "role": "people", "result": "hit"}, 2},
		{p + "per_entity_reads_total", map[string]string{"config": "myid", "role": "people", "result": "miss"}, 1},
		{p + "per_entity_logins_total", map[string]string{"config": "myid", "role": "people", "outcome": "success"}, 1},
		{p + "per_entity_logins_total", map[string]string{"config": "myid", "role": "people", "outcome": "refused_subject"}, 1},
		{p + "per_entity_logins_total", map[string]string{"config": "myid", "role": "people", "outcome": "failure"}, 0},
	} {
		if got, ok := promtext.Value(fams, c.sample, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.sample, c.labels, got, ok, c.want)
		}
	}
	if strings.Contains(b.String(), "entity=") {
		t.Fatal("a series carries an entity label")
	}
}
