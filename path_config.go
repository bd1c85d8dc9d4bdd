package idptokens

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathConfig() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "config/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "configs"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: listUnder(configPrefix), Summary: "List IdP connections.", Responses: listResponses("configs")},
			},
			HelpSynopsis: "List IdP connections.",
		},
		{
			Pattern:        "config/" + framework.GenericNameRegex("name"),
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "config"},
			Fields:         configFields(),
			ExistenceCheck: b.configExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: strict(b.pathConfigWrite), Summary: "Create an IdP connection.", Responses: noContent()},
				logical.UpdateOperation: &framework.PathOperation{Callback: strict(b.pathConfigWrite), Summary: "Update an IdP connection; omitted secrets are kept.", Responses: noContent()},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathConfigRead, Summary: "Read an IdP connection (secrets show only as *_set).", Responses: configReadResponses()},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathConfigDelete, Summary: "Delete an IdP connection and its cached tokens.", Responses: noContent()},
			},
			HelpSynopsis:    "Configure a connection to one identity provider.",
			HelpDescription: strings.TrimSpace(configHelp),
		},
	}
}

func (b *idpBackend) configExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	e, err := loadConfigEntry(ctx, req.Storage, d.Get("name").(string))
	return e != nil, err
}

func (b *idpBackend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	e, err := loadConfigEntry(ctx, req.Storage, d.Get("name").(string))
	if err != nil || e == nil {
		return nil, err
	}
	data := readData(e)
	if data["keys"], err = b.configKeysView(ctx, req.Storage, d.Get("name").(string), e); err != nil {
		return nil, err
	}
	return &logical.Response{Data: data}, nil
}

func (b *idpBackend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	old, err := loadConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	e := &configEntry{Provider: backend.ProviderOAuth2}
	if old != nil {
		*e = *old
		e.DiscoveredTokenURL = "" // read again by this write's discovery
	}
	if resp := applyConfigFields(e, d); resp != nil {
		return resp, nil
	}
	if resp := applyServiceAccountKey(e, d); resp != nil {
		return resp, nil
	}
	keyWarnings, resp := adoptKeyFields(old, e, d)
	if resp != nil {
		return resp, nil
	}
	// Each value is checked, naming its field, before the rules that
	// compare it with the stored config.
	if resp := checkEndpointFields(e); resp != nil {
		return resp, nil
	}
	if resp := requireSecretsOnURLChange(old, e, d); resp != nil {
		return resp, nil
	}
	provider, err := backend.LookupProvider(e.Provider)
	if err != nil {
		return fieldError("provider", "%v", err), nil
	}
	applyPresetDefaults(e, provider)
	if resp := validateConfig(e, provider); resp != nil {
		return resp, nil
	}
	if resp, err := b.checkConfigHosts(ctx, req.Storage, e); resp != nil || err != nil {
		return resp, err
	}
	if old == nil || identityChanged(old, e) {
		e.Generation = newGeneration()
	}
	st, err := b.newConfigState(name, e)
	if err != nil {
		return logical.ErrorResponse("%v", err), nil // it names its field
	}
	// Discovery first: a client is compared at its discovered token
	// endpoint too.
	if resp := b.discoverAtWrite(ctx, st); resp != nil {
		return resp, nil
	}
	if resp, err := b.checkSingleActiveClient(ctx, req.Storage, st); resp != nil || err != nil {
		return resp, err
	}
	if err := b.enterClientIndex(ctx, req.Storage, name, e); err != nil {
		return nil, err
	}
	if err := b.storeFirstKey(ctx, req.Storage, name, old, e); err != nil {
		return nil, err
	}
	if err := b.storeConfig(ctx, req.Storage, st); err != nil {
		return nil, err
	}
	b.leaveClientIndex(ctx, req.Storage, name, old, e)
	if err := b.dropKeysAfter(ctx, req.Storage, name, old, e); err != nil {
		return nil, err
	}
	resp, err = b.afterConfigChange(ctx, req.Storage, old, st)
	return withWarnings(resp, keyWarnings), err
}

