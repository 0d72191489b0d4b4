#!/usr/bin/env bash
# Builds ./caddy with every Groundgate module, through xcaddy, with pinned
# versions, when the sources changed since the last build. With "run",
# starts it on the demo Caddyfile afterwards.
#
#   ./xcaddy.sh          build ./caddy if it is missing or out of date
#   ./xcaddy.sh run      the same, then run the demo (gateway on 127.0.0.1:8080)
#   FORCE=1 ./xcaddy.sh  build even if ./caddy is up to date
#
# Once built, `./caddy run` alone starts the demo, offline.
set -euo pipefail
cd "$(dirname "$0")"

CADDY_VERSION=v2.11.9
XCADDY_VERSION=v0.4.5
STAMP=.caddy.build # fingerprint of what ./caddy was built from

if ! command -v go >/dev/null; then
  echo "xcaddy.sh: Go 1.26 or newer is required (https://go.dev/dl/)" >&2
  exit 1
fi
export CGO_ENABLED=${CGO_ENABLED:-0}

# fingerprint hashes everything the build reads: the pinned versions, the
# toolchain, the module's Go sources and go.sum, and the files they embed
# (sampledata/). Docs, tests and scripts do not count.
sha256=(sha256sum)
command -v sha256sum >/dev/null || sha256=(shasum -a 256) # macOS
fingerprint() {
  {
    echo "$CADDY_VERSION $XCADDY_VERSION CGO_ENABLED=$CGO_ENABLED"
    go env GOVERSION GOOS GOARCH
    find . -type f \( \( -name '*.go' -not -name '*_test.go' \) -o -name go.mod -o -name go.sum -o -path './sampledata/*' \) \
      -not -path './.git/*' -not -path '*/testdata/*' -print0 | LC_ALL=C sort -z | xargs -0 "${sha256[@]}"
  } | "${sha256[@]}" | cut -d' ' -f1
}

want=$(fingerprint)
if [[ -z "${FORCE:-}" && -x ./caddy && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "xcaddy.sh: ./caddy is up to date" >&2
else
  rm -f "$STAMP"
  go run "github.com/caddyserver/xcaddy/cmd/xcaddy@${XCADDY_VERSION}" build "${CADDY_VERSION}" \
    --output ./caddy \
    --with "github.com/groundgate/groundgate@v0.0.0=."
  echo "$want" >"$STAMP"
fi

if [[ "${1:-}" == "run" ]]; then
  if [[ -n "${AZURE_OPENAI_ENDPOINT:-}" && -z "${AZURE_OPENAI_API_KEY:-}" ]]; then
    echo "xcaddy.sh: AZURE_OPENAI_ENDPOINT is set but AZURE_OPENAI_API_KEY is not" >&2
    exit 1
  fi
  exec ./caddy run --config Caddyfile --adapter caddyfile
fi
