//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

// proxyRead is what one app saw on one read through Vault Proxy.
type proxyRead struct {
	at            time.Time
	token         string
	leaseID       string
	leaseDuration int
	age           int    // the Age header Proxy adds to a cached answer
	cache         string // X-Cache: HIT or MISS
	validAtRead   bool   // the IdP accepted the token right after the read
}

// startProxy runs `vault <command>` (proxy, or agent for Agent's API proxy:
// both take this config) against v with AppRole auto-auth, the lease cache,
// and use_auto_auth_token, so apps send no Vault token. It returns the
// listener's address.
func startProxy(t *testing.T, v *Vault, command, policy string) string {
	t.Helper()
	v.Run("auth", "enable", "approle")
	if r := v.CLIAs(v.Token, policy, "policy", "write", "proxy", "-"); r.Err != nil {
		t.Fatalf("policy write: %v %s", r.Err, r.Stderr)
	}
	v.Write("auth/approle/role/proxy", "token_policies=proxy", "token_ttl=1h", "token_max_ttl=2h")
	var roleID, secretID struct {
		Data map[string]any `json:"data"`
	}
	v.JSON(&roleID, "read", "auth/approle/role/proxy/role-id")
	v.JSON(&secretID, "write", "-f", "auth/approle/role/proxy/secret-id")
	dir := t.TempDir()
	port := freePort(t)
	conf, err := vaultproc.WriteProxyConfig(dir, v.Addr, roleID.Data["role_id"].(string), secretID.Data["secret_id"].(string), port)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "vault "+command, filepath.Join(dir, command+".log"), append(v.cliEnv(""), "VAULT_LOG_LEVEL=debug"), vaultBin, command, "-config="+conf)
	addr := fmt.Sprintf("http://127.0.0.1:%d", port)
	if !eventually(30*time.Second, 200*time.Millisecond, func() bool {
		resp, err := http.Get(addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil || p.Exited()
	}) || p.Exited() {
		t.Fatalf("vault %s did not start (exited: %v)", command, p.Exited())
	}
	return addr
}

