package idptokens

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"pgregory.net/rapid"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// The unleased answer's ttl over random clock moves and reads (creds and
// token, on a config whose tokens do not kill each other and on a
// single_active_token one, with and without the role's min_ttl), after
// every read:
//
//  1. ttl and rotation_period are whole seconds, at least 1;
//     last_vault_rotation changes exactly when the token does;
//  2. a read no later than ttl after an answer is handed that answer's
//     token (on a single_active_token config: it may be handed the next one
//     only once that answer's holding period has ended), unless ttl was
//     raised to its floor of 1 s; a read ttl + 1 s or more after it is
//     handed another token;
//  3. single_active_token: a token is killed a second or more after every
//     lease and every ttl handed out with it ended, and a read ttl + 1 s or
//     more after an answer waits under a second for the next token.
//
// RAPID_CHECKS sets the number of sequences, RAPID_SEED replays one.
func TestTokenTTLProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		singleActive := rapid.Bool().Draw(rt, "single_active")
		minTTL := rapid.SampledFrom([]int{0, 3, 8, 15}).Draw(rt, "min_ttl")
		m := newTTLModel(t, rt, singleActive, minTTL)
		defer m.close()
		rt.Repeat(map[string]func(*rapid.T){
			"":      func(*rapid.T) {},
			"clock": m.advance,
			"token": func(rt *rapid.T) { m.read(rt, "token") },
			"creds": func(rt *rapid.T) { m.read(rt, "creds") },
		})
	})
}

const ttlModelLifetime = 20 * time.Second

// ttlAnswer is an answer handed out: which token, when, and until when it
// was promised (a creds lease's end, or token's answer + ttl).
type ttlAnswer struct {
	token    string
	at, ends time.Time
	ttl      time.Duration // 0 for a lease
	rotation string
}

type ttlModel struct {
	e            *testEnv
	clock        *fakeclock.Clock
	idp          *fakeidp.Server
	srv          *httptest.Server
	singleActive bool
	answers      []ttlAnswer
}

func newTTLModel(t *testing.T, rt *rapid.T, singleActive bool, minTTL int) *ttlModel {
	clock := fakeclock.New(testT0)
	e := newTestEnv(t, withClock(clock))
	style := fakeidp.StyleOAuth2
	if singleActive {
		style = fakeidp.StyleMicroTek
	}
	idp := fakeidp.New(fakeidp.Options{Style: style, ClientID: mtClient, ClientSecret: "s", TokenTTL: ttlModelLifetime, Scopes: []string{"read"}})
	idp.SetClock(clock.Now)
	srv := httptest.NewServer(idp)
	cfg := map[string]any{"token_url": srv.URL + idp.TokenPath(), "client_id": mtClient, "client_secret": "s"}
	if singleActive {
		cfg["provider"] = "microtek"
	}
	for path, data := range map[string]map[string]any{"config/c": cfg} {
		if resp, err := e.do(logical.UpdateOperation, path, data); err != nil || resp.IsError() {
			rt.Fatalf("%s: %v %v", path, err, respErr(resp))
		}
	}
	if resp, err := e.do(logical.UpdateOperation, "roles/r", map[string]any{"config": "c", "scopes": "read", "min_ttl": minTTL}); err != nil || resp.IsError() {
		rt.Fatalf("role: %v %v", err, respErr(resp))
	}
	return &ttlModel{e: e, clock: clock, idp: idp, srv: srv, singleActive: singleActive}
}

func (m *ttlModel) close() { m.srv.Close() }

func (m *ttlModel) advance(rt *rapid.T) {
	m.clock.Advance(time.Duration(rapid.Int64Range(0, 25000).Draw(rt, "ms")) * time.Millisecond)
}

func (m *ttlModel) read(rt *rapid.T, path string) {
	before := m.clock.Now()
	resp, err := m.e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: path + "/r", Storage: m.e.storage})
	if err != nil || resp.IsError() {
		rt.Fatalf("%s read at +%s: %v %v", path, before.Sub(testT0), err, respErr(resp))
	}
	after := m.clock.Now() // later when the read waited for the next mint
	got := ttlAnswer{token: resp.Data["access_token"].(string), at: after}
	if path == "creds" {
		got.ends = after.Add(resp.Secret.TTL)
	} else {
		got.ttl = answerTTL(rt, resp)
		got.ends = after.Add(got.ttl)
		got.rotation = resp.Data["last_vault_rotation"].(string)
		if p, ok := resp.Data["rotation_period"].(int64); !ok || p != int64(ttlModelLifetime/time.Second) {
			rt.Fatalf("rotation_period %#v, want 20", resp.Data["rotation_period"])
		}
	}
	for i, a := range m.answers {
		// The latest answer of the token current before this read.
		current := i == lastTokenAnswer(m.answers) && m.answers[len(m.answers)-1].token == a.token
		m.check(rt, a, got, before, after, current)
	}
	m.answers = append(m.answers, got)
	if m.singleActive {
		m.checkKills(rt)
	}
}

// lastTokenAnswer is the index of the latest answer of token/ (-1: none).
func lastTokenAnswer(answers []ttlAnswer) int {
	for i := len(answers) - 1; i >= 0; i-- {
		if answers[i].ttl > 0 {
			return i
		}
	}
	return -1
}

// check holds the read got (sent at before) to what the earlier answer a
// said; current: a is the latest answer of the token current before the
// read, whose mint the read may wait for.
func (m *ttlModel) check(rt *rapid.T, a, got ttlAnswer, before, after time.Time, current bool) {
	where := fmt.Sprintf("read at +%s after an answer at +%s (ttl %s)", before.Sub(testT0), a.at.Sub(testT0), a.ttl)
	if a.rotation != "" && got.rotation != "" && (a.token == got.token) != (a.rotation == got.rotation) {
		rt.Fatalf("%s: same token %v but same last_vault_rotation %v", where, a.token == got.token, a.rotation == got.rotation)
	}
	if a.ttl == 0 {
		return // a lease: its promise is checked by the kills
	}
	switch {
	case !before.Before(a.at.Add(a.ttl + time.Second)):
		if got.token == a.token {
			rt.Fatalf("%s: handed the same token ttl + 1 s or more later", where)
		}
		if m.singleActive && current && after.Sub(before) >= time.Second {
			rt.Fatalf("%s: waited %s for the next token, want under a second", where, after.Sub(before))
		}
	case !before.After(a.at.Add(a.ttl)) && got.token != a.token:
		// Handed the next token within ttl: only when ttl was raised to
		// its floor, or (single-active) once the holding period is over.
		if a.ttl != time.Second && !m.singleActive {
			rt.Fatalf("%s: handed the next token within ttl", where)
		}
	}
}

// checkKills: no token died before a second after every promise of it.
func (m *ttlModel) checkKills(rt *rapid.T) {
	for _, a := range m.answers {
		if killed, dead := m.idp.KilledAt(a.token); dead && killed.Before(a.ends.Add(backend.HoldSkew)) {
			rt.Fatalf("token of the answer at +%s killed at +%s, within a second of its promise until +%s",
				a.at.Sub(testT0), killed.Sub(testT0), a.ends.Sub(testT0))
		}
	}
}
