package idptokens

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// pathMetrics is the engine's telemetry: an ordinary authenticated path, so
// reading it takes a token whose policy grants read on <mount>/metrics.
// The counters are those of the plugin process that answers (one per Vault
// node); they start at zero when the plugin starts.
func (b *idpBackend) pathMetrics() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "metrics$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "metrics"},
		Fields: map[string]*framework.FieldSchema{
			"format": {Type: framework.TypeString, Default: "json", Query: true, Description: `"json" (default) or "prometheus" (text exposition format 0.0.4, returned as the raw HTTP body).`},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathMetricsRead, Summary: "Read the engine's counters: IdP requests, cache hits and misses, IdP latency, cached tokens.", Responses: metricsResponses()},
		},
		HelpSynopsis:    "Telemetry of the engine, as JSON or in the Prometheus text format.",
		HelpDescription: strings.TrimSpace(metricsHelp),
	}}
}

func (b *idpBackend) pathMetricsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	format := strings.ToLower(strings.TrimSpace(d.Get("format").(string)))
	if format != "json" && format != "prometheus" {
		return logical.ErrorResponse(`format must be "json" or "prometheus"`), nil
	}
	// Series of configs that no longer exist (deleted through another node,
	// or counted by a request in flight while the config was deleted) go.
	configs, err := req.Storage.List(ctx, configPrefix)
	if err != nil {
		return nil, err
	}
	b.metrics.Retain(configs)
	snap := b.metrics.Snapshot(b.tokens.Cached())
	if format == "json" {
		return &logical.Response{Data: map[string]any{
			"configs":       snap.Configs,
			"cached_tokens": snap.CachedTokens,
		}}, nil
	}
	var buf bytes.Buffer
	if err := snap.WritePrometheus(&buf); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType: backend.PrometheusContentType,
		logical.HTTPRawBody:     buf.Bytes(),
		logical.HTTPStatusCode:  http.StatusOK,
	}}, nil
}

const metricsHelp = `
Counters of this plugin process (one per Vault node, reset when the plugin
restarts), labelled by config: token requests to the IdP by grant and outcome
(success, refused, error, timeout), retries, refreshes and refresh fallbacks,
authorization-code logins, creds and token reads served from the cache
(hits) or not (misses), in total and per path (reads_total{path="creds"} and
{path="token"}), a histogram of IdP latency, and the number of cached tokens. No
secrets and no tokens appear, and there is no per-role series: the number of
series grows with the number of configs only.

With format=prometheus the answer is the Prometheus text format (0.0.4) as the
raw HTTP body, for a scrape job with a Vault token as its bearer token.
`

// metricsResponses: metrics read, JSON by default.
func metricsResponses() map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusOK: {
		{Description: "Counters as JSON (format=json).", Fields: map[string]*framework.FieldSchema{
			"configs":       {Type: framework.TypeMap, Description: "Counters per config.", Required: true},
			"cached_tokens": {Type: framework.TypeInt, Description: "Number of tokens in the cache.", Required: true},
		}},
		{Description: "The Prometheus text format 0.0.4 (format=prometheus).", MediaType: "text/plain; version=0.0.4"},
	}}
}
