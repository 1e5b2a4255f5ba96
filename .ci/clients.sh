#!/usr/bin/env bash
# The integrator's view, in CI. Starts `glue serve` (the debug build) on a fresh SQLite database
# with a real agent and customer, then:
#   1. @redocly/cli lints the served /openapi.json (recommended rules; any error fails);
#   2. openapi-typescript + openapi-fetch: a client generated from /openapi.json runs the agent
#      flow, type-checked by tsc --strict, and jose verifies a token from the discovery document;
#   3. openapi-python-client: a client generated from /openapi.json runs the agent flow,
#      type-checked by mypy --strict;
#   4. headless Chromium (Debian's chromium, playwright-core) runs the flow cross-origin and
#      sees a refused origin refused.
# Tool versions are pinned in .ci/clients/package-lock.json and requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
clients=$root/.ci/clients

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cargo build --quiet --bin glue
glue=$root/target/debug/glue
port=$(free_port)
page_port=$(free_port)
other_port=$(free_port)
base="http://127.0.0.1:$port"

export GLUE_ENV=test DATABASE_URL="$work/glue.sqlite3" RUST_LOG=warn \
  GLUE__SERVER__PORT="$port" GLUE__GLUE__BASE_URL="$base" \
  GLUE__GLUE__CORS_ALLOWED_ORIGINS="http://127.0.0.1:$page_port" \
  GLUE__OAUTH__PRIVATE_KEY_PATH="$work/keys/private.pem"
"$glue" keys generate --out "$work/keys" > /dev/null
"$glue" migrate > /dev/null

export AGENT_USERNAME="integrator.agent@example.com" AGENT_PASSWORD="integrator-agent-pw-1"
export CUSTOMER_EMAIL="integrator.customer@example.com"
printf '%s\n' "$AGENT_PASSWORD" |
  "$glue" agent create --username "$AGENT_USERNAME" --first-name Ida --last-name Agent --password-stdin > /dev/null
"$glue" customer create --email "$CUSTOMER_EMAIL" --first-name Carl --last-name Customer > /dev/null

"$glue" serve > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fs "$base/readyz" > /dev/null && break
  sleep 0.1
done
curl -fs "$base/readyz" > /dev/null
export GLUE_BASE="$base"

echo "-- npm ci (.ci/clients)"
(cd "$clients" && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
bin=$clients/node_modules/.bin

echo "-- redocly lint $base/openapi.json"
if ! "$bin/redocly" lint "$base/openapi.json" --format stylish > "$work/lint.log" 2>&1; then
  cat "$work/lint.log" >&2
  exit 1
fi
grep -v '[║╔╚]' "$work/lint.log" || true

echo "-- TypeScript client (openapi-typescript + openapi-fetch, tsc --strict, jose)"
rm -rf "$clients/generated" "$clients/build"
"$bin/openapi-typescript" "$base/openapi.json" -o "$clients/generated/glue.ts" > /dev/null
(cd "$clients" && "$bin/tsc" -p tsconfig.json)
node "$clients/build/flow.js"

echo "-- Python client (openapi-python-client, mypy --strict)"
venv=$root/target/ci-clients-venv
if ! cmp -s "$clients/requirements.txt" "$venv/requirements.txt" 2> /dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$clients/requirements.txt"
  cp "$clients/requirements.txt" "$venv/requirements.txt"
fi
"$venv/bin/openapi-python-client" generate --url "$base/openapi.json" --meta none \
  --config "$clients/python-client.yaml" --output-path "$work/python/glue_client" > "$work/generate.log" 2>&1 ||
  { cat "$work/generate.log" >&2; exit 1; }
if grep -qi "warning" "$work/generate.log"; then
  echo "openapi-python-client warned:" >&2
  cat "$work/generate.log" >&2
  exit 1
fi
PYTHONPATH="$work/python" MYPYPATH="$work/python" "$venv/bin/mypy" --strict --no-incremental \
  --cache-dir /dev/null --follow-imports=silent "$clients/flow.py"
PYTHONPATH="$work/python" "$venv/bin/python" "$clients/flow.py"

echo "-- headless Chromium (CORS)"
PAGE_PORT=$page_port OTHER_PORT=$other_port node "$clients/browser.mjs"

if grep -q "glue::error\] 500" "$work/serve.log"; then
  echo "the service logged internal errors during the run:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
