#!/usr/bin/env bash
# OpenAPI-driven fuzzing: starts `glue serve` (the debug build from `cargo test`) on a fresh
# SQLite database and runs schemathesis against /openapi.json with a bounded number of
# examples. Fails on any 5xx, undocumented status, wrong content type, bad header or schema
# violation.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/ci-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --quiet --bin glue
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
./target/debug/glue keys generate --out "$work/keys" > /dev/null
export GLUE_ENV=test DATABASE_URL="$work/glue.sqlite3" GLUE__SERVER__PORT="$port" \
  GLUE__OAUTH__PRIVATE_KEY_PATH="$work/keys/private.pem" RUST_LOG=warn
./target/debug/glue serve > "$work/serve.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fs "$base/readyz" > /dev/null && break
  sleep 0.1
done
token=$(curl -fs -X POST "$base/agent-access-tokens" -H 'Content-Type: application/vnd.api+json' \
  -d '{"data":{"type":"agent-access-tokens","attributes":{"username":"admin@spryker.com","password":"change123"}}}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["attributes"]["accessToken"])')

"$venv/bin/schemathesis" run "$base/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples 40 --seed 20261128 --workers 2 --request-timeout 10 \
  -H "X-Agent-Authorization: Bearer $token" \
  --no-color

# A 500 is logged with its cause under the target glue::error.
if grep -q "glue::error\] 500" "$work/serve.log"; then
  echo "the service logged internal errors during the run:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
