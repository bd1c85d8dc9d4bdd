// A real, third-party OpenID Provider for the plugin's integration tests:
// panva/oidc-provider (OpenID Certified), configured for loopback use only.
//
// Configuration (environment variable, or first argument for the port):
//   OIDC_PORT / argv[2]      port on 127.0.0.1 (default 0 = a free port)
//   OIDC_HOST                listen address (default 127.0.0.1)
//   OIDC_ACCESS_TOKEN_TTL    access-token lifetime in seconds (default 20)
//   OIDC_CLIENT_SECRET       secret of every confidential client (default "test-secret")
//   OIDC_REDIRECT_URI        redirect_uri(s) of the authorization-code client, comma
//                            separated (default http://127.0.0.1:8250/callback)
//   OIDC_RESOURCE            resource indicator / audience of issued access tokens
//                            (default urn:idp-tokens:api)
//   OIDC_JWT_CLIENT_JWKS     public JWK Set (JSON) of jwt-client; or OIDC_JWT_CLIENT_JWKS_FILE,
//                            a file holding it. Without either, jwt-client does not exist.
//   OIDC_JWKS_URI_CLIENT_URI jwks_uri of jwks-uri-client: the provider fetches the client's public
//                            keys from it (the engine's <mount>/jwks/<config>). Without it,
//                            jwks-uri-client does not exist.
//   OIDC_JWKS_URI_CLIENT_ALG token_endpoint_auth_signing_alg of jwks-uri-client (default ES256).
//
// Clients:
//   basic-client  client_secret_basic  client_credentials, refresh_token
//   post-client   client_secret_post   client_credentials, refresh_token
//   code-client   client_secret_basic  authorization_code, refresh_token (login with
//                 any user name and password on the dev interaction form)
//   jwt-client    private_key_jwt      client_credentials (keys from OIDC_JWT_CLIENT_JWKS)
//   jwks-uri-client private_key_jwt    client_credentials and the RFC 7523 jwt-bearer grant
//                 (registered below), keys fetched from OIDC_JWKS_URI_CLIENT_URI. The grant's
//                 assertion must be signed by one of those keys (verified as oidc-provider
//                 verifies client assertions: its cached copy, fetched again when no key matches
//                 and the copy is older than max(60 s, the response's max-age)), iss the client,
//                 aud the issuer or the token endpoint; the token's introspection shows
//                 assertion_sub.
//
// Every token request with a client assertion or a grant assertion prints one line to stdout:
//   token-request: {"at":<ms since epoch>,"client":..,"grant":..,"status":..,"client_kid":..,"grant_kid":..}
//   exchange-client client_secret_basic  RFC 8693 token exchange (registered below): the
//                 subject_token (and actor_token) must be an active access token of this
//                 provider (found with its own AccessToken / ClientCredentials models); the
//                 one audience it issues for is OIDC_EXCHANGE_AUDIENCE (default
//                 urn:idp-tokens:downstream). The issued token's introspection shows
//                 aud, subject_client (the subject token's client or account) and act.sub.
//   device-client client_secret_basic  RFC 8628 device authorization grant (features.deviceFlow:
//                 <issuer>/device/auth, the user enters the code at <issuer>/device and logs
//                 in with any user name on the dev interaction form), refresh_token
//
// Once listening it prints exactly one line to stdout:
//   issuer: http://127.0.0.1:<port>
// Token endpoint: <issuer>/token; introspection: <issuer>/token/introspection.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const host = process.env.OIDC_HOST || '127.0.0.1';
const port = Number(process.argv[2] || process.env.OIDC_PORT || 0);
const ttl = Number(process.env.OIDC_ACCESS_TOKEN_TTL || 20);
const secret = process.env.OIDC_CLIENT_SECRET || 'test-secret';
const redirectURIs = (process.env.OIDC_REDIRECT_URI || 'http://127.0.0.1:8250/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);
const resource = process.env.OIDC_RESOURCE || 'urn:idp-tokens:api';
const apiScopes = 'api:read api:write';
const exchangeAudience = process.env.OIDC_EXCHANGE_AUDIENCE || 'urn:idp-tokens:downstream';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const jwtClientJWKS = process.env.OIDC_JWT_CLIENT_JWKS
  || (process.env.OIDC_JWT_CLIENT_JWKS_FILE && fs.readFileSync(process.env.OIDC_JWT_CLIENT_JWKS_FILE, 'utf8'));
const jwksURIClientURI = process.env.OIDC_JWKS_URI_CLIENT_URI;
const jwksURIClientAlg = process.env.OIDC_JWKS_URI_CLIENT_ALG || 'ES256';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid port ${port}`);
  process.exit(2);
}
if (!(ttl > 0)) {
  console.error(`invalid OIDC_ACCESS_TOKEN_TTL ${process.env.OIDC_ACCESS_TOKEN_TTL}`);
  process.exit(2);
}

// The issuer has to name the real port, so listen first and attach the provider after.
const server = http.createServer((req, res) => {
  res.statusCode = 503;
  res.end('starting');
});

server.listen(port, host, () => {
  const { port: actual } = server.address();
  const issuer = `http://${host}:${actual}`;

  const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ format: 'jwk' });

  const confidential = {
    client_secret: secret,
    scope: `openid offline_access ${apiScopes}`,
    redirect_uris: [],
    response_types: [],
  };

  const provider = new Provider(issuer, {
    clients: [
      {
        ...confidential,
        client_id: 'basic-client',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials', 'refresh_token'],
      },
      {
        ...confidential,
        client_id: 'post-client',
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['client_credentials', 'refresh_token'],
      },
      {
        ...confidential,
        client_id: 'code-client',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: redirectURIs,
      },
      {
        ...confidential,
        client_id: 'device-client',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      },
      {
        ...confidential,
        client_id: 'exchange-client',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: [TOKEN_EXCHANGE],
      },
      ...(jwtClientJWKS ? [{
        client_id: 'jwt-client',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: JSON.parse(jwtClientJWKS),
        scope: `openid ${apiScopes}`,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      }] : []),
      ...(jwksURIClientURI ? [{
        client_id: 'jwks-uri-client',
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: jwksURIClientAlg,
        jwks_uri: jwksURIClientURI,
        scope: `openid ${apiScopes}`,
        grant_types: ['client_credentials', JWT_BEARER],
        redirect_uris: [],
        response_types: [],
      }] : []),
    ],
    jwks: { keys: [{ ...signingKey, use: 'sig', kid: 'test-key' }] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
    claims: { openid: ['sub'] },
    // Any user name logs in on the dev interaction form; it becomes the subject.
    async findAccount(_ctx, id) {
      return { accountId: id, async claims() { return { sub: id }; } };
    },
    pkce: { required: () => false },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      // Without a resource indicator oidc-provider issues client_credentials tokens
      // only for its own userinfo; bind every access token to one API resource.
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== resource) {
            throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          }
          return {
            audience: resource,
            scope: apiScopes,
            accessTokenTTL: ttl,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
    ttl: {
      AccessToken: ttl,
      ClientCredentials: ttl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
    },
    // The token exchange grant's claims about subject and actor (RFC 8693 4.1).
    async extraTokenClaims(ctx) {
      return ctx.exchangeClaims;
    },
    // Consent for offline_access is given on the dev form; always issue refresh tokens
    // to clients allowed the grant when offline_access was granted.
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
  });

  // RFC 8693 token exchange, which oidc-provider does not have built in.
  const activeAccessToken = async (value) => {
    if (!value) return undefined;
    const token = (await provider.AccessToken.find(value)) || (await provider.ClientCredentials.find(value));
    return token && token.isValid ? token : undefined;
  };
  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx, next) => {
    const { params, client } = ctx.oidc;
    const { InvalidRequest, InvalidGrant, InvalidTarget } = errors;
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      throw new InvalidRequest(`unsupported subject_token_type ${params.subject_token_type}`);
    }
    const subject = await activeAccessToken(params.subject_token);
    if (!subject) throw new InvalidGrant('subject_token is not an active access token');
    let act;
    if (params.actor_token !== undefined) {
      if (params.actor_token_type !== ACCESS_TOKEN_TYPE) throw new InvalidRequest('actor_token_type must be the access token type');
      const actor = await activeAccessToken(params.actor_token);
      if (!actor) throw new InvalidGrant('actor_token is not an active access token');
      act = { sub: actor.accountId || actor.clientId };
    }
    const audiences = [].concat(params.audience || []);
    if (audiences.length !== 1 || audiences[0] !== exchangeAudience) {
      throw new InvalidTarget(`audience must be ${exchangeAudience}`);
    }
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new InvalidRequest(`unsupported requested_token_type ${params.requested_token_type}`);
    }
    // extraTokenClaims (below) puts these in the issued token.
    ctx.exchangeClaims = { subject_client: subject.accountId || subject.clientId, ...(act ? { act } : {}) };
    const token = new provider.ClientCredentials({ client, scope: subject.scope });
    token.resourceServer = new provider.ResourceServer(exchangeAudience, {
      audience: exchangeAudience, scope: apiScopes, accessTokenTTL: ttl, accessTokenFormat: 'opaque',
    });
    ctx.oidc.entity('ClientCredentials', token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope: token.scope || undefined,
    };
    // oidc-provider 8 passes next; 9 calls the handler with ctx alone, and calling
    // an absent next answers every exchange 500 server_error.
    if (typeof next === 'function') await next();
  }, ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'audience', 'scope'], ['audience']);

  // RFC 7523 2.1 jwt-bearer, which oidc-provider does not have built in: the assertion is
  // verified against the client's own keys (its jwks_uri), as its client assertions are.
  provider.registerGrantType(JWT_BEARER, async (ctx, next) => {
    const { params, client } = ctx.oidc;
    const { InvalidGrant } = errors;
    const parts = String(params.assertion || '').split('.');
    if (parts.length !== 3) throw new InvalidGrant('assertion is not a JWS');
    let header;
    let payload;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url'));
      payload = JSON.parse(Buffer.from(parts[1], 'base64url'));
    } catch {
      throw new InvalidGrant('assertion is not a JWS');
    }
    const store = client.asymmetricKeyStore;
    const keysFor = () => store.selectForVerify({ alg: header.alg, kid: header.kid });
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    const signature = Buffer.from(parts[2], 'base64url');
    const verifyWith = (key) => {
      switch (header.alg) {
        case 'ES256': return crypto.verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, signature);
        case 'RS256': return crypto.verify('sha256', signed, key, signature);
        case 'PS256': return crypto.verify('sha256', signed, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature);
        case 'EdDSA': return crypto.verify(null, signed, key, signature);
        default: return false;
      }
    };
    const verifies = async () => {
      for (const key of keysFor()) {
        try {
          if (verifyWith(await store.getKeyObject(key, header.alg))) return true;
        } catch {}
      }
      return false;
    };
    if (store.stale()) await store.refresh();
    let ok = await verifies();
    if (!ok && store.stale()) {
      await store.refresh();
      ok = await verifies();
    }
    if (!ok) throw new InvalidGrant('assertion signature does not verify with the client\'s keys');
    const now = Math.floor(Date.now() / 1000);
    const audiences = [].concat(payload.aud || []);
    if (payload.iss !== client.clientId) throw new InvalidGrant('assertion iss must be the client');
    if (!payload.sub) throw new InvalidGrant('assertion has no sub');
    if (!audiences.includes(provider.issuer) && !audiences.includes(`${provider.issuer}/token`)) throw new InvalidGrant('assertion aud must name this server');
    if (!(payload.exp > now) || payload.exp > now + 3600) throw new InvalidGrant('assertion exp is past or too far');
    ctx.exchangeClaims = { assertion_sub: payload.sub };
    const token = new provider.ClientCredentials({ client, scope: params.scope || undefined });
    token.resourceServer = new provider.ResourceServer(resource, {
      audience: resource, scope: apiScopes, accessTokenTTL: ttl, accessTokenFormat: 'opaque',
    });
    ctx.oidc.entity('ClientCredentials', token);
    const value = await token.save();
    ctx.body = {
      access_token: value, token_type: 'Bearer', expires_in: token.expiration, scope: token.scope || undefined,
    };
    if (typeof next === 'function') await next();
  }, ['assertion', 'scope']);

  // One line for each token request bearing an assertion: who, which grant, the answer's
  // status, and the kid of each assertion (the tests match them with the JWKS served).
  const kidOf = (jws) => {
    try {
      return JSON.parse(Buffer.from(String(jws).split('.')[0], 'base64url')).kid;
    } catch {
      return undefined;
    }
  };
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method !== 'POST' || ctx.path !== '/token') return;
    const p = { ...(ctx.oidc?.body || {}), ...(ctx.oidc?.params || {}) };
    if (!p.client_assertion && !p.assertion) return;
    console.log(`token-request: ${JSON.stringify({
      at: Date.now(),
      client: ctx.oidc?.client?.clientId,
      grant: p.grant_type,
      status: ctx.status,
      client_kid: p.client_assertion ? kidOf(p.client_assertion) : undefined,
      grant_kid: p.assertion ? kidOf(p.assertion) : undefined,
    })}`);
  });

  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  const callback = provider.callback();
  server.removeAllListeners('request');
  server.on('request', callback);

  console.log(`issuer: ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
