// Command bench measures the engine inside a real Vault (`make bench`): a
// dev server on loopback with this plugin and a floor plugin (a constant
// leased secret, bench/floorplugin) side by side, against an in-process fake
// IdP. It reports cache-hit latency and throughput against the floor and a
// KV v2 read, cold-read overhead against a direct POST to the IdP, the
// thundering herd, and memory and storage per cached token at scale, prints
// a table and writes it into docs/benchmarks.md.
//
// It is a program, not a timed test: it is run on purpose, takes a couple
// of minutes, and its numbers depend on the machine.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/promtext"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

const (
	pluginName = "vault-plugin-idp-tokens"
	floorName  = "vault-plugin-floor"
	clientID   = "bench-client"
	secret     = "bench-secret"
)

type options struct {
	n       int
	rounds  int
	conc    []int
	cold    int
	herd    []int
	roles   int
	raftN   int
	expire  int
	restart int
	expTTL  time.Duration
	// Vault Agent templates on creds and token: lives of a token of life.
	agentLives int
	agentLife  time.Duration
	noRaft     bool
	out        string
	logPath    string

	// the per-person stage (entities.go)
	entities  int
	entityTTL time.Duration
}

func main() {
	var o options
	var conc, herd string
	flag.IntVar(&o.n, "n", 6000, "requests per cell (target x concurrency)")
	flag.IntVar(&o.rounds, "rounds", 6, "interleaved rounds each cell is split into")
	flag.StringVar(&conc, "clients", "1,8,64", "concurrent HTTP clients, comma-separated")
	flag.IntVar(&o.cold, "cold", 40, "cold reads (and direct IdP calls)")
	flag.StringVar(&herd, "herd", "1,10,100,1000", "herd sizes: concurrent cold reads")
	flag.IntVar(&o.roles, "roles", 10000, "roles with cached tokens for the scale test")
	flag.IntVar(&o.raftN, "raft-n", 3000, "requests per cell on the raft Vault (leased reads are raft writes: slower)")
	flag.IntVar(&o.expire, "expire", 20000, "leases made to expire together on the raft Vault")
	flag.DurationVar(&o.expTTL, "expire-ttl", 45*time.Second, "lease of the expiry stage's reads (long enough to make them all before the first expires)")
	flag.IntVar(&o.restart, "restart", 10000, "configs and roles (each) in storage for the raft restart")
	flag.IntVar(&o.agentLives, "agent-lives", 3, "token lives each Vault Agent template runs for on the raft Vault (0 skips the stage)")
	flag.DurationVar(&o.agentLife, "agent-life", 20*time.Second, "lifetime of the tokens the Vault Agent templates render")
	flag.BoolVar(&o.noRaft, "no-raft", false, "skip the raft Vault")
	flag.IntVar(&o.entities, "entities", 10000, "people, each with a token of their own under one per_entity role (0 skips the stage)")
	flag.DurationVar(&o.entityTTL, "entity-ttl", 5*time.Minute, "life of the dev Vault's people's tokens: they must outlast its reads, then expire for the sweep")
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "markdown file whose results section is replaced (empty: print only)")
	flag.Parse()
	var err error
	if o.conc, err = ints(conc); err == nil {
		o.herd, err = ints(herd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the repository (no go.mod found)")
		}
		dir = parent
	}
}

// env is everything the stages share.
type env struct {
	o     options
	srv   *vaultproc.Server
	v     *vaultHTTP
	dev   *vaultTarget
	raft  *vaultTarget
	tmp   string
	vault string // the Vault binary
	idp   *fakeidp.Server
	idpTS *httptest.Server
	rep   *report
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...) }

