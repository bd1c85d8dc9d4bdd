package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The device authorization grant (RFC 8628): Vault asks for a device code,
// a person enters the user code at the verification URI, and Vault polls
// the token endpoint with the device code until they have.
const (
	GrantDeviceCode GrantType = "device_code"
	// DeviceCodeGrantURN is its grant_type on the wire.
	DeviceCodeGrantURN = "urn:ietf:params:oauth:grant-type:device_code"
	// DefaultDeviceInterval is RFC 8628 3.2's polling interval when the
	// server names none; SlowDownStep is what slow_down adds (3.5).
	DefaultDeviceInterval = 5 * time.Second
	SlowDownStep          = 5 * time.Second
	// MaxDeviceLifetime bounds the expires_in of a device code.
	MaxDeviceLifetime = 24 * time.Hour
)

func init() { grantURNs[GrantDeviceCode] = DeviceCodeGrantURN }

// The polling errors of RFC 8628 3.5.
const (
	DeviceAuthorizationPending = "authorization_pending"
	DeviceSlowDown             = "slow_down"
	DeviceAccessDenied         = "access_denied"
	DeviceExpiredToken         = "expired_token"
)

// DeviceAuthorization is the device authorization response (RFC 8628 3.2).
// DeviceCode is a secret: it never leaves the engine.
type DeviceAuthorization struct {
	DeviceCode              string
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	ExpiresAt               time.Time
	Interval                time.Duration
}

// DeviceErrorCode is the RFC 8628 3.5 error of a poll ("" when err is not
// an IdP's OAuth2 error).
func DeviceErrorCode(err error) string {
	var e *IdPError
	if errors.As(err, &e) && e.Status == http.StatusBadRequest {
		return e.Code
	}
	return ""
}

// DeviceTokenRequest is the poll for a device code's token.
func DeviceTokenRequest(deviceCode string) TokenRequest {
	return TokenRequest{Grant: GrantDeviceCode, Params: url.Values{"device_code": {deviceCode}}, Redact: []string{deviceCode}}
}

// RequestDeviceAuthorization asks the device authorization endpoint (the
// config's, else the discovered one) for a device code for scopes.
func (e *Endpoint) RequestDeviceAuthorization(ctx context.Context, scopes []string, extra map[string]string) (*DeviceAuthorization, error) {
	r, err := e.resolve(ctx, false)
	if err != nil {
		return nil, err
	}
	endpoint := r.DeviceAuthorizationURL
	if endpoint == "" && r.Discovery != nil {
		md, err := r.Discovery.Metadata(ctx)
		if err != nil {
			return nil, discoveryIdPError(e.Config, err)
		}
		endpoint = md.DeviceAuthorizationEndpoint
		if endpoint == "" {
			// The server answered; its metadata lacks the endpoint (it may
			// not support RFC 8628, as Ory Hydra v2.3.0 does not).
			return nil, &IdPError{Config: e.Config, Status: http.StatusOK,
				Detail: "the metadata at " + md.Source + " has no device_authorization_endpoint; set device_authorization_url if the server has one"}
		}
	}
	if endpoint == "" {
		return nil, &IdPError{Config: e.Config, Detail: "no device_authorization_url is configured or discovered"}
	}
	var out *DeviceAuthorization
	err = r.withFallback("device authorization", func(ep *Endpoint) error {
		var err error
		out, err = ep.deviceAuthorizationOnce(ctx, endpoint, scopes, extra)
		return err
	})
	return out, err
}

