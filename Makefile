GO        ?= go
PLUGIN    := vault-plugin-idp-tokens
BIN_DIR   := bin

.PHONY: build version release test test-deps lint test-unit test-property fuzz-short fuzz test-integration fmt vet dev dev-stop bench bench-go

# Every build is stamped with the VERSION file (scripts/build.sh), which is
# what the binary reports to Vault and answers to -version.
build:
	GO=$(GO) ./scripts/build.sh $(BIN_DIR)/$(PLUGIN)

version:
	@./scripts/version.sh

# Reproducible cross builds for linux and darwin, amd64 and arm64, with
# dist/SHA256SUMS for `vault plugin register -sha256`.
release:
	GO=$(GO) ./scripts/release.sh dist

# The README's test command: everything CI proves (unit tests, then a real Vault).
test: test-deps lint test-unit test-property fuzz-short test-integration

# What the integration tests run, installed before any test starts so that
# no test timeout pays for it: the Vault binary (built from its Go module,
# 5-10 minutes the first time, then cached), oidc-provider (npm ci) and
# Ory Hydra (built from its Go module, about 2-3 minutes once).
# Vault and Hydra build side by side: each build's downloads and links leave
# cores idle that the other's compiles use.
test-deps:
	@./scripts/install-test-idp.sh >/dev/null
	@./scripts/install-vault.sh >/dev/null & vault=$$!; \
	./scripts/install-hydra.sh >/dev/null; hydra=$$?; \
	wait $$vault && exit $$hydra

test-unit:
	$(GO) test -race -count=1 ./...

# The lease promise as a property (path_creds_property_test.go) over many more
# random sequences than the -race run's 100; rapid prints the seed of a failure
# (replay with RAPID_SEED=<seed>) and shrinks it to a minimal sequence.
PROPERTY_CHECKS ?= 5000
test-property:
	RAPID_CHECKS=$(PROPERTY_CHECKS) RAPID_STEPS=50 $(GO) test -count=1 -v -run 'Invariants$$' .

# Formatting and vet, failing on any finding.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/

# Every fuzz target for a short while; `make fuzz FUZZTIME=5m` for longer.
fuzz-short:
	FUZZTIME=10s ./scripts/fuzz.sh

FUZZTIME ?= 5m
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

fmt:
	gofmt -s -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/

# Integration tests: a real Vault server, Vault Agent, the plugin binary, in-process
# fake IdPs, oidc-provider under node and Ory Hydra (all from test-deps). Four at a
# time: most of them wait on clocks (token lives, key rotations), not on the CPU.
test-integration: test-deps
	$(GO) test -tags integration -count=1 -timeout 20m -parallel 4 ./integration/

# A Vault dev server with the plugin at idp/ and the demo IdP; Ctrl-C or dev-stop ends it.
dev:
	./scripts/dev.sh

dev-stop:
	./scripts/dev.sh stop

# The real-Vault benchmark (docs/benchmarks.md): this plugin beside a floor plugin on a
# Vault dev server and on a single-node raft Vault (with Vault Proxy and Vault Agent), and
# 10,000 people's own tokens on both; about twenty minutes on 2 cores; rewrites the results
# section of docs/benchmarks.md.
bench:
	$(GO) run ./bench

# In-process benchmarks of the cache-hit read and memory per cached token (a role's, a person's).
bench-go:
	$(GO) test -run '^$$' -bench 'Creds' -benchmem .
	$(GO) test -run '^$$' -bench 'CachedTokenMemory' -benchtime=10000x .