// afterConfigChange drops the tokens of a former client or operator, which
// must not be served again, and says so: for a single-active config the
// next read then mints, and the IdP invalidates tokens under live leases.
func (b *idpBackend) afterConfigChange(ctx context.Context, s logical.Storage, old *configEntry, st *configState) (*logical.Response, error) {
	if old == nil {
		return nil, nil
	}
	oldSingle := old.singleActive(providerOrDefault(old.Provider))
	if old.Generation == st.entry.Generation && oldSingle == st.singleActive {
		return b.warnSharedScopesChange(ctx, s, old, st)
	}
	if err := b.dropTokensOfConfig(ctx, s, st.name); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("the cached tokens of config %q were dropped (its client, operator, endpoint or single_active_token changed)", st.name)
	if !st.singleActive && !oldSingle {
		// Tokens of other requests stay valid at such an IdP.
		return &logical.Response{Warnings: []string{what + ": the next read mints new ones"}}, nil
	}
	return sharedTokenWarning(what), nil
}

// warnSharedScopesChange: new default scopes change what the roles that
// inherit them ask, so a single-active config's next read mints a new token
// and the IdP kills the current one: the answer says so.
func (b *idpBackend) warnSharedScopesChange(ctx context.Context, s logical.Storage, old *configEntry, st *configState) (*logical.Response, error) {
	if !st.singleActive || slices.Equal(old.Scopes, st.entry.Scopes) {
		return nil, nil
	}
	roles, err := b.rolesOf(ctx, s, st.name)
	if err != nil {
		return nil, err
	}
	for _, r := range roles {
		if len(r.Scopes) == 0 {
			return sharedTokenWarning(fmt.Sprintf("config %q's roles now ask for other scopes than its shared token answers", st.name)), nil
		}
	}
	return nil, nil
}

func (b *idpBackend) pathConfigDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	// One listing of the roles serves the revocation, the drop and the warning.
	users, err := b.rolesOf(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	revoke, err := b.tokensOfConfigToRevoke(ctx, req.Storage, name, users)
	if err != nil {
		return nil, err
	}
	old, err := loadConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if err := b.dropTokensOfRoles(ctx, req.Storage, name, users); err != nil {
		return nil, err
	}
	if err := req.Storage.Delete(ctx, configPrefix+name); err != nil {
		return nil, err
	}
	if err := req.Storage.Delete(ctx, keysPrefix+name); err != nil {
		return nil, err
	}
	// The index entries go only now that storage no longer holds the config.
	b.leaveClientIndex(ctx, req.Storage, name, old, nil)
	// Best effort: a failure is logged and does not undo the delete.
	b.revokeDropped(ctx, revoke)
	b.dropConfigState(name)
	b.metrics.DropConfig(name)
	if len(users) == 0 {
		return nil, nil
	}
	roles := slices.Sorted(maps.Keys(users))
	return &logical.Response{Warnings: []string{fmt.Sprintf(
		"roles %s name config %q: their reads fail until a config of that name is written again, and the tokens they held were dropped (revoked at the IdP where it has a revocation endpoint), also under leases handed out before this delete",
		strings.Join(roles, ", "), name)}}, nil
}

const configHelp = `
A config is one connection to an identity provider: its token endpoint, the
OAuth2 client, and for the password grant the resource owner. provider picks a
preset that fills what the IdP's document fixes (grant, client authentication,
default token_url and scopes, error format); every default can be overridden.

Secrets (client_secret, password, security_key, private_key, tls_client_key)
are write-only: a read shows client_secret_set and so on. An update that omits a secret keeps it, except
that changing an endpoint URL requires the secrets to be written again.

provider=google-service-account takes a service-account key file
(credentials=@key.json) for the jwt_bearer grant; client_auth=none sends no
client authentication and is for jwt_bearer and device_code roles only.
device_authorization_url is the RFC 8628 endpoint of device_code roles.
`

// configReadResponses: config/<name> read. Secrets show only as *_set.
func configReadResponses() map[int][]framework.Response {
	fields := configReadSchema()
	fields["keys"] = keyViewSchema()
	return ok200("The connection, without its secrets.", fields)
}
