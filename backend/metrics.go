package backend

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Metrics counts what the engine does, per config, for the metrics path.
// Every series is labelled by config name (operator-chosen, so bounded by the
// number of configs) and at most one further label from a fixed set (grant,
// outcome, bucket). There is deliberately no role label: roles can number in
// the tens of thousands, and a per-role series set would grow the scrape and
// Prometheus' memory with them (the audit log already has per-role detail).
// Nothing here ever sees a secret or a token.
//
// The zero value is ready to use and safe for concurrent use. The hot path
// (a cache hit) costs one sync.Map load and one atomic add.
type Metrics struct {
	configs sync.Map // config name -> *configMetrics
}

// Outcomes of a token request (one HTTP exchange with the token endpoint).
const (
	OutcomeSuccess = "success" // 200 with a usable token
	OutcomeRefused = "refused" // a definite 4xx answer (not 429)
	OutcomeError   = "error"   // 5xx, 429, bad body, network failure
	OutcomeTimeout = "timeout" // no answer in time
	OutcomePending = "pending" // a device_code poll told authorization_pending or slow_down
)

var outcomes = [...]string{OutcomeSuccess, OutcomeRefused, OutcomeError, OutcomeTimeout, OutcomePending}

// grants is the fixed grant label set; anything else counts as "other".
var grants = [...]GrantType{GrantClientCredentials, GrantPassword, GrantAuthorizationCode, GrantRefreshToken,
	GrantJWTBearer, GrantTokenExchange, GrantDeviceCode}

// LatencyBuckets are the upper bounds (seconds) of the IdP latency histogram.
var LatencyBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type configMetrics struct {
	requests         [len(grants) + 1][len(outcomes)]atomic.Uint64
	cacheHits        atomic.Uint64
	cacheMisses      atomic.Uint64
	reads            [len(readPaths)][2]atomic.Uint64 // per path: hit, miss
	retries          atomic.Uint64
	refreshes        atomic.Uint64
	refreshFallbacks atomic.Uint64
	authCodeLogins   [2]atomic.Uint64 // success, failure
	deviceAuths      [len(outcomes)]atomic.Uint64
	secretFallbacks  [2]atomic.Uint64 // success, failure
	latency          histogram
	perEntity        perEntityRoles
}

type histogram struct {
	mu      sync.Mutex
	buckets [len(LatencyBuckets)]uint64 // non-cumulative
	count   uint64
	sum     float64
}

func (h *histogram) observe(seconds float64) {
	i, _ := slices.BinarySearch(LatencyBuckets[:], seconds) // first bound >= seconds
	h.mu.Lock()
	if i < len(h.buckets) {
		h.buckets[i]++
	}
	h.count++
	h.sum += seconds
	h.mu.Unlock()
}

func (m *Metrics) config(name string) *configMetrics {
	if v, ok := m.configs.Load(name); ok {
		return v.(*configMetrics)
	}
	v, _ := m.configs.LoadOrStore(name, new(configMetrics))
	return v.(*configMetrics)
}

// ObserveExchange counts one HTTP try at a config's token endpoint; it is
// meant as Endpoint.Observe.
func (m *Metrics) ObserveExchange(config string, x Exchange) {
	c := m.config(config)
	if x.DeviceAuthorization {
		// Not a token request: its own counter, out of the token endpoint's latency.
		c.deviceAuths[slices.Index(outcomes[:], ExchangeOutcome(x))].Add(1)
		return
	}
	g := slices.Index(grants[:], x.Grant)
	if g < 0 {
		g = len(grants)
	}
	c.requests[g][slices.Index(outcomes[:], ExchangeOutcome(x))].Add(1)
	if x.Attempt > 1 {
		c.retries.Add(1)
	}
	c.latency.observe(x.Duration.Seconds())
}

