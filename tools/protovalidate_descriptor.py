"""Write buf/validate/validate.proto, as a descriptor set, from the protovalidate wheel.

buf's registry, where validate.proto is published, is out of reach here; the
protovalidate package embeds the file's descriptor, which protoc accepts through
``--descriptor_set_in``. The well-known types it imports come from protoc's own
include path, so only validate.proto itself is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from protovalidate._gen.buf.validate import validate_pb


def main() -> None:
    """Write the descriptor set to the path given on the command line."""
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    files = descriptor_pb2.FileDescriptorSet()
    files.file.append(
        descriptor_pb2.FileDescriptorProto.FromString(
            validate_pb.desc().proto.to_binary()
        )
    )
    out.write_bytes(files.SerializeToString())


if __name__ == "__main__":
    main()