func run(ctx context.Context, o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	raiseNoFile()
	tmp, err := os.MkdirTemp("", "idp-tokens-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pluginDir := filepath.Join(tmp, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return err
	}
	logf("building the plugin and the floor plugin")
	shaIdP, err := vaultproc.BuildPlugin(root, "./cmd/"+pluginName, pluginDir, pluginName)
	if err != nil {
		return err
	}
	shaFloor, err := vaultproc.BuildPlugin(root, "./bench/floorplugin", pluginDir, floorName)
	if err != nil {
		return err
	}
	vaultBin, err := vaultproc.FindVault(root)
	if err != nil {
		return err
	}
	logf("starting vault server -dev (%s)", vaultBin)
	if err := os.MkdirAll(filepath.Join(tmp, "vault"), 0o700); err != nil {
		return err
	}
	srv, err := vaultproc.StartDev(ctx, vaultproc.Options{
		VaultBin: vaultBin, PluginDir: pluginDir, Dir: filepath.Join(tmp, "vault"),
		// sys/raw lets the benchmark read the stored size of a token entry.
		ExtraConfig: "raw_storage_endpoint = true",
	})
	if err != nil {
		return err
	}
	defer srv.Stop()
	go func() { <-ctx.Done(); srv.Stop() }()

	if err := srv.RegisterPlugin(pluginName, shaIdP); err != nil {
		return err
	}
	if err := srv.RegisterPlugin(floorName, shaFloor); err != nil {
		return err
	}
	if err := srv.Mount("idp", pluginName); err != nil {
		return err
	}
	if err := srv.Mount("floor", floorName); err != nil {
		return err
	}

	e := &env{o: o, srv: srv, rep: newReport(), tmp: tmp, vault: vaultBin}
	e.idp = fakeidp.New(fakeidp.Options{ClientID: clientID, ClientSecret: secret, Scopes: []string{"read", "write"}})
	e.idpTS = httptest.NewServer(e.idp)
	defer e.idpTS.Close()
	e.v = newVaultHTTP(srv.Addr, srv.Token, 2*max(slicesMax(o.herd), slicesMax(o.conc)))
	e.dev = &vaultTarget{label: "dev", srv: srv, v: e.v}
	if err := e.setupTarget(e.dev); err != nil {
		return err
	}
	if !o.noRaft {
		logf("starting a single-node raft vault")
		rs, err := vaultproc.StartRaft(ctx, vaultproc.Options{VaultBin: vaultBin, PluginDir: pluginDir, Dir: filepath.Join(tmp, "raft"), HealthTimeout: 90 * time.Second})
		if err != nil {
			return err
		}
		defer rs.Stop()
		go func() { <-ctx.Done(); rs.Stop() }()
		for _, p := range []struct{ name, sha string }{{pluginName, shaIdP}, {floorName, shaFloor}} {
			if err := rs.RegisterPlugin(p.name, p.sha); err != nil {
				return err
			}
		}
		for _, m := range []struct{ path, typ string }{{"idp", pluginName}, {"floor", floorName}} {
			if err := rs.Mount(m.path, m.typ); err != nil {
				return err
			}
		}
		if err := rs.Client.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return err
		}
		e.raft = &vaultTarget{label: "raft", srv: rs.Server, raft: rs, v: newVaultHTTP(rs.Addr, rs.Token, 2*max(slicesMax(o.conc), 64))}
		if err := e.setupTarget(e.raft); err != nil {
			return err
		}
	}
	if err := e.describeMachine(vaultBin); err != nil {
		return err
	}
	stages := []struct {
		name string
		f    func() error
	}{
		{"cache-hit reads vs floor vs KV (dev)", func() error { return e.hotOn(e.dev, o.n) }},
		{"cold reads vs direct IdP POST", e.coldReads},
		{"scale", e.scale},
		{"thundering herd", e.herdReads},
		{"metrics path through Vault", e.metricsCheck},
		{"storage calls at a restart (in-process)", e.startupCalls},
	}
	if e.raft != nil {
		stages = append(stages, []struct {
			name string
			f    func() error
		}{
			{"cache-hit reads vs floor vs KV (raft)", func() error { return e.hotOn(e.raft, o.raftN) }},
			{"live leases and raft writes per 1,000 reads (raft)", e.leaseCost},
			{"Vault Agent templates on creds and token (raft)", func() error {
				if o.agentLives < 1 {
					return nil
				}
				return e.agentRenders()
			}},
			{"many leases expiring (raft)", e.expiry},
			{"restart with configs and roles in storage (raft)", e.restartRaft},
		}...)
	}
	stages = append(stages, e.entityStages()...)
	for _, s := range stages {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logf("stage: %s", s.name)
		t0 := time.Now()
		if err := s.f(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		logf("stage %s took %s", s.name, time.Since(t0).Round(time.Millisecond))
	}
	text := e.rep.markdown()
	fmt.Println(text)
	if o.out != "" {
		return writeResults(filepath.Join(root, o.out), text)
	}
	return nil
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// raiseNoFile lifts the open-file limit to its hard maximum: the herd opens
// a connection per reader, and Vault (our child) inherits the limit.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func (e *env) describeMachine(vaultBin string) error {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	var health struct {
		Version string `json:"version"`
	}
	b, err := e.v.get("sys/health")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &health); err != nil {
		return err
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			e.rep.load = fmt.Sprintf("Load average when the run began: %s %s %s (the machine is shared with other jobs; compare ratios within this run, not absolute numbers across runs).", f[0], f[1], f[2])
		}
	}
	e.rep.machine = fmt.Sprintf("%s, %d logical CPUs, %s/%s; Go %s; Vault %s (%s)",
		cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, strings.TrimPrefix(runtime.Version(), "go"), health.Version, filepath.Base(vaultBin))
	return nil
}

