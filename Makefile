# kvhost — see README.md. The two commands a newcomer needs: `make run`, `make test`.
GO        ?= go
BIN       := bin
PLUGINS   := memory sqlite redis postgres
PROTOS    := $(shell find . -name '*.proto' -not -path './.git/*')
GOTEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: all build plugins policies test services run proto verify-proto bench peer-bench lint vet fmt clean

all: build

build: plugins policies
	$(GO) build -o $(BIN)/kvhost ./cmd/kvhost

policies:
	@GO=$(GO) ./policies/build.sh $(BIN)/policies >/dev/null

plugins:
	@mkdir -p $(BIN)
	@for p in $(PLUGINS); do $(GO) build -o $(BIN)/kvhost-plugin-$$p ./plugins/$$p/cmd/kvhost-plugin-$$p || exit 1; done

# The tests of the PostgreSQL and Redis backends need those servers:
# scripts/services.sh finds or installs and starts them, and says where.
# examples/boltkv is a module of its own (on this tree): vetted and tested too.
test: build vet
	@env="$$(scripts/services.sh)" || exit 1; eval "$$env"; \
	echo KVHOST_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test $(GOTEST_FLAGS) ./...; \
	KVHOST_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test $(GOTEST_FLAGS) ./... && \
	cd examples/boltkv && $(GO) vet ./... && KVHOST_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test $(GOTEST_FLAGS) ./...

services:
	@scripts/services.sh

vet:
	$(GO) vet ./...

run: build
	$(BIN)/kvhost serve

proto:
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
	@for f in $(PROTOS); do \
	  protoc -I $$(dirname $$f) \
	    --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" \
	    --plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
	    --go_out=paths=source_relative:$$(dirname $$f) \
	    --go-grpc_out=paths=source_relative:$$(dirname $$f) $$f || exit 1; \
	done

verify-proto: proto
	@git diff --exit-code -- '*.pb.go' || { echo "generated code is stale: run make proto and commit" >&2; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- '*.pb.go')" || { echo "untracked generated files: run make proto and commit" >&2; exit 1; }

bench: build
	@env="$$(scripts/services.sh)" || exit 1; eval "$$env"; \
	KVHOST_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchmem ./...

# The side-by-side comparison with etcd (docs/PERFORMANCE.md, "Peer
# comparison"); installs etcd-server if missing. Not part of test or bench.
# make peer-bench PEER_BENCH_FLAGS='-write docs/PERFORMANCE.md'
peer-bench:
	@scripts/peer-bench.sh $(PEER_BENCH_FLAGS)

lint: vet
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }

fmt:
	gofmt -w .

clean:
	rm -rf $(BIN)