func (e *Endpoint) deviceAuthorizationOnce(ctx context.Context, endpoint string, scopes []string, extra map[string]string) (d *DeviceAuthorization, err error) {
	started := e.now()
	sent, status := false, 0 // observed once the request went out
	defer func() {
		if sent && e.Observe != nil {
			e.Observe(Exchange{Grant: GrantDeviceCode, DeviceAuthorization: true, Status: status, Duration: e.now().Sub(started), Attempt: 1, Err: err})
		}
	}()
	form := url.Values{}
	for k, v := range extra {
		form.Set(k, v)
	}
	form.Set("client_id", e.ClientID)
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	form, authHeader, redact, err := e.clientAuthentication(form)
	if err != nil {
		return nil, &IdPError{Config: e.Config, Detail: Sanitize(err.Error(), 200)}
	}
	httpReq, err := formPost(ctx, endpoint, form, authHeader)
	if err != nil {
		return nil, &IdPError{Config: e.Config, Detail: "the device_authorization_url cannot be used"}
	}
	resp, err := e.HTTP.Do(httpReq)
	sent = true
	if err != nil {
		return nil, &IdPError{Config: e.Config, Detail: "device authorization: " + networkDetail(err), Temporary: ctx.Err() == nil && !errors.Is(err, ErrHostNotAllowed)}
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	idpErr := &IdPError{Config: e.Config, Status: resp.StatusCode}
	switch {
	case readErr != nil || len(body) > MaxResponseBytes:
		idpErr.Detail = "device authorization: the response could not be read"
		return nil, idpErr
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		idpErr.Detail = "device authorization: the endpoint redirected; redirects are not followed"
		return nil, idpErr
	case resp.StatusCode != http.StatusOK:
		parseErrorBody(idpErr, body, e.redactor(TokenRequest{Redact: redact}))
		idpErr.Temporary = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
		return nil, idpErr
	}
	d, err = ParseDeviceAuthorization(body, started)
	if err != nil {
		idpErr.Detail = err.Error()
		return nil, idpErr
	}
	return d, nil
}

// ParseDeviceAuthorization decodes a device authorization response.
// verification_url (Google's spelling) is accepted for verification_uri.
func ParseDeviceAuthorization(body []byte, obtainedAt time.Time) (*DeviceAuthorization, error) {
	var r struct {
		DeviceCode              string          `json:"device_code"`
		UserCode                string          `json:"user_code"`
		VerificationURI         string          `json:"verification_uri"`
		VerificationURL         string          `json:"verification_url"`
		VerificationURIComplete string          `json:"verification_uri_complete"`
		ExpiresIn               json.RawMessage `json:"expires_in"`
		Interval                json.RawMessage `json:"interval"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, errors.New("the device authorization response is not JSON")
	}
	if r.VerificationURI == "" {
		r.VerificationURI = r.VerificationURL
	}
	if r.DeviceCode == "" || r.UserCode == "" || r.VerificationURI == "" {
		return nil, errors.New("the device authorization response lacks device_code, user_code or verification_uri")
	}
	for _, u := range []string{r.VerificationURI, r.VerificationURIComplete} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return nil, errors.New("the device authorization response's verification URI is not an http(s) URL")
		}
	}
	expiresIn, err := parseExpiresIn(r.ExpiresIn)
	if err != nil || len(r.ExpiresIn) == 0 {
		return nil, errors.New("the device authorization response's expires_in is missing or out of range")
	}
	interval := DefaultDeviceInterval
	if len(r.Interval) > 0 && string(r.Interval) != "null" {
		secs, err := strconv.Atoi(strings.Trim(string(r.Interval), `"`))
		if err != nil || secs < 0 || secs > 3600 {
			return nil, errors.New("the device authorization response's interval is not a number of seconds")
		}
		interval = time.Duration(secs) * time.Second
	}
	return &DeviceAuthorization{
		DeviceCode:              r.DeviceCode,
		UserCode:                Sanitize(r.UserCode, 64),
		VerificationURI:         Sanitize(r.VerificationURI, 512),
		VerificationURIComplete: Sanitize(r.VerificationURIComplete, 1024),
		ExpiresAt:               obtainedAt.Add(min(expiresIn, MaxDeviceLifetime)),
		Interval:                interval,
	}, nil
}

// String describes the authorization without its device code.
func (d *DeviceAuthorization) String() string {
	return fmt.Sprintf("user_code %s at %s until %s", d.UserCode, d.VerificationURI, d.ExpiresAt.UTC().Format(time.RFC3339))
}
