//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

// startAgentConfig starts an OAuth2 fake IdP of ttl tokens and writes the
// config "agent" of it, which the Agent tests' roles name.
func startAgentConfig(t *testing.T, v *Vault, ttl time.Duration) *FakeIdP {
	t.Helper()
	idp := StartFakeIdP(t, fakeidp.Options{
		Style: fakeidp.StyleOAuth2, ClientID: "agent-client", ClientSecret: "agent-secret",
		Scopes: []string{"read"}, TokenTTL: ttl,
	})
	v.Write("idp/config/agent", "provider=oauth2", "token_url="+idp.TokenURL(),
		"client_id=agent-client", "client_secret=agent-secret", "scopes=read")
	return idp
}

// agentTemplate is a Vault Agent that authenticates with token and renders the
// access token of secretPath into a file, as an application consumes it.
type agentTemplate struct {
	proc     *proc
	rendered string
}

// startAgentTemplate starts it; templateConfig is the body of template_config.
func startAgentTemplate(t *testing.T, v *Vault, token, secretPath, templateConfig string) *agentTemplate {
	t.Helper()
	return startAgentTemplateOf(t, v, token, secretPath, templateConfig, "access_token")
}

// startAgentTemplateOf renders fields of secretPath's data, one a line (the
// access token first, for read).
func startAgentTemplateOf(t *testing.T, v *Vault, token, secretPath, templateConfig string, fields ...string) *agentTemplate {
	t.Helper()
	dir := t.TempDir()
	conf, rendered, err := vaultproc.WriteAgentTemplateConfig(dir, v.Addr, token, secretPath, templateConfig, fields...)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "vault agent", filepath.Join(dir, "agent.log"), v.cliEnv(""), vaultBin, "agent", "-config="+conf)
	return &agentTemplate{proc: p, rendered: rendered}
}

// read is the rendered token, or "" before the first render.
func (a *agentTemplate) read() string { return a.lines()[0] }

// lines are the rendered lines (one "" before the first render).
func (a *agentTemplate) lines() []string {
	b, err := os.ReadFile(a.rendered)
	if err != nil {
		return []string{""}
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// firstRender waits up to 30 s for Agent's first rendered token.
func (a *agentTemplate) firstRender(t *testing.T) string {
	t.Helper()
	var first string
	if !eventually(30*time.Second, 100*time.Millisecond, func() bool {
		first = a.read()
		return first != "" || a.proc.Exited()
	}) || first == "" {
		t.Fatalf("Agent rendered no token within 30 s (exited: %v)", a.proc.Exited())
	}
	return first
}

// nextRender waits up to 40 s for Agent to render a token other than prev.
// oldStillValid says whether the IdP still accepted prev when the new one
// appeared (the render came before the old token's end); ok is false when
// no new token came (or Agent exited).
func (a *agentTemplate) nextRender(idp *FakeIdP, prev string) (next string, oldStillValid, ok bool) {
	ok = eventually(40*time.Second, 100*time.Millisecond, func() bool {
		next = a.read()
		if next != "" && next != prev {
			oldStillValid = idp.Valid(prev)
			return true
		}
		return a.proc.Exited()
	}) && next != "" && next != prev
	return next, oldStillValid, ok
}

// engineReads is how many reads of path ("creds" or "token") of config the
// engine served (cache hits and misses, from idp/metrics).
func (v *Vault) engineReads(config, path string) int {
	v.t.Helper()
	var m struct {
		Data struct {
			Configs map[string]struct {
				Reads map[string]map[string]int `json:"reads"`
			} `json:"configs"`
		} `json:"data"`
	}
	v.JSON(&m, "read", "idp/metrics")
	r := m.Data.Configs[config].Reads[path]
	return r["hit"] + r["miss"]
}

// leasesUnder lists the live leases under prefix (sys/leases/lookup/),
// none when Vault answers that there is no value there.
func (v *Vault) leasesUnder(prefix string) []string {
	v.t.Helper()
	r := v.CLI("list", "sys/leases/lookup/"+prefix)
	if r.Err != nil {
		if strings.Contains(r.Stderr, "No value found") {
			return nil
		}
		v.t.Fatalf("vault list sys/leases/lookup/%s: %v\nstdout: %s\nstderr: %s", prefix, r.Err, r.Stdout, r.Stderr)
	}
	// Keys, a rule, then one key a line.
	_, keys, _ := strings.Cut(r.Stdout, "----\n")
	return strings.Fields(keys)
}

// heldToken is a token someone relies on until at least end: a lease (its
// end a lower bound, as the lease began after the read was sent) or a
// render of Agent's.
type heldToken struct {
	token string
	end   time.Time
	what  string
}

// leaseApp is an app beside Agent: it reads path every interval and keeps
// each lease it was given.
type leaseApp struct {
	mu     sync.Mutex
	leases []heldToken
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startLeaseApp(t *testing.T, v *Vault, path string, interval time.Duration) *leaseApp {
	t.Helper()
	a := &leaseApp{stop: make(chan struct{})}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			select {
			case <-a.stop:
				return
			case <-time.After(interval):
			}
			sent := time.Now()
			r := v.CLI("read", "-format=json", path)
			if r.Err != nil {
				t.Errorf("app read: %v %s", r.Err, r.Stderr)
				return
			}
			s := decodeSecret(t, r.Stdout)
			a.mu.Lock()
			a.leases = append(a.leases, heldToken{token: s.String("access_token"), end: sent.Add(time.Duration(s.LeaseDuration) * time.Second), what: "a " + path + " lease"})
			a.mu.Unlock()
		}
	}()
	return a
}

// close stops the app and returns its leases.
func (a *leaseApp) close() []heldToken {
	close(a.stop)
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leases
}

// agentRenderSlack is the longest Agent's file may hold a token the IdP no
// longer accepts: the time between the read that replaced it and the
// render (and the 50 ms sampling).
const agentRenderSlack = time.Second

// sampleAgentFile reads Agent's file every 50 ms for runFor, failing the
// test when it has held a dead token (dead says since when) for longer
// than agentRenderSlack. It returns the tokens rendered; onRender, when
// given, is called with each new content and when it was first seen.
func sampleAgentFile(t *testing.T, agent *agentTemplate, runFor time.Duration, dead func(tok string) (time.Time, bool),
	onRender ...func(lines []string, seen time.Time)) map[string]bool {
	t.Helper()
	rendered := map[string]bool{}
	last := ""
	deadline := time.Now().Add(runFor)
	for time.Now().Before(deadline) && !agent.proc.Exited() {
		lines := agent.lines()
		if tok := lines[0]; tok != "" {
			rendered[tok] = true
			if since, isDead := dead(tok); isDead && time.Since(since) > agentRenderSlack {
				t.Fatalf("Agent's file has held a dead token for %s", time.Since(since).Round(time.Millisecond))
			}
			if content := tok + "\n" + lines[len(lines)-1]; content != last {
				last = content
				for _, f := range onRender {
					f(lines, time.Now())
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if agent.proc.Exited() {
		t.Fatal("Agent exited")
	}
	// A token minted at the very end is rendered a moment later.
	time.Sleep(agentRenderSlack)
	if tok := agent.read(); tok != "" {
		rendered[tok] = true
	}
	return rendered
}
