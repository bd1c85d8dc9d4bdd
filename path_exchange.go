package idptokens

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathExchange() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "exchange/" + framework.GenericNameRegex("role"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "exchange"},
		Fields: map[string]*framework.FieldSchema{
			"role": {Type: framework.TypeString, Description: "Name of a token_exchange role without subject_role."},
			"subject_token": {Type: framework.TypeString, Description: "The token to exchange (RFC 8693 subject_token). Required; never stored or logged.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"subject_token_type": {Type: framework.TypeString, Description: "Its type URN. Default the role's subject_token_type, else urn:ietf:params:oauth:token-type:access_token."},
			"min_ttl":            {Type: framework.TypeDurationSecond, Description: "Hand out a cached exchange only if it has at least this long left."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: strict(b.pathExchangeWrite), Responses: exchangeResponses(), Summary: "Exchange the caller's subject token for a token of the role (leased like creds).",
				ForwardPerformanceStandby: true,
			},
		},
		HelpSynopsis:    "Exchange a subject token the caller brings (RFC 8693 token exchange).",
		HelpDescription: strings.TrimSpace(exchangeHelp),
	}}
}

func (b *idpBackend) pathExchangeWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	var subject, subjectType string
	var minTTL time.Duration
	r := fieldReader{d: d}
	r.text("subject_token", &subject)
	r.text("subject_token_type", &subjectType)
	r.duration("min_ttl", &minTTL)
	if r.err != nil {
		return r.err, nil
	}
	if subject == "" {
		return fieldError("subject_token", "required"), nil
	}
	if len(subject) > maxSubjectTokenLen {
		return fieldError("subject_token", "longer than %d bytes", maxSubjectTokenLen), nil
	}
	if resp := checkText("subject_token_type", subjectType, maxFieldLen, false); resp != nil {
		return resp, nil
	}
	for attempt := 1; ; attempt++ {
		began := b.tokens.Epoch()
		role, cfg, resp, err := b.roleAndConfig(ctx, req.Storage, name)
		if resp != nil || err != nil {
			return resp, err
		}
		if resp := callerExchangeRole(req, name, role, cfg); resp != nil {
			return resp, nil
		}
		typ := subjectType
		if typ == "" {
			typ = role.SubjectTokenType
		}
		if typ == "" {
			typ = backend.TokenTypeAccessToken
		}
		if err := b.canMint(); err != nil {
			return nil, err
		}
		key := exchangeTokenKey(name, typ, subject)
		w := backend.Want{
			Key: key.String(), Fingerprint: cachedFingerprint(name, role, cfg), Ephemeral: true, Began: began,
			MinRemaining: max(role.MinTTL, minTTL), // beside the store's margin
			// Reused no longer than the subject token lives, where that can be read.
			ReuseFor: role.exchangeReuse(),
			Fetch: func(ctx context.Context, _ *backend.StoredToken) (*backend.Token, error) {
				return b.exchange(ctx, name, role, cfg, backend.Exchange8693{SubjectToken: subject, SubjectTokenType: typ})
			},
		}
		if exp, ok := backend.SubjectExpiry(subject); ok {
			w.ReuseUntil = exp
		}
		got, err := b.tokens.Serve(ctx, nil, w)
		b.countCacheRead(role.Config, readCreds, got.Fresh, err)
		if b.retryDropped(ctx, err, attempt, name, key, cfg) {
			continue
		}
		if err != nil {
			return b.credsError(name, err)
		}
		// An exchange is not the role's cached token, which renewal checks
		// against: its lease is never renewable.
		leased := *role
		leased.RenewableLeases = false
		return b.credsResponse(name, served{Served: got, role: &leased}), nil
	}
}

// callerExchangeRole refuses an exchange/<role> of a role that does not take
// the caller's subject token.
func callerExchangeRole(req *logical.Request, name string, role *roleEntry, cfg *configState) *logical.Response {
	mount := mountPrefix(req.MountPoint)
	switch {
	case role.grant() != backend.GrantTokenExchange:
		return logical.ErrorResponse("role %q has grant_type %s; %sexchange/ is for token_exchange roles (read %screds/%s)",
			name, role.GrantType, mount, mount, name)
	case role.SubjectRole != "":
		return logical.ErrorResponse("role %q takes its subject token from role %q: read %screds/%s",
			name, role.SubjectRole, mount, name)
	case cfg.singleActive:
		// Stored before role writes refused the pair: each caller's
		// exchange would kill the token exchanged before it.
		return logical.ErrorResponse("role %q: config %q keeps one live token per client (single_active_token), so exchanges of the subject tokens callers bring are refused: "+
			"each would kill the token exchanged before it, under its lease", name, role.Config)
	}
	return nil
}

const exchangeHelp = `
Exchanges a subject token the caller brings for a token of a token_exchange
role (RFC 8693): vault write <mount>/exchange/<role> subject_token=...
[subject_token_type=...]. The answer is leased like creds/<role>: its lease
lasts as long as the issued token.

Exchanges are cached in memory on the active node, keyed by the role and a
SHA-256 of the subject token (never the token itself), at most 1000 per mount
(least recently used first out), so a caller gets back only an exchange of
the very token it brought, and only while that token lives: until its exp
when it is a JWT, else for the role's exchange_cache_ttl (default 60s). They
are not written to storage: a restart or a failover costs one exchange more.
Roles with subject_role exchange another role's token instead; read
creds/<role> for them. A single_active_token config refuses these roles.
`

// exchangeResponses: exchange/<role>, the caller's token exchanged, leased.
func exchangeResponses() map[int][]framework.Response {
	return ok200("The exchanged token, leased for as long as it has left.", answerSchema(true))
}
