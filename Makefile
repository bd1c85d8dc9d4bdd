GO        ?= go
PLUGIN    := vault-plugin-idp-tokens
BIN_DIR   := bin

.PHONY: build test test-unit fmt vet

build:
	$(GO) build -trimpath -o $(BIN_DIR)/$(PLUGIN) ./cmd/$(PLUGIN)

# The README's test command: everything CI proves.
test: test-unit

test-unit:
	$(GO) test -race -count=1 ./...

fmt:
	gofmt -s -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
