package idptokens

import (
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// The token answer in one table: the fields that creds/<role>,
// exchange/<role> (both leased) and token/<role> (unleased) hand out, from
// which the leased secret's fields and every response schema are made too.

// answerField is one field of the token answer.
type answerField struct {
	name string
	typ  framework.FieldType
	desc string
	// optional: only when the token has it (the value is then non-empty).
	optional bool
	// unleased: only on the read without a lease, which says itself how
	// long the token may be relied on.
	unleased bool
	value    func(a tokenAnswer) any
}

// tokenAnswer is a token handed out, how long its reader may rely on it,
// and how long until a read is handed the next one.
type tokenAnswer struct {
	tok       *backend.StoredToken
	hold      time.Duration
	rotatesIn time.Duration
}

// answerOf is the answer to a read that was served got.
func answerOf(got backend.Served) tokenAnswer {
	return tokenAnswer{tok: got.StoredToken, hold: got.Hold, rotatesIn: got.RotatesIn}
}

// wholeSeconds is d in whole seconds, never below minLease: a reader told
// 0 would be told the token is already gone (and Vault turns a lease of 0
// into the mount's default).
func wholeSeconds(d time.Duration) int64 {
	return int64(max(d.Truncate(time.Second), minLease) / time.Second)
}

var tokenAnswerFields = []answerField{
	{name: "access_token", typ: framework.TypeString, desc: "The access token.",
		value: func(a tokenAnswer) any { return a.tok.AccessToken }},
	{name: "token_type", typ: framework.TypeString, desc: "Its type, as the IdP named it (Bearer).",
		value: func(a tokenAnswer) any { return a.tok.TokenType }},
	{name: "expires_at", typ: framework.TypeString, desc: "When the token expires (RFC 3339, UTC).",
		value: func(a tokenAnswer) any { return a.tok.Expiry.UTC().Format(time.RFC3339) }},
	{name: "scope", typ: framework.TypeString, desc: "The scopes granted, space-separated.",
		value: func(a tokenAnswer) any { return a.tok.Scope }},
	{name: "expires_from", typ: framework.TypeString, desc: "Where the lifetime came from: expires_in, jwt_exp (the access token's exp claim) or default_token_ttl.",
		value: func(a tokenAnswer) any { return string(a.tok.ExpiresFrom) }},
	{name: "id_token", typ: framework.TypeString, optional: true, desc: "The OpenID Connect ID token, when the IdP sent one.",
		value: func(a tokenAnswer) any { return a.tok.IDToken }},
	{name: "issued_token_type", typ: framework.TypeString, optional: true, desc: "token_exchange: the type of the token issued (RFC 8693).",
		value: func(a tokenAnswer) any { return a.tok.IssuedTokenType }},
	{name: "expires_in", typ: framework.TypeInt, unleased: true,
		desc:  "Seconds the token may be relied on: its remaining life less a second, or on a single_active_token config until the next token may be minted. Never less than 1.",
		value: func(a tokenAnswer) any { return wholeSeconds(a.hold) }},
	// The three fields of a rotating secret (the database engine's static
	// roles), by which Vault Agent's templates and the Vault Secrets
	// Operator re-read an unleased answer when it changes: consul-template
	// sleeps ttl + 1 s when rotation_period is present and ttl is an
	// integer; VSO (allowStaticCreds) syncs ttl + 0.5 s later and wants
	// last_vault_rotation to change with every new token.
	{name: "ttl", typ: framework.TypeInt, unleased: true,
		desc: "Seconds until a read is handed the next token: a read ttl + 1 s from now is handed it while this one still has its margin left " +
			"(on a single_active_token config ttl is the holding period, and the next token is minted a second after it). Never less than 1. " +
			"With rotation_period, Vault Agent templates and VSO re-read by it.",
		value: func(a tokenAnswer) any { return wholeSeconds(a.rotatesIn) }},
	{name: "rotation_period", typ: framework.TypeInt, unleased: true,
		desc:  "The token's lifetime in seconds (at least 1): the answer is a rotating secret, which Vault Agent templates and VSO re-read after ttl.",
		value: func(a tokenAnswer) any { return wholeSeconds(a.tok.Expiry.Sub(a.tok.ObtainedAt)) }},
	{name: "last_vault_rotation", typ: framework.TypeString, unleased: true,
		desc:  "When the current token was fetched (RFC 3339, UTC, to the nanosecond): it changes with every new token.",
		value: func(a tokenAnswer) any { return a.tok.ObtainedAt.UTC().Format(time.RFC3339Nano) }},
}

// answerData is the answer's data: leased (creds, exchange) or not (token).
func answerData(a tokenAnswer, leased bool) map[string]any {
	data := map[string]any{}
	for _, f := range tokenAnswerFields {
		if f.unleased && leased {
			continue
		}
		v := f.value(a)
		if f.optional && v == "" {
			continue
		}
		data[f.name] = v
	}
	return data
}

// answerSchema is what answerData answers, for the OpenAPI document and
// the leased secret's fields.
func answerSchema(leased bool) map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, f := range tokenAnswerFields {
		if f.unleased && leased {
			continue
		}
		out[f.name] = &framework.FieldSchema{Type: f.typ, Description: f.desc, Required: !f.optional}
	}
	return out
}
