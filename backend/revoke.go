package backend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
)

// Token type hints of RFC 7009 2.1.
const (
	HintRefreshToken = "refresh_token"
	HintAccessToken  = "access_token"
)

// ErrNoRevocationEndpoint: the config names no revocation_url and discovery
// found no revocation_endpoint.
var ErrNoRevocationEndpoint = errors.New("no revocation endpoint: set revocation_url or use an issuer whose metadata has revocation_endpoint")

// Revoke asks the revocation endpoint (RFC 7009) to revoke token, with the
// config's client authentication (and the previous credential once if the
// current one is refused with invalid_client). 200 is success; anything
// else is an *IdPError that quotes nothing sent. One try, no retries:
// revocation is best effort and must not hold up a delete.
func (e *Endpoint) Revoke(ctx context.Context, token, hint string) error {
	r, err := e.resolve(ctx, true)
	if err != nil {
		return err
	}
	if r.RevocationURL == "" {
		return ErrNoRevocationEndpoint
	}
	return r.withFallback("revocation", func(ep *Endpoint) error {
		return ep.revokeOnce(ctx, token, hint)
	})
}

func (e *Endpoint) revokeOnce(ctx context.Context, token, hint string) error {
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	form, authHeader, sent, err := e.clientAuthentication(form)
	if err != nil {
		return &IdPError{Config: e.Config, Detail: Sanitize(err.Error(), 200)}
	}
	httpReq, err := formPost(ctx, e.RevocationURL, form, authHeader)
	if err != nil {
		return &IdPError{Config: e.Config, Detail: "the revocation_url cannot be used"}
	}
	resp, err := e.HTTP.Do(httpReq)
	if err != nil {
		return &IdPError{Config: e.Config, Detail: "revocation: " + networkDetail(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	idpErr := &IdPError{Config: e.Config, Status: resp.StatusCode, Detail: "revocation"}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		idpErr.Detail = "revocation: the endpoint redirected; redirects are not followed"
		return idpErr
	}
	parseErrorBody(idpErr, body, e.redactor(TokenRequest{RefreshToken: token, Redact: sent}))
	if idpErr.Detail == "the body was not an OAuth2 error in JSON" {
		idpErr.Detail = "revocation; " + idpErr.Detail
	}
	idpErr.Temporary = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
	return idpErr
}