// flipScopes rewrites a role's scopes between "read" and "read write": the
// fingerprint changes, so the role write drops the cached token (memory and
// storage) and the next read must fetch. The write is not timed.
func (e *env) flipScopes(role string, i int) error {
	scopes := "read"
	if i%2 == 1 {
		scopes = "read,write"
	}
	return e.v.write("idp/roles/"+role, map[string]any{"config": "c", "scopes": scopes})
}

// coldReads times a creds read that must fetch a token against the same
// client_credentials POST made directly to the same fake IdP over a
// keep-alive connection, interleaved.
func (e *env) coldReads() error {
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	form := url.Values{"grant_type": {"client_credentials"}}
	post := func(scope string) (time.Duration, error) {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set("scope", scope)
		req, _ := http.NewRequest(http.MethodPost, e.idpTS.URL+e.idp.TokenPath(), strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
		t0 := time.Now()
		resp, err := direct.Do(req)
		if err != nil {
			return 0, err
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("direct POST: HTTP %d %s", resp.StatusCode, buf.String())
		}
		return d, nil
	}
	if _, err := post("read"); err != nil { // warm the direct connection
		return err
	}
	var coldLat, directLat, floorLat []time.Duration
	for i := range e.o.cold {
		if err := e.flipScopes("cold", i+1); err != nil {
			return err
		}
		before := e.idp.TokenRequests()
		t0 := time.Now()
		if _, err := e.v.get("idp/creds/cold"); err != nil {
			return err
		}
		coldLat = append(coldLat, time.Since(t0))
		if e.idp.TokenRequests() != before+1 {
			return fmt.Errorf("a cold read made %d IdP requests, want 1", e.idp.TokenRequests()-before)
		}
		d, err := post("read")
		if err != nil {
			return err
		}
		directLat = append(directLat, d)
		t0 = time.Now()
		if _, err := e.v.get("floor/creds/cold"); err != nil {
			return err
		}
		floorLat = append(floorLat, time.Since(t0))
	}
	e.rep.cold = coldRow{n: e.o.cold, cold: coldLat, direct: directLat, floor: floorLat}
	return nil
}

// herdReads: N readers of a role whose token was just dropped, released at
// once, with the IdP answering after 100 ms so that they overlap the fetch.
func (e *env) herdReads() error {
	e.idp.SetDelay(100 * time.Millisecond)
	defer e.idp.SetDelay(0)
	for k, n := range e.o.herd {
		if err := e.flipScopes("herd", k+1); err != nil {
			return err
		}
		// Open the connections first, so the herd measures Vault, not dials.
		if s := load(e.v, n, n, func(int) string { return "sys/health" }); s.err != nil {
			return s.err
		}
		missesBefore, err := e.cacheMisses()
		if err != nil {
			return err
		}
		before := e.idp.TokenRequests()
		start := make(chan struct{})
		lat := make([]time.Duration, n)
		tokens := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				t0 := time.Now()
				b, err := e.v.get("idp/creds/herd")
				lat[i] = time.Since(t0)
				if err != nil {
					errs[i] = err
					return
				}
				var s struct {
					Data struct {
						AccessToken string `json:"access_token"`
					} `json:"data"`
				}
				errs[i] = json.Unmarshal(b, &s)
				tokens[i] = s.Data.AccessToken
			}()
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		distinct := map[string]bool{}
		for _, t := range tokens {
			distinct[t] = true
		}
		missesAfter, err := e.cacheMisses()
		if err != nil {
			return err
		}
		e.rep.herd = append(e.rep.herd, herdRow{
			n: n, idpRequests: e.idp.TokenRequests() - before, distinct: len(distinct),
			joined: int(missesAfter - missesBefore), p50: quantile(lat, 0.5), max: quantile(lat, 1),
		})
	}
	return nil
}

func (e *env) cacheMisses() (uint64, error) {
	var m struct {
		Configs map[string]backend.ConfigSnapshot `json:"configs"`
	}
	if err := e.v.getData("idp/metrics", &m); err != nil {
		return 0, err
	}
	return m.Configs["c"].CacheMisses, nil
}

