#!/usr/bin/env bash
# buf breaking: do the contracts in proto/ stay compatible with those of a git ref?
# The ref's proto/ is compiled the way `make proto` compiles ours (buf's registry is
# out of reach, see buf.yaml) and buf compares the two images. By default the ref is
# main, or the previous commit when main is what is checked out (as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
buf=.tools/node_modules/.bin/buf
branch=$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo HEAD)
default=main
[ "$branch" = main ] && default=HEAD~1
ref=${1:-$default}
if ! git rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
  echo "buf breaking: no $ref to compare with; skipped"
  exit 0
fi
if [ -z "$(git ls-tree -r --name-only "$ref" -- proto)" ]; then
  echo "buf breaking: $ref has no proto/; skipped"
  exit 0
fi

base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
git archive "$ref" proto | tar -x -C "$base"
wkt=$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
mapfile -t protos < <(cd "$base/proto" && find . -name '*.proto' | sed 's|^\./||' | sort)
"$py" -m grpc_tools.protoc -I "$base/proto" -I build/proto-deps -I "$wkt" \
  --descriptor_set_in=build/proto-deps/protovalidate.binpb \
  --include_imports --descriptor_set_out="$base/image.binpb" "${protos[@]}"
"$buf" breaking "build/tollgate.pb#format=binpb" \
  --against "$base/image.binpb#format=binpb" --config buf.yaml --path tollgate
echo "buf breaking: compatible with $ref"
