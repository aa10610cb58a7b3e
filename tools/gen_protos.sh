#!/usr/bin/env bash
# Generates everything that comes from proto/: Python messages and gRPC stubs with
# type hints (into libs/api, the installable tollgate-api package) and the descriptor
# set Envoy's transcoder reads (build/tollgate.pb). Nothing generated is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$py"):$PATH"
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
wkt=$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')

# buf's registry is out of reach here, so google.api's annotations come from the
# googleapis-common-protos wheel instead of a buf dependency.
mkdir -p build/proto-deps/google/api
cp "$site/google/api/annotations.proto" "$site/google/api/http.proto" build/proto-deps/google/api/

out=libs/api/src
find "$out/tollgate" -name '*_pb2*.py*' -delete 2>/dev/null || true
mapfile -t protos < <(find proto -name '*.proto' | sort)
"$py" -m grpc_tools.protoc -I proto -I build/proto-deps -I "$wkt" \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  --include_imports --include_source_info --descriptor_set_out=build/tollgate.pb \
  "${protos[@]}"
for dir in $(find "$out/tollgate" -type d); do
  touch "$dir/__init__.py"
done
touch "$out/tollgate/py.typed"
echo "generated $(find "$out/tollgate" -name '*_pb2.py' | wc -l) modules and build/tollgate.pb"