// ExchangeOutcome classifies an exchange as one of the outcome labels.
func ExchangeOutcome(x Exchange) string {
	if x.Err == nil {
		return OutcomeSuccess
	}
	if x.Grant == GrantDeviceCode && !x.DeviceAuthorization {
		// The person has not logged in yet: polling as RFC 8628 means it,
		// not a refusal that a refusal-rate alert should see.
		if c := DeviceErrorCode(x.Err); c == DeviceAuthorizationPending || c == DeviceSlowDown {
			return OutcomePending
		}
	}
	var e *IdPError
	if errors.As(x.Err, &e) {
		switch {
		case e.Status == 0 && strings.HasSuffix(e.Detail, "timed out"): // "device authorization: timed out" too
			return OutcomeTimeout
		case IsRefusal(e):
			return OutcomeRefused
		}
	}
	return OutcomeError
}

// CacheHit counts a creds read served from the cache (no IdP request).
func (m *Metrics) CacheHit(config string) { m.CacheHitOn(config, ReadCreds) }

// CacheMiss counts a creds read that fetched, or joined a fetch of, a token.
func (m *Metrics) CacheMiss(config string) { m.CacheMissOn(config, ReadCreds) }

// CacheHitOn counts a read of path served from the cache: in the totals
// and in the path's own series.
func (m *Metrics) CacheHitOn(config string, path ReadPath) {
	c := m.config(config)
	c.cacheHits.Add(1)
	c.reads[path][0].Add(1)
}

// CacheMissOn counts a read of path that fetched, or joined a fetch of, a
// token.
func (m *Metrics) CacheMissOn(config string, path ReadPath) {
	c := m.config(config)
	c.cacheMisses.Add(1)
	c.reads[path][1].Add(1)
}

// Refresh counts a token obtained with a refresh token.
func (m *Metrics) Refresh(config string) { m.config(config).refreshes.Add(1) }

// RefreshFallback counts a refused refresh followed by the role's grant.
func (m *Metrics) RefreshFallback(config string) { m.config(config).refreshFallbacks.Add(1) }

// AuthCodeLogin counts a completed (success=true) or failed browser login
// of the authorization_code flow.
func (m *Metrics) AuthCodeLogin(config string, success bool) {
	i := 1
	if success {
		i = 0
	}
	m.config(config).authCodeLogins[i].Add(1)
}

// SecretFallback counts a client credential refused with invalid_client
// after which the previous one (rotation) was tried: succeeded says whether
// the IdP accepted the previous one.
func (m *Metrics) SecretFallback(config string, succeeded bool) {
	i := 1
	if succeeded {
		i = 0
	}
	m.config(config).secretFallbacks[i].Add(1)
}

// DropConfig forgets a config's series (the config was deleted).
func (m *Metrics) DropConfig(config string) { m.configs.Delete(config) }

// Retain drops the series of every config not in keep (for example, configs
// deleted through another node, or counted by a request still in flight
// when the config was deleted).
func (m *Metrics) Retain(keep []string) {
	m.configs.Range(func(k, _ any) bool {
		if !slices.Contains(keep, k.(string)) {
			m.configs.Delete(k)
		}
		return true
	})
}

// Snapshot is a consistent-enough copy of the metrics (each counter is read
// atomically; the set is not a transaction).
type Snapshot struct {
	Configs      map[string]ConfigSnapshot `json:"configs"`
	CachedTokens int                       `json:"cached_tokens"`
}

// ConfigSnapshot is one config's metrics. Requests is grant -> outcome ->
// count, with zero counts left out.
type ConfigSnapshot struct {
	Requests         map[string]map[string]uint64 `json:"token_requests"`
	CacheHits        uint64                       `json:"cache_hits"`
	CacheMisses      uint64                       `json:"cache_misses"`
	Reads            map[string]map[string]uint64 `json:"reads"` // path (creds, token) -> hit, miss
	Retries          uint64                       `json:"retries"`
	Refreshes        uint64                       `json:"refreshes"`
	RefreshFallbacks uint64                       `json:"refresh_fallbacks"`
	AuthCodeLogins   map[string]uint64            `json:"auth_code_logins"`
	DeviceAuths      map[string]uint64            `json:"device_authorizations"` // outcome -> count
	SecretFallbacks  map[string]uint64            `json:"secret_fallbacks"`
	Latency          HistogramSnapshot            `json:"idp_latency_seconds"`
	PerEntity        map[string]PerEntitySnapshot `json:"per_entity_roles"` // role -> counters
}

