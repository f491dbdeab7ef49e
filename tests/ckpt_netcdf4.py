"""An independent reader of a deltatune checkpoint: python3-netCDF4 opens the
file, the global attributes say what it is, and every parameter variable
equals the tensor of the same name in deltas.safetensors (read with numpy).

usage: /usr/bin/python3 ckpt_netcdf4.py CKPT.nc DELTAS.safetensors
Exit status 0 when everything matches; the first mismatch is printed.
"""
import json
import struct
import sys

import netCDF4
import numpy as np


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"])
    return out


def main():
    ckpt, deltas = sys.argv[1], sys.argv[2]
    ds = netCDF4.Dataset(ckpt, "r")
    assert ds.data_model == "NETCDF3_64BIT_DATA", ds.data_model  # CDF-5
    assert ds.getncattr("format") == "deltatune-checkpoint"
    assert int(ds.getncattr("format_version")) == 1
    assert int(ds.getncattr("complete")) == 1
    step = int(ds.getncattr("step"))
    ref = safetensors(deltas)
    seen = 0
    for var in ds.variables.values():
        assert var.getncattr("units") == "1"
        assert var.getncattr("long_name")
        if var.getncattr("role") != "parameter":
            continue
        name = var.getncattr("name")
        if name not in ref:
            sys.exit("%s: variable %s (%s) is not in %s" % (ckpt, var.name, name, deltas))
        got = np.asarray(var[:], dtype="<f4")
        want = ref[name]
        if got.shape != want.shape or got.tobytes() != want.tobytes():
            sys.exit("%s: variable %s differs from %s in %s" % (ckpt, var.name, name, deltas))
        seen += 1
    if seen != len(ref):
        sys.exit("%s: %d parameter variables, %s holds %d tensors" % (ckpt, seen, deltas, len(ref)))
    print("netCDF4: %s step %d, %d parameters equal to %s" % (ckpt, step, seen, deltas))


if __name__ == "__main__":
    main()
