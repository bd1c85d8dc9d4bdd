//go:build integration

package integration

import (
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Load test parameters. IDP_TOKENS_LOAD_SECONDS changes the length of each
// phase (default 30; the two phases then take about 65 s with setup).
const (
	loadReaders  = 200
	loadTokenTTL = 10 * time.Second
)

// loadNeed is the remaining life below which the engine fetches a new token
// for a role without min_ttl: the token's margin (at most half its
// lifetime), 2 s for a 10 s token.
var loadNeed = min(backend.Margin(loadTokenTTL), loadTokenTTL/2)

func loadDuration(t *testing.T) time.Duration {
	if s := os.Getenv("IDP_TOKENS_LOAD_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("IDP_TOKENS_LOAD_SECONDS=%q is not a positive number", s)
		}
		return time.Duration(n) * time.Second
	}
	return 30 * time.Second
}

// TestLoadConcurrentReaders: 200 concurrent readers of one role for 30 s
// through the real Vault server's HTTP API, with a 10 s IdP token so that
// several token lifetimes pass. Readers see no error and the IdP sees one
// request per lifetime; then the same with the IdP failing every second
// request (503), where retries keep readers error-free.
func TestLoadConcurrentReaders(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	d := loadDuration(t)
	v := StartDevVault(t)

	t.Run("steady IdP", func(t *testing.T) {
		runLoadPhase(t, v.For(t), "steady", d, 0)
	})
	t.Run("IdP failing every 2nd request", func(t *testing.T) {
		runLoadPhase(t, v.For(t), "flaky", d, 2)
	})
}

func runLoadPhase(t *testing.T, v *Vault, name string, d time.Duration, failEvery int) {
	idp := StartFakeIdP(t, fakeidp.Options{
		Style: fakeidp.StyleOAuth2, ClientID: "load-" + name, ClientSecret: "load-secret-" + name,
		Scopes: []string{"read"}, TokenTTL: loadTokenTTL,
	})
	v.Write("idp/config/"+name, "token_url="+idp.TokenURL(), "client_id=load-"+name,
		"client_secret=load-secret-"+name, "scopes=read")
	v.Write("idp/roles/"+name, "config="+name)
	if failEvery > 0 {
		idp.SetFailEvery(failEvery, http.StatusServiceUnavailable)
	}

	reader := newCredsReader(v.Token, loadReaders)
	defer reader.close()
	var (
		ok, failed atomic.Int64
		mu         sync.Mutex
		firstErrs  []string
		tokens     = map[string]bool{}
		latencies  []time.Duration
		wg         sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; i < loadReaders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[string]bool{}
			var lat []time.Duration
			for time.Now().Before(deadline) {
				began := time.Now()
				tok, err := reader.read(v.Addr, name)
				lat = append(lat, time.Since(began))
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, err.Error())
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
				seen[tok] = true
			}
			mu.Lock()
			latencies = append(latencies, lat...)
			for tok := range seen {
				tokens[tok] = true
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	reqs := idp.Requests()
	// A fetch is one token handed out: the distinct tokens readers saw.
	total := ok.Load() + failed.Load()
	rps := float64(total) / elapsed.Seconds()
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))].Round(100 * time.Microsecond)
	}
	t.Logf("%s: %d readers for %s: %d requests (%.0f/s), %d errors, %d IdP requests, %d distinct tokens; latency p50 %s p99 %s max %s",
		name, loadReaders, elapsed.Round(time.Millisecond), total, rps, failed.Load(), len(reqs), len(tokens), pct(0.5), pct(0.99), pct(1))
	if failed.Load() > 0 {
		t.Errorf("%d of %d reads failed, want none; first errors: %q", failed.Load(), total, firstErrs)
	}

	// Tokens are fetched when the cached one has less than loadNeed left:
	// every (TTL - need), plus the first. The +1 allows for the boundary.
	window := loadTokenTTL - loadNeed
	lifetimes := int(math.Ceil(elapsed.Seconds() / window.Seconds()))
	fetches := len(tokens)
	if fetches > lifetimes+1 || fetches < lifetimes-1 {
		t.Errorf("%d tokens were minted in %s, want %d ±1 (one per %s window)", fetches, elapsed.Round(time.Second), lifetimes, window)
	}
	// Group the IdP's requests into fetches: a retry follows its failed try
	// within the retry policy's bound (< 5 s); fetches are a window apart.
	var successes []time.Time
	for i, r := range reqs {
		if i == 0 {
			successes = append(successes, r.Time)
			continue
		}
		if r.Time.Sub(successes[len(successes)-1]) >= window/2 {
			successes = append(successes, r.Time)
		}
	}
	for i := 1; i < len(successes); i++ {
		if gap := successes[i].Sub(successes[i-1]); gap < window-time.Second {
			t.Errorf("token fetches %d and %d were %s apart, want at least %s (one per token lifetime)", i-1, i, gap, window-time.Second)
		}
	}
	if len(successes) != fetches {
		t.Errorf("the IdP's requests group into %d fetches, but %d distinct tokens were served", len(successes), fetches)
	}
	wantRequests := fetches
	if failEvery == 2 {
		// Every fetch's first try after a success is the 2nd, 4th... request:
		// it fails and its retry succeeds, except for the very first fetch.
		wantRequests = 2*fetches - 1
	}
	if len(reqs) != wantRequests {
		t.Errorf("the IdP saw %d requests for %d fetches, want %d", len(reqs), fetches, wantRequests)
	}
}