// HistogramSnapshot has cumulative buckets keyed by upper bound, as in
// Prometheus.
type HistogramSnapshot struct {
	Count   uint64            `json:"count"`
	Sum     float64           `json:"sum"`
	Buckets map[string]uint64 `json:"buckets"`
}

// Snapshot copies the metrics; cachedTokens is the gauge's current value.
func (m *Metrics) Snapshot(cachedTokens int) Snapshot {
	s := Snapshot{Configs: map[string]ConfigSnapshot{}, CachedTokens: cachedTokens}
	m.configs.Range(func(k, v any) bool {
		s.Configs[k.(string)] = v.(*configMetrics).snapshot()
		return true
	})
	return s
}

func grantLabel(i int) string {
	if i < len(grants) {
		return string(grants[i])
	}
	return "other"
}

func (c *configMetrics) snapshot() ConfigSnapshot {
	s := ConfigSnapshot{
		Requests:         map[string]map[string]uint64{},
		CacheHits:        c.cacheHits.Load(),
		CacheMisses:      c.cacheMisses.Load(),
		Reads:            map[string]map[string]uint64{},
		Retries:          c.retries.Load(),
		Refreshes:        c.refreshes.Load(),
		RefreshFallbacks: c.refreshFallbacks.Load(),
		AuthCodeLogins:   map[string]uint64{"success": c.authCodeLogins[0].Load(), "failure": c.authCodeLogins[1].Load()},
		SecretFallbacks:  map[string]uint64{"success": c.secretFallbacks[0].Load(), "failure": c.secretFallbacks[1].Load()},
		DeviceAuths:      map[string]uint64{},
		PerEntity:        c.perEntity.snapshot(),
	}
	for o, name := range outcomes {
		s.DeviceAuths[name] = c.deviceAuths[o].Load()
	}
	for p, name := range readPaths {
		s.Reads[name] = map[string]uint64{"hit": c.reads[p][0].Load(), "miss": c.reads[p][1].Load()}
	}
	for g := range c.requests {
		for o := range c.requests[g] {
			if n := c.requests[g][o].Load(); n > 0 {
				if s.Requests[grantLabel(g)] == nil {
					s.Requests[grantLabel(g)] = map[string]uint64{}
				}
				s.Requests[grantLabel(g)][outcomes[o]] = n
			}
		}
	}
	c.latency.mu.Lock()
	s.Latency = HistogramSnapshot{Count: c.latency.count, Sum: c.latency.sum, Buckets: map[string]uint64{}}
	var cum uint64
	for i, le := range LatencyBuckets {
		cum += c.latency.buckets[i]
		s.Latency.Buckets[formatFloat(le)] = cum
	}
	c.latency.mu.Unlock()
	s.Latency.Buckets["+Inf"] = s.Latency.Count
	return s
}

// PrometheusContentType is the text exposition format's media type.
const PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

// MetricPrefix starts every metric name.
const MetricPrefix = "vault_idp_tokens_"

