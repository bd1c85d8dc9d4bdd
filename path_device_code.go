package idptokens

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathDeviceCode() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "device-code/" + framework.GenericNameRegex("role"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "device-code"},
		Fields: map[string]*framework.FieldSchema{
			"role": {Type: framework.TypeString, Description: "Name of a device_code role."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: strict(b.pathDeviceCodeWrite), Responses: deviceCodeResponses(), Summary: "Begin a device login: get the user code and the URL where a person enters it.",
				ForwardPerformanceStandby: true,
			},
		},
		HelpSynopsis:    "Begin a device authorization login (RFC 8628) for a role.",
		HelpDescription: strings.TrimSpace(deviceCodeHelp),
	}}
}

func (b *idpBackend) pathDeviceCodeWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	role, cfg, resp, err := b.roleAndConfig(ctx, req.Storage, name)
	if resp != nil || err != nil {
		return resp, err
	}
	if role.grant() != backend.GrantDeviceCode {
		return logical.ErrorResponse("role %q has grant_type %s; %sdevice-code/ is for device_code roles", name, role.GrantType, mountPrefix(req.MountPoint)), nil
	}
	h, err := b.holderOf(req, name, role, false)
	if err != nil {
		return b.credsError(name, err)
	}
	if err := b.canMint(); err != nil {
		return nil, err
	}
	da, err := cfg.endpoint.RequestDeviceAuthorization(ctx, role.scopes(cfg), role.ExtraParams)
	if err != nil {
		return b.credsError(name, err)
	}
	l := &deviceLogin{
		ID: newDeviceLoginID(), Role: name, Entity: h.entity, Config: role.Config, Fingerprint: cachedFingerprint(name, role, cfg), RoleVersion: roleVersion(role),
		DeviceCode: da.DeviceCode, UserCode: da.UserCode, VerificationURI: da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete, Created: b.now(), ExpiresAt: da.ExpiresAt, Interval: da.Interval,
	}
	b.devices.writeMu.Lock()
	err = storeDeviceLogin(ctx, req.Storage, l) // replaces the slot's previous login
	b.devices.writeMu.Unlock()
	if err != nil {
		return nil, err
	}
	b.devices.start(b, l.slot(), l.ID)
	b.Logger().Info("device login started", "role", name, "config", role.Config, "expires_at", l.ExpiresAt)
	data := map[string]any{
		"user_code":        l.UserCode,
		"verification_uri": l.VerificationURI,
		"expires_at":       l.ExpiresAt.UTC().Format(time.RFC3339),
		"interval":         int64(max(b.devices.wait(l), time.Second).Round(time.Second) / time.Second), // how often Vault polls, not a 0 an IdP sent
	}
	if l.VerificationURIComplete != "" {
		data["verification_uri_complete"] = l.VerificationURIComplete
	}
	return &logical.Response{Data: data}, nil
}

const deviceCodeHelp = `
Begins a device authorization login (RFC 8628) for a device_code role:
vault write -f <mount>/device-code/<role> asks the IdP for a device code and
answers user_code, verification_uri, verification_uri_complete (when the IdP
sends one), expires_at and interval. A person opens the URI and enters the
code; meanwhile Vault polls the token endpoint every interval (slow_down adds
5 s) on the active node, and once the login is done creds/<role> serves the
token, refreshing it while the IdP gives a refresh token.

The device code never leaves Vault. The pending login is kept in storage
(seal-wrapped), so polling goes on after a restart or a leader change (from
the periodic function within a minute, or at the next creds read). One login
per role: a new request replaces the pending one. Polling stops when the login
completes, is denied, expires, or the role is changed or deleted. While it is
pending, creds/<role> answers 400 with the user code and URL.
`

// deviceCodeResponses: device-code/<role>, a device login begun.
func deviceCodeResponses() map[int][]framework.Response {
	return ok200("What a person needs to complete the login; the device code stays in Vault.", map[string]*framework.FieldSchema{
		"user_code":                 respString("The code the person enters."),
		"verification_uri":          respString("Where the person enters it."),
		"verification_uri_complete": {Type: framework.TypeString, Description: "The URI with the code in it, when the IdP sent one."},
		"expires_at":                respString("When the login expires (RFC 3339, UTC)."),
		"interval":                  respSeconds("How often Vault polls the token endpoint"),
	})
}
