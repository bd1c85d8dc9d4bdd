GO        ?= go
PLUGIN    := vault-plugin-idp-tokens
BIN_DIR   := bin

.PHONY: build test test-unit test-integration fmt vet dev dev-stop

build:
	$(GO) build -trimpath -o $(BIN_DIR)/$(PLUGIN) ./cmd/$(PLUGIN)

# The README's test command: everything CI proves (unit tests, then a real Vault).
test: test-unit test-integration

test-unit:
	$(GO) test -race -count=1 ./...

fmt:
	gofmt -s -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/

# Integration tests: a real Vault server (scripts/install-vault.sh builds and caches it),
# Vault Agent, the plugin binary, in-process fake IdPs and oidc-provider under node.
test-integration:
	$(GO) test -tags integration -count=1 -timeout 20m ./integration/

# A Vault dev server with the plugin at idp/ and the demo IdP; Ctrl-C or dev-stop ends it.
dev:
	./scripts/dev.sh

dev-stop:
	./scripts/dev.sh stop