// WritePrometheus writes the snapshot in the Prometheus text exposition
// format, version 0.0.4. Series are sorted by config for stable output.
func (s Snapshot) WritePrometheus(w io.Writer) error {
	names := make([]string, 0, len(s.Configs))
	for n := range s.Configs {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	family := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s%s %s\n# TYPE %s%s %s\n", MetricPrefix, name, help, MetricPrefix, name, typ)
	}
	perConfig := func(name, typ, help string, value func(ConfigSnapshot) uint64) {
		family(name, typ, help)
		for _, n := range names {
			fmt.Fprintf(&b, "%s%s{config=\"%s\"} %d\n", MetricPrefix, name, escapeLabel(n), value(s.Configs[n]))
		}
	}

	family("token_requests_total", "counter", "HTTP requests to the IdP token endpoint, by config, grant and outcome (success, refused, error, timeout).")
	for _, n := range names {
		c := s.Configs[n]
		for g := range len(grants) + 1 {
			for _, o := range outcomes {
				v := c.Requests[grantLabel(g)][o]
				// Every outcome of a grant that was used, so rates start at 0.
				if c.Requests[grantLabel(g)] == nil {
					continue
				}
				fmt.Fprintf(&b, "%stoken_requests_total{config=\"%s\",grant=\"%s\",outcome=\"%s\"} %d\n",
					MetricPrefix, escapeLabel(n), grantLabel(g), o, v)
			}
		}
	}
	perConfig("cache_hits_total", "counter", "Creds reads served from the token cache, by config.", func(c ConfigSnapshot) uint64 { return c.CacheHits })
	perConfig("cache_misses_total", "counter", "Creds reads that fetched or waited for a new token, by config.", func(c ConfigSnapshot) uint64 { return c.CacheMisses })
	family("reads_total", "counter", "Reads served from the token cache (result hit) or not (miss), by config and path (creds: leased, token: unleased).")
	for _, n := range names {
		for _, p := range readPaths {
			for _, r := range []string{"hit", "miss"} {
				fmt.Fprintf(&b, "%sreads_total{config=\"%s\",path=\"%s\",result=\"%s\"} %d\n", MetricPrefix, escapeLabel(n), p, r, s.Configs[n].Reads[p][r])
			}
		}
	}
	perConfig("retries_total", "counter", "Token requests that were retries of a failed try, by config.", func(c ConfigSnapshot) uint64 { return c.Retries })
	perConfig("refreshes_total", "counter", "Tokens obtained with a refresh token, by config.", func(c ConfigSnapshot) uint64 { return c.Refreshes })
	perConfig("refresh_fallbacks_total", "counter", "Refused refreshes followed by the role's own grant, by config.", func(c ConfigSnapshot) uint64 { return c.RefreshFallbacks })

	family("auth_code_logins_total", "counter", "Browser logins of the authorization_code flow, by config and outcome.")
	for _, n := range names {
		for _, o := range []string{"success", "failure"} {
			fmt.Fprintf(&b, "%sauth_code_logins_total{config=\"%s\",outcome=\"%s\"} %d\n", MetricPrefix, escapeLabel(n), o, s.Configs[n].AuthCodeLogins[o])
		}
	}

	family("device_authorizations_total", "counter", "HTTP requests to the IdP's device authorization endpoint (RFC 8628), by config and outcome.")
	for _, n := range names {
		for _, o := range outcomes {
			fmt.Fprintf(&b, "%sdevice_authorizations_total{config=\"%s\",outcome=\"%s\"} %d\n", MetricPrefix, escapeLabel(n), o, s.Configs[n].DeviceAuths[o])
		}
	}

	family("secret_fallbacks_total", "counter", "Client credentials refused with invalid_client after which the previous one (rotation) was tried, by config and outcome of that try.")
	for _, n := range names {
		for _, o := range []string{"success", "failure"} {
			fmt.Fprintf(&b, "%ssecret_fallbacks_total{config=\"%s\",outcome=\"%s\"} %d\n", MetricPrefix, escapeLabel(n), o, s.Configs[n].SecretFallbacks[o])
		}
	}

	family("idp_request_duration_seconds", "histogram", "Duration of HTTP requests to the IdP token endpoint, by config.")
	for _, n := range names {
		h := s.Configs[n].Latency
		for _, le := range LatencyBuckets {
			fmt.Fprintf(&b, "%sidp_request_duration_seconds_bucket{config=\"%s\",le=\"%s\"} %d\n", MetricPrefix, escapeLabel(n), formatFloat(le), h.Buckets[formatFloat(le)])
		}
		fmt.Fprintf(&b, "%sidp_request_duration_seconds_bucket{config=\"%s\",le=\"+Inf\"} %d\n", MetricPrefix, escapeLabel(n), h.Count)
		fmt.Fprintf(&b, "%sidp_request_duration_seconds_sum{config=\"%s\"} %s\n", MetricPrefix, escapeLabel(n), formatFloat(h.Sum))
		fmt.Fprintf(&b, "%sidp_request_duration_seconds_count{config=\"%s\"} %d\n", MetricPrefix, escapeLabel(n), h.Count)
	}

	writePerEntity(&b, s.Configs, names)

	family("cached_tokens", "gauge", "Tokens held in the plugin's memory cache.")
	fmt.Fprintf(&b, "%scached_tokens %d\n", MetricPrefix, s.CachedTokens)
	_, err := io.WriteString(w, b.String())
	return err
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
