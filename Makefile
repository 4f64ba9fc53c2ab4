# stanza: thin targets; the logic lives in Go.
GO ?= go

.PHONY: build run test lint proto clean

build:
	$(GO) build ./...

test:
	$(GO) test -count=1 ./...

lint:
	$(GO) test -count=1 -run 'TestLint|TestImportRules' .

proto:
	protoc --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" --go_out=. --go_opt=paths=source_relative statemachine/pb/protocol.proto statemachine/pb/command.proto

clean:
	rm -rf ./bin