// readThroughProxy GETs path through Proxy with no Vault token.
func readThroughProxy(client *http.Client, addr, path string) (proxyRead, error) {
	resp, err := client.Get(addr + "/v1/" + path)
	if err != nil {
		return proxyRead{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return proxyRead{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	var s struct {
		LeaseID       string `json:"lease_id"`
		LeaseDuration int    `json:"lease_duration"`
		Data          struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return proxyRead{}, err
	}
	age, _ := strconv.Atoi(resp.Header.Get("Age"))
	return proxyRead{at: time.Now(), token: s.Data.AccessToken, leaseID: s.LeaseID, leaseDuration: s.LeaseDuration,
		age: age, cache: resp.Header.Get("X-Cache")}, nil
}

// TestProxyOneLeasePerTokenLife: a single-node raft Vault, Vault Proxy with
// AppRole auto-auth and the lease cache, and N apps reading idp/creds/<role>
// through Proxy several times a second for about three token lifetimes.
// With renewable_leases the role's lease is cached by Proxy: the engine is
// called, and Vault registers a lease, about once per token life however
// many reads the apps make; every app gets the new token when the old one
// nears its end and never a token the IdP no longer accepts. It also
// records what Vault v1.21.0's Proxy says as lease_duration on a cached
// answer: the first answer's value, replayed, with an Age header. Vault
// Agent's API proxy (the same lease cache, in `vault agent`) is held to the
// same.
func TestProxyOneLeasePerTokenLife(t *testing.T) {
	if testing.Short() {
		t.Skip("Proxy test skipped in -short mode")
	}
	t.Parallel()
	for _, command := range []string{"proxy", "agent"} {
		t.Run(command, func(t *testing.T) {
			t.Parallel()
			oneLeasePerTokenLife(t, command)
		})
	}
}

func oneLeasePerTokenLife(t *testing.T, command string) {
	const ttl = 20 * time.Second
	v := startRaftCluster(t, 1)[0].Vault
	v.RegisterAndMount()
	idp := StartFakeIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "px-client", ClientSecret: "px-secret",
		Scopes: []string{"read"}, TokenTTL: ttl})
	v.Write("idp/config/px", "token_url="+idp.TokenURL(), "client_id=px-client", "client_secret=px-secret", "scopes=read")
	// min_ttl 10 s (half the lifetime): Proxy drops its entry when 10-20 %
	// of the lease is left, and the read that follows then gets a new token.
	v.Write("idp/roles/app", "config=px", "renewable_leases=true", "min_ttl=10s")
	v.Write("idp/roles/plain", "config=px")
	addr := startProxy(t, v, command, `path "idp/creds/*" { capabilities = ["read"] }`)

	// Without renewable_leases Proxy passes every read through (v1.21.0's
	// lease_cache.go: "pass-through response; secret not renewable").
	client := &http.Client{Timeout: 20 * time.Second}
	for range 20 {
		if r, err := readThroughProxy(client, addr, "idp/creds/plain"); err != nil || r.cache == "HIT" {
			t.Fatalf("non-renewable read through Proxy: %v, X-Cache %q", err, r.cache)
		}
	}
	if v.engineCredsReads("px") != 20 {
		t.Fatalf("20 non-renewable reads through Proxy made %d engine reads, want 20", v.engineCredsReads("px"))
	}
	plainBefore := v.engineCredsReads("px")
	tokensBefore := idp.TokenRequests()

	const apps, every, runFor = 4, 250 * time.Millisecond, 3 * ttl
	seen := make([][]proxyRead, apps)
	errs := make([]error, apps)
	var wg sync.WaitGroup
	stop := time.Now().Add(runFor)
	for i := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 20 * time.Second}
			for time.Now().Before(stop) {
				r, err := readThroughProxy(client, addr, "idp/creds/app")
				if err != nil {
					errs[i] = err
					return
				}
				r.validAtRead = idp.Valid(r.token)
				seen[i] = append(seen[i], r)
				time.Sleep(every)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("app %d: %v", i, err)
		}
	}

	reads, hits := 0, 0
	distinct, leases := map[string]bool{}, map[string]bool{}
	firstDuration := map[string]int{} // lease -> lease_duration of its first (MISS) answer
	var replayed, worstOverstate int
	for i, rs := range seen {
		tokens := map[string]bool{}
		for _, r := range rs {
			reads++
			tokens[r.token], distinct[r.token], leases[r.leaseID] = true, true, true
			if !r.validAtRead {
				t.Errorf("app %d got a token the IdP no longer accepts at %s", i, r.at.Format(time.TimeOnly))
			}
			if r.cache == "HIT" {
				hits++
			}
			if d, ok := firstDuration[r.leaseID]; !ok {
				firstDuration[r.leaseID] = r.leaseDuration
			} else if r.cache == "HIT" && r.age > 0 && r.leaseDuration == d {
				replayed++
			}
			exp, _ := idp.ExpiresAt(r.token)
			trueLeft := int(exp.Sub(r.at).Seconds())
			worstOverstate = max(worstOverstate, r.leaseDuration-trueLeft)
			// What is true: lease_duration less Age is within the token's life.
			if r.leaseDuration-r.age > trueLeft+1 {
				t.Errorf("app %d: lease_duration %d - Age %d = %d s, but the token had %d s left", i, r.leaseDuration, r.age, r.leaseDuration-r.age, trueLeft)
			}
		}
		if len(tokens) < 3 {
			t.Errorf("app %d saw %d tokens over %s of %s tokens, want a new one each life", i, len(tokens), runFor, ttl)
		}
	}
	engine := v.engineCredsReads("px") - plainBefore
	t.Logf("vault %s: %d app reads through it (%d answered from its cache): %d engine reads, %d leases, %d tokens, %d IdP requests; "+
		"%d cached answers replayed the first answer's lease_duration, overstating the token's remaining life by up to %d s (Age says by how much)",
		command, reads, hits, engine, len(leases), len(distinct), idp.TokenRequests()-tokensBefore, replayed, worstOverstate)
	if n := idp.TokenRequests() - tokensBefore; n != len(distinct) {
		t.Errorf("IdP saw %d token requests for %d tokens", n, len(distinct))
	}
	if engine > len(distinct)+1 || len(leases) > len(distinct)+1 {
		t.Errorf("%d engine reads and %d leases for %d token lives, want one each per life", engine, len(leases), len(distinct))
	}
	if hits < reads*9/10 {
		t.Errorf("Proxy answered %d of %d reads from its cache, want nearly all", hits, reads)
	}
	if replayed == 0 {
		t.Error("no cached answer replayed the first lease_duration: Vault Proxy's behaviour changed; revisit the Proxy note of docs/leases.md")
	}
}

// engineCredsReads is how many creds reads of config the engine served
// (cache hits and misses, from idp/metrics).
func (v *Vault) engineCredsReads(config string) int {
	v.t.Helper()
	return v.engineReads(config, "creds")
}
