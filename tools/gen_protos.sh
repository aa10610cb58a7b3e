#!/usr/bin/env bash
# Generates everything that comes from proto/: Python messages and gRPC stubs with
# type hints (into libs/api, the installable tollgate-api package) and the descriptor
# set that Envoy's transcoder reads and buf lints (build/tollgate.pb), and from that
# the OpenAPI document the gateway serves (build/openapi.json). Nothing generated is
# committed.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$py"):$PATH"
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
wkt=$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')

# buf's registry is out of reach here, so the two imported contracts come from
# wheels: google.api's annotations from googleapis-common-protos as source, and
# buf.validate's rules from protovalidate as a descriptor set.
mkdir -p build/proto-deps/google/api
cp "$site/google/api/annotations.proto" "$site/google/api/http.proto" build/proto-deps/google/api/
"$py" tools/protovalidate_descriptor.py build/proto-deps/protovalidate.binpb

out=libs/api/src
mkdir -p "$out"
rm -rf "$out/tollgate" "$out/buf"
mapfile -t protos < <(find proto -name '*.proto' | sort)
"$py" -m grpc_tools.protoc -I proto -I build/proto-deps -I "$wkt" \
  --descriptor_set_in=build/proto-deps/protovalidate.binpb \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  --include_imports --include_source_info --descriptor_set_out=build/tollgate.pb \
  "${protos[@]}" buf/validate/validate.proto
for dir in $(find "$out/tollgate" "$out/buf" -type d); do
  touch "$dir/__init__.py"
done
touch "$out/tollgate/py.typed"
"$py" tools/gen_openapi.py --descriptor build/tollgate.pb --out build/openapi.json
echo "generated $(find "$out/tollgate" -name '*_pb2.py' | wc -l) modules, build/tollgate.pb and build/openapi.json"
