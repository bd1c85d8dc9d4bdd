package fakeidp

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DeviceGrantType is RFC 8628's grant_type.
const DeviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// DeviceOptions configure a strict RFC 8628 server: POST /device for the
// device authorization, POST /token for polls (and refresh_token).
type DeviceOptions struct {
	ClientID, ClientSecret string // HTTP Basic, required on both endpoints
	// Public: a public client (RFC 8628 3.1, 3.4): no client authentication,
	// client_id in the body of every request.
	Public   bool
	Scope    string // the scope the device authorization must ask for
	Interval int    // seconds (default 5)
	// SlowDownStep is what a too-early poll adds to the interval (RFC 8628
	// 3.5 says 5 s; default 5).
	SlowDownStep int
	ExpiresIn    time.Duration // of device codes (default 10m)
	TokenTTL     time.Duration // of access tokens (default 1h)
	Complete     bool          // send verification_uri_complete
}

// Device is the server of DeviceOptions.
type Device struct {
	opts DeviceOptions

	mu       sync.Mutex
	codes    map[string]*deviceCode // by device code
	access   map[string]time.Time
	refresh  map[string]bool
	polls    int
	tooEarly int
	refreshs int
	base     string
}

type deviceCode struct {
	userCode  string
	expires   time.Time
	interval  time.Duration
	lastPoll  time.Time
	approved  bool
	denied    bool
	forceSlow bool
	spent     bool
}

// NewDevice returns the server.
func NewDevice(opts DeviceOptions) *Device {
	if opts.Interval <= 0 {
		opts.Interval = 5
	}
	if opts.SlowDownStep <= 0 {
		opts.SlowDownStep = 5
	}
	if opts.ExpiresIn <= 0 {
		opts.ExpiresIn = 10 * time.Minute
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	return &Device{opts: opts, codes: map[string]*deviceCode{}, access: map[string]time.Time{}, refresh: map[string]bool{}}
}

// UserCodes are the user codes issued, in no order.
func (d *Device) UserCodes() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.codes {
		out = append(out, c.userCode)
	}
	return out
}

func (d *Device) byUserCode(userCode string, f func(*deviceCode)) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.codes {
		if c.userCode == userCode {
			f(c)
			return true
		}
	}
	return false
}

// Approve, Deny: the person's answer for userCode. SlowDown makes the next
// poll of userCode answer slow_down.
func (d *Device) Approve(userCode string) bool {
	return d.byUserCode(userCode, func(c *deviceCode) { c.approved = true })
}
func (d *Device) Deny(userCode string) bool {
	return d.byUserCode(userCode, func(c *deviceCode) { c.denied = true })
}
func (d *Device) SlowDown(userCode string) bool {
	return d.byUserCode(userCode, func(c *deviceCode) { c.forceSlow = true })
}

// Stats: polls received, polls that came before the interval had passed
// (each answered slow_down), refreshes.
func (d *Device) Stats() (polls, tooEarly, refreshes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.polls, d.tooEarly, d.refreshs
}

// Valid says whether token is a live access token of this server.
func (d *Device) Valid(token string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	exp, ok := d.access[token]
	return ok && time.Now().Before(exp)
}

func random(prefix string) string {
	buf := make([]byte, 18)
	rand.Read(buf)
	return prefix + base64.RawURLEncoding.EncodeToString(buf)
}

