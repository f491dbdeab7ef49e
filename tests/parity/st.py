"""safetensors read and write with numpy (the format: an 8-byte little-endian
header length, a JSON header of name -> dtype, shape, data_offsets, then the
bytes). Used by the family model maker and the reference forward pass, which
must not depend on the engine's own reader."""
import json
import struct

import numpy as np

_DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
       "F16": np.float16, "U8": np.uint8}
_NAME = {np.dtype(v): k for k, v in _DT.items()}


def read(path):
    """name -> numpy array, in the file's order; and the metadata."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in sorted(head.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = e["data_offsets"]
        if e["dtype"] == "BF16":  # the upper half of a float32
            u = np.frombuffer(raw[base + a:base + b], dtype=np.uint16).astype(np.uint32) << 16
            out[name] = u.view(np.float32).reshape(e["shape"])
        else:
            out[name] = np.frombuffer(raw[base + a:base + b], dtype=_DT[e["dtype"]]).reshape(e["shape"])
    return out, meta


def write(path, tensors, metadata=None):
    """tensors: name -> array (kept in the given order)."""
    head, off, blobs = {}, 0, []
    if metadata:
        head["__metadata__"] = metadata
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        b = arr.tobytes()
        head[name] = {"dtype": _NAME[arr.dtype], "shape": list(arr.shape),
                      "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
