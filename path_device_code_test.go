package idptokens

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// deviceEnv: a device_code role "tv" against a strict RFC 8628 fake that
// polls at 1 s and whose slow_down adds 1 s (the plugin's step is set to
// match, so the fake can tell whether the plugin ever polls too early).
func deviceEnv(t *testing.T, e *testEnv, opts fakeidp.DeviceOptions) (*fakeidp.Device, string) {
	t.Helper()
	return deviceEnvOn(t, e, opts, nil, nil)
}

// deviceEnvOn is deviceEnv with the fake behind wrap (a gate), and further
// config fields.
func deviceEnvOn(t *testing.T, e *testEnv, opts fakeidp.DeviceOptions, wrap func(http.Handler) http.Handler, config map[string]any) (*fakeidp.Device, string) {
	t.Helper()
	opts.ClientID, opts.ClientSecret, opts.Scope, opts.Interval, opts.SlowDownStep = "tv-client", "tv-secret", "tv.watch", 1, 1
	idp := fakeidp.NewDevice(opts)
	var h http.Handler = idp
	if wrap != nil {
		h = wrap(idp)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.b.devices.slowDown = time.Second
	cfg := map[string]any{"token_url": srv.URL + "/token", "device_authorization_url": srv.URL + "/device",
		"client_id": "tv-client", "client_secret": "tv-secret"}
	for k, v := range config {
		cfg[k] = v
	}
	e.ok(logical.UpdateOperation, "config/tv", cfg)
	e.ok(logical.UpdateOperation, "roles/tv", map[string]any{"config": "tv", "grant_type": "device_code", "scopes": "tv.watch"})
	t.Cleanup(e.b.devices.stopAll)
	return idp, srv.URL
}

// credsEventually reads creds until it succeeds or timeout passes.
func (e *testEnv) credsEventually(role string, timeout time.Duration) (*logical.Response, string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := e.do(logical.ReadOperation, "creds/"+role, nil)
		if err == nil && resp != nil && !resp.IsError() {
			return resp, ""
		}
		if time.Now().After(deadline) {
			return nil, respErr(resp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDeviceCodeLogin(t *testing.T) {
	e := newTestEnv(t)
	idp, base := deviceEnv(t, e, fakeidp.DeviceOptions{Complete: true, TokenTTL: 10 * time.Minute})
	resp := e.ok(logical.UpdateOperation, "device-code/tv", nil)
	uc, _ := resp.Data["user_code"].(string)
	if uc == "" || resp.Data["verification_uri"] != base+"/activate" || resp.Data["verification_uri_complete"] != base+"/activate?user_code="+uc ||
		resp.Data["interval"] != int64(1) || resp.Data["expires_at"] == nil {
		t.Fatalf("device-code answered %v", resp.Data)
	}
	for k, v := range resp.Data {
		if s, ok := v.(string); ok && strings.HasPrefix(s, "dc-") {
			t.Fatalf("the answer shows the device code in %s", k)
		}
	}
	if da := e.metricsJSON().Configs["tv"].DeviceAuths; da["success"] != 1 {
		t.Errorf("metrics count device authorizations %v, want one success", da)
	}
	msg := e.fails(logical.ReadOperation, "creds/tv", nil, "waits for a device login")
	if !strings.Contains(msg, uc) || !strings.Contains(msg, base+"/activate") {
		t.Fatalf("pending creds message %q lacks the user code or URL", msg)
	}
	idp.SlowDown(uc) // the first poll is told to slow down
	idp.Approve(uc)
	started := time.Now()
	creds, last := e.credsEventually("tv", 20*time.Second)
	if creds == nil {
		t.Fatalf("no token after the login; creds says %q", last)
	}
	t.Logf("device login served after %v", time.Since(started).Round(100*time.Millisecond))
	tok := creds.Data["access_token"].(string)
	polls, early, _ := idp.Stats()
	if !idp.Valid(tok) || polls < 2 || early != 0 {
		t.Fatalf("token valid=%v, polls=%d, polls before the interval=%d; want a valid token, slow_down then success, never too early", idp.Valid(tok), polls, early)
	}
	if ttl := leaseTTL(creds); ttl > 10*time.Minute || ttl < 10*time.Minute-5*time.Second {
		t.Errorf("lease %v, want the token's 10m", ttl)
	}
	// The poller stores the token before it deletes the login (so a reader
	// never finds neither), so the deletion may trail the first served read.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l, _ := loadDeviceLogin(context.Background(), e.storage, "tv")
		if l == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the completed login is still stored 5s after its token was served: %+v", l.Ended)
			break
		}
	}
	// Expired: refreshed with the refresh token, no new login.
	e.b.now = func() time.Time { return time.Now().Add(11 * time.Minute) }
	again := e.creds("tv")
	if _, _, refreshes := idp.Stats(); refreshes != 1 || again.Data["access_token"] == tok {
		t.Fatalf("refreshes=%d, same token=%v; want one refresh and a new token", refreshes, again.Data["access_token"] == tok)
	}
}

func TestDeviceCodeDenied(t *testing.T) {
	e := newTestEnv(t)
	idp, _ := deviceEnv(t, e, fakeidp.DeviceOptions{})
	uc := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	idp.Deny(uc)
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, _ := loadDeviceLogin(context.Background(), e.storage, "tv")
		if l != nil && l.Ended != "" {
			if l.Ended != deviceEndDenied || l.DeviceCode != "" {
				t.Fatalf("ended %q with device code kept=%v", l.Ended, l.DeviceCode != "")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the denied login did not end")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.fails(logical.ReadOperation, "creds/tv", nil, "the last device login ended (access_denied")
}

func TestDeviceCodeRefusals(t *testing.T) {
	e := newTestEnv(t)
	deviceEnv(t, e, fakeidp.DeviceOptions{})
	_, url := startIdP(t, fakeidp.Options{ClientID: "c", ClientSecret: "s"})
	e.ok(logical.UpdateOperation, "config/nodev", map[string]any{"token_url": url, "client_id": "c", "client_secret": "s"})
	e.fails(logical.UpdateOperation, "roles/r", map[string]any{"config": "nodev", "grant_type": "device_code"}, "device_authorization_url")
	e.ok(logical.UpdateOperation, "roles/cc", map[string]any{"config": "nodev"})
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "device-code/cc",
		Storage: e.storage, MountPoint: "tvs/"})
	if err != nil || !strings.Contains(respErr(resp), "tvs/device-code/ is for device_code roles") {
		t.Fatalf("device-code of a client_credentials role: %v %v", err, respErr(resp))
	}
	resp, err = e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "creds/tv",
		Storage: e.storage, MountPoint: "tvs/"})
	if err != nil || !strings.Contains(respErr(resp), "vault write -f tvs/device-code/tv") {
		t.Fatalf("creds before any login: %v %v", err, respErr(resp))
	}
	e.sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	if _, err := e.do(logical.UpdateOperation, "device-code/tv", nil); err != logical.ErrReadOnly {
		t.Fatalf("standby: %v, want ErrReadOnly", err)
	}
}

// A public client (client_auth=none): no client authentication, client_id
// in the device authorization request and in every poll.
func TestDeviceCodePublicClient(t *testing.T) {
	e := newTestEnv(t)
	idp := fakeidp.NewDevice(fakeidp.DeviceOptions{ClientID: "tv-public", Public: true, Scope: "tv.watch", Interval: 1})
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	t.Cleanup(e.b.devices.stopAll)
	e.ok(logical.UpdateOperation, "config/pub", map[string]any{"token_url": srv.URL + "/token", "device_authorization_url": srv.URL + "/device",
		"client_id": "tv-public", "client_auth": "none"})
	e.ok(logical.UpdateOperation, "roles/pub", map[string]any{"config": "pub", "grant_type": "device_code", "scopes": "tv.watch"})
	uc := e.ok(logical.UpdateOperation, "device-code/pub", nil).Data["user_code"].(string)
	idp.Approve(uc)
	creds, last := e.credsEventually("pub", 20*time.Second)
	if creds == nil || !idp.Valid(creds.Data["access_token"].(string)) {
		t.Fatalf("no valid token for the public client; creds says %q", last)
	}
}

// An IdP that answers interval 0 is polled at the engine's least interval,
// and the answer says that interval, not 0.
func TestDeviceCodeAnswersTheIntervalPolled(t *testing.T) {
	e := newTestEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/device" {
			fmt.Fprint(w, `{"device_code":"dc-zero","user_code":"ZERO-1","verification_uri":"https://idp.example/activate","expires_in":600,"interval":0}`)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"authorization_pending"}`)
	}))
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/z", map[string]any{"token_url": srv.URL + "/token", "device_authorization_url": srv.URL + "/device",
		"client_id": "z", "client_secret": "z-secret"})
	e.ok(logical.UpdateOperation, "roles/z", map[string]any{"config": "z", "grant_type": "device_code"})
	t.Cleanup(e.b.devices.stopAll)
	if got := e.ok(logical.UpdateOperation, "device-code/z", nil).Data["interval"]; got != int64(1) {
		t.Fatalf("interval %v, want 1 (the engine's least wait between polls)", got)
	}
}
