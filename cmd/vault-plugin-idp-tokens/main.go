// Command vault-plugin-idp-tokens serves the IdP token secrets engine to Vault.
//
// `vault-plugin-idp-tokens -version` prints the version stamped at build
// time (the VERSION file, through -ldflags -X) and exits.
package main

import (
	"fmt"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	idptokens "github.com/idp-tokens/vault-plugin-idp-tokens"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	// -version joins Vault's own plugin flags in one set, so that the flags
	// Vault passes keep parsing exactly as before.
	version := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if *version {
		fmt.Println(idptokens.Version)
		return
	}
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: idptokens.Factory,
		// Vault 1.12+ uses AutoMTLS; the TLS provider is only for older servers.
		TLSProviderFunc: api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	})
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