func (d *Device) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, parseErr := readForm(r)
	e := checkPost(r, form, parseErr)
	var body map[string]any
	if e == nil && d.opts.Public {
		if r.Header.Get("Authorization") != "" || form.Has("client_secret") {
			e = invalidRequest("a public client does not authenticate")
		} else if form.Get("client_id") != d.opts.ClientID {
			e = invalidClient("client_id is required and must name the client")
		}
	} else if e == nil {
		id, secret, ok := parseBasic(r.Header.Get("Authorization"))
		if !ok || !secureEqual(id, d.opts.ClientID) || !secureEqual(secret, d.opts.ClientSecret) {
			e = invalidClient("client authentication failed")
		} else if cid := form.Get("client_id"); cid != "" && cid != id {
			e = invalidRequest("client_id does not match")
		}
	}
	if e == nil {
		switch r.URL.Path {
		case "/device":
			body, e = d.authorize(r, form.Get("scope"))
		case "/token":
			body, e = d.token(form.Get("grant_type"), form.Get("device_code"), form.Get("refresh_token"))
		default:
			http.NotFound(w, r)
			return
		}
	}
	if e != nil {
		writeJSON(w, e.status, map[string]any{"error": e.code, "error_description": e.desc})
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (d *Device) authorize(r *http.Request, scope string) (map[string]any, *oauthError) {
	if scope != d.opts.Scope {
		return nil, invalidScope("scope must be " + d.opts.Scope)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dc := random("dc-")
	buf := make([]byte, 4)
	rand.Read(buf)
	uc := strings.ToUpper(fmt.Sprintf("%04X-%04X", int(buf[0])<<8|int(buf[1]), int(buf[2])<<8|int(buf[3])))
	d.codes[dc] = &deviceCode{userCode: uc, expires: time.Now().Add(d.opts.ExpiresIn), interval: time.Duration(d.opts.Interval) * time.Second}
	verify := "http://" + r.Host + "/activate"
	body := map[string]any{"device_code": dc, "user_code": uc, "verification_uri": verify,
		"expires_in": int64(d.opts.ExpiresIn / time.Second), "interval": d.opts.Interval}
	if d.opts.Complete {
		body["verification_uri_complete"] = verify + "?user_code=" + uc
	}
	return body, nil
}

func (d *Device) token(grant, deviceCode, refreshToken string) (map[string]any, *oauthError) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch grant {
	case DeviceGrantType:
	case "refresh_token":
		if !d.refresh[refreshToken] {
			return nil, invalidGrant("refresh token is invalid or spent")
		}
		delete(d.refresh, refreshToken)
		d.refreshs++
		return d.issueLocked(), nil
	default:
		return nil, errf(400, "unsupported_grant_type", "grant_type "+grant)
	}
	d.polls++
	c, ok := d.codes[deviceCode]
	if !ok || c.spent {
		return nil, invalidGrant("unknown or spent device code")
	}
	now := time.Now()
	early := !c.lastPoll.IsZero() && now.Sub(c.lastPoll) < c.interval
	c.lastPoll = now
	switch {
	case !now.Before(c.expires):
		return nil, errf(400, "expired_token", "the device code expired")
	case early || c.forceSlow:
		if early {
			d.tooEarly++
		}
		c.forceSlow = false
		c.interval += time.Duration(d.opts.SlowDownStep) * time.Second
		return nil, errf(400, "slow_down", "polling too fast")
	case c.denied:
		c.spent = true
		return nil, errf(400, "access_denied", "the user denied the request")
	case !c.approved:
		return nil, errf(400, "authorization_pending", "the user has not yet entered the code")
	}
	c.spent = true
	return d.issueLocked(), nil
}

func (d *Device) issueLocked() map[string]any {
	at, rt := random("da-"), random("dr-")
	d.access[at] = time.Now().Add(d.opts.TokenTTL)
	d.refresh[rt] = true
	return map[string]any{"access_token": at, "token_type": "Bearer", "refresh_token": rt,
		"expires_in": int64(d.opts.TokenTTL / time.Second), "scope": d.opts.Scope}
}

// Issued lists every device code, access token and refresh token the server
// issued (for tests that look for them where they must not be).
func (d *Device) Issued() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for dc := range d.codes {
		out = append(out, dc)
	}
	for at := range d.access {
		out = append(out, at)
	}
	for rt := range d.refresh {
		out = append(out, rt)
	}
	return out
}
