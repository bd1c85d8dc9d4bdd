package fakeidp

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The device authorization grant (RFC 8628) of a Server with
// Options.DeviceCodes: POST /device answers a device code, and the token
// endpoint's device_code grant issues once the user code was approved. It
// follows the server's clock, and issues through issueLocked, so on a
// single-active server a completed login kills the client's older tokens.

// slowDownStep is what a poll before the interval adds to it (RFC 8628 3.5).
const slowDownStep = 5 * time.Second

type pendingDevice struct {
	clientID string
	userCode string
	scope    string
	expires  time.Time
	interval time.Duration
	lastPoll time.Time // the authorization, then each poll
	approved bool
	denied   bool
	spent    bool
	subject  string // who approved ("" : the client)
}

// handleDevice is the device authorization endpoint (RFC 8628 3.1, 3.2):
// the client authenticates as at the token endpoint.
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	form, parseErr := readForm(r)
	if e := checkPost(r, form, parseErr); e != nil {
		s.writeError(w, e)
		return
	}
	clientID, e := s.authenticateClient(r, form)
	if e == nil {
		e = s.checkScope(form.Get("scope"), false)
	}
	if e != nil {
		s.writeError(w, e)
		return
	}
	s.mu.Lock()
	dc := randomToken(s.prefix() + "dc_")
	buf := make([]byte, 4)
	rand.Read(buf)
	uc := fmt.Sprintf("%04X-%04X", int(buf[0])<<8|int(buf[1]), int(buf[2])<<8|int(buf[3]))
	now := s.now()
	s.devices[dc] = &pendingDevice{
		clientID: clientID, userCode: uc, scope: form.Get("scope"),
		expires: now.Add(s.opts.DeviceCodeTTL), interval: time.Duration(s.opts.DeviceInterval) * time.Second, lastPoll: now,
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code": dc, "user_code": uc, "verification_uri": "http://" + r.Host + "/activate",
		"expires_in": int64(s.opts.DeviceCodeTTL / time.Second), "interval": s.opts.DeviceInterval,
	})
}

// deviceCodeLocked is one poll (RFC 8628 3.4, 3.5).
func (s *Server) deviceCodeLocked(clientID string, form url.Values) (map[string]any, *oauthError) {
	dc := form.Get("device_code")
	if dc == "" {
		return nil, invalidRequest("device_code is required")
	}
	d, ok := s.devices[dc]
	if !ok || d.clientID != clientID || d.spent {
		return nil, invalidGrant("unknown or spent device code")
	}
	now := s.now()
	early := now.Sub(d.lastPoll) < d.interval
	d.lastPoll = now
	switch {
	case !now.Before(d.expires):
		d.spent = true
		return nil, errf(400, "expired_token", "the device code expired")
	case early:
		d.interval += slowDownStep
		return nil, errf(400, "slow_down", "polled before the interval passed")
	case d.denied:
		d.spent = true
		return nil, errf(400, "access_denied", "the user denied the request")
	case !d.approved && !s.approveAll:
		return nil, errf(400, "authorization_pending", "the user has not yet entered the code")
	}
	d.spent = true
	subject := d.subject
	if subject == "" {
		subject = clientID
	}
	return s.responseLocked(clientID, subject, d.scope), nil
}

// byUserCodeLocked finds the live device code of userCode.
func (s *Server) byUserCodeLocked(userCode string) *pendingDevice {
	for _, d := range s.devices {
		if d.userCode == userCode && !d.spent {
			return d
		}
	}
	return nil
}

// ApproveDevice is the person entering userCode and approving; false when
// no live device code has it.
func (s *Server) ApproveDevice(userCode string) bool { return s.ApproveDeviceAs(userCode, "") }

// ApproveDeviceAs is subject logging in and approving userCode's login.
func (s *Server) ApproveDeviceAs(userCode, subject string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.byUserCodeLocked(userCode)
	if d != nil {
		d.approved, d.subject = true, subject
	}
	return d != nil
}

// DenyDevice is the person refusing userCode's login.
func (s *Server) DenyDevice(userCode string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.byUserCodeLocked(userCode)
	if d != nil {
		d.denied = true
	}
	return d != nil
}

// ApproveAllDevices approves every device code, now and later, while on.
func (s *Server) ApproveAllDevices(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.approveAll = on
}