// metricsCheck reads idp/metrics?format=prometheus through Vault's HTTP
// API (a raw response crossing the plugin's gRPC boundary) and parses it.
func (e *env) metricsCheck() error {
	req, _ := http.NewRequest(http.MethodGet, e.srv.Addr+"/v1/idp/metrics?format=prometheus", nil)
	req.Header.Set("X-Vault-Token", e.srv.Token)
	resp, err := e.v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		return fmt.Errorf("HTTP %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), buf.String())
	}
	fams, err := promtext.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return err
	}
	hits, _ := promtext.Value(fams, backend.MetricPrefix+"cache_hits_total", map[string]string{"config": "c"})
	e.rep.metricsNote = fmt.Sprintf("idp/metrics?format=prometheus through Vault: HTTP 200, %s, %d families, %d bytes, parsed strictly; cache_hits_total{config=\"c\"} = %.0f",
		resp.Header.Get("Content-Type"), len(fams), buf.Len(), hits)
	return nil
}

// scale: many roles, each with a cached token; read latency across them,
// stored bytes per token, and the plugin's resident memory per token.
func (e *env) scale() error {
	pids, err := e.srv.PluginPIDs(pluginName)
	if err != nil || len(pids) != 1 {
		return fmt.Errorf("want one %s process, found %v (%v)", pluginName, pids, err)
	}
	pid := pids[0]
	time.Sleep(3 * time.Second) // let the plugin's GC and scavenger settle
	rssBefore, err := vaultproc.RSS(pid)
	if err != nil {
		return err
	}
	name := func(i int) string { return fmt.Sprintf("s%05d", i) }
	before := e.idp.TokenRequests()
	t0 := time.Now()
	if err := parallel(32, e.o.roles, func(i int) error {
		if err := e.v.write("idp/roles/"+name(i), map[string]any{"config": "c", "scopes": "read"}); err != nil {
			return err
		}
		_, err := e.v.get("idp/creds/" + name(i))
		return err
	}); err != nil {
		return err
	}
	setup := time.Since(t0)
	if n := e.idp.TokenRequests() - before; n != e.o.roles {
		return fmt.Errorf("%d IdP requests for %d new roles", n, e.o.roles)
	}
	time.Sleep(3 * time.Second)
	rssAfter, err := vaultproc.RSS(pid)
	if err != nil {
		return err
	}
	// Reads spread over all roles: every one a cache hit.
	before = e.idp.TokenRequests()
	s := load(e.v, 8, e.o.n, func(i int) string { return "idp/creds/" + name((i*7919)%e.o.roles) })
	if s.err != nil {
		return s.err
	}
	if e.idp.TokenRequests() != before {
		return fmt.Errorf("reads of cached roles made %d IdP requests", e.idp.TokenRequests()-before)
	}
	floor := load(e.v, 8, e.o.n, func(i int) string { return "floor/creds/" + name(i%e.o.roles) })
	if floor.err != nil {
		return floor.err
	}
	// Stored size: the decrypted entries through sys/raw, sampled.
	var mount struct {
		UUID string `json:"uuid"`
	}
	if err := e.v.getData("sys/mounts/idp", &mount); err != nil {
		return err
	}
	var tokBytes, roleBytes, sampled int
	for i := 0; i < e.o.roles; i += max(1, e.o.roles/200) {
		var raw struct {
			Value string `json:"value"`
		}
		if err := e.v.getData(fmt.Sprintf("sys/raw/logical/%s/tokens/role/%s", mount.UUID, name(i)), &raw); err != nil {
			return err
		}
		tokBytes += len(raw.Value)
		if err := e.v.getData(fmt.Sprintf("sys/raw/logical/%s/roles/%s", mount.UUID, name(i)), &raw); err != nil {
			return err
		}
		roleBytes += len(raw.Value)
		sampled++
	}
	e.rep.scale = scaleRow{
		roles: e.o.roles, setup: setup, reads: s.stats(), floor: floor.stats(),
		tokenBytes: float64(tokBytes) / float64(sampled), roleBytes: float64(roleBytes) / float64(sampled),
		rssBefore: rssBefore, rssAfter: rssAfter,
	}
	return nil
}

// parallel runs f(0..n-1) on conc goroutines and returns the first error.
func parallel(conc, n int, f func(i int) error) error {
	var mu sync.Mutex
	var first error
	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
