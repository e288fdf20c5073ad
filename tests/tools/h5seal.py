#!/usr/bin/env python3
"""The content checksums of probes.h5, mix.h5 and scores.h5 (io/h5seal.h), recomputed with h5py
independently of the C code.

  h5seal.py check FILE  - exit 0 when every dataset's `sha256` and the root `content_sha256`
                          match the bytes; exit 1 naming what differs
  h5seal.py seal FILE   - (re)write them: tests that edit a file on purpose (another capability
                          list, other probe weights) reseal it, so that the stage under test
                          sees a consistent file and reports the mismatch it is meant to find

Each dataset (full name, in sorted order) is hashed over its bytes in its file type; the root
digest is SHA-256 over the lines "D <name>\\0<hex>\\n" for the datasets, each followed by
"a <name>/<attr>\\0<hex>\\n" for its attributes in sorted order (its own sha256 left out), then
"A <name>\\0<hex>\\n" for the root attributes in sorted order (content_sha256 itself left out; a variable-length
attribute counts by its name, hex "-").

The file seal: the first 512 bytes (HDF5's user block) hold "capheads sealed file v1\\nsha256 ", the
SHA-256 of every byte after them in hex, a newline and zeros. A file without a user block (it
starts with HDF5's signature) has no file seal; its content seal is checked alone."""
import hashlib
import sys

import h5py
import numpy as np


def dataset_names(f):
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(out, key=lambda s: s.encode())


def attr_hex(obj, name):
    a = h5py.h5a.open(obj.id, name.encode())
    if a.get_type().get_class() == h5py.h5t.VLEN or (
            isinstance(a.get_type(), h5py.h5t.TypeStringID) and a.get_type().is_variable_str()):
        return "-"
    buf = np.empty(a.shape, dtype=a.dtype)
    a.read(buf)
    return hashlib.sha256(buf.tobytes()).hexdigest()


def digests(f):
    root = hashlib.sha256()
    per = {}
    for name in dataset_names(f):
        d = f[name]
        h = hashlib.sha256(d[()].tobytes() if d.size else b"").hexdigest()
        per[name] = h
        root.update(b"D " + name.encode() + b"\0" + h.encode() + b"\n")
        for a in sorted((n for n in d.attrs if n != "sha256"), key=lambda s: s.encode()):
            root.update(b"a " + (name + "/" + a).encode() + b"\0" + attr_hex(d, a).encode() + b"\n")
    for name in sorted((n for n in f.attrs if n != "content_sha256"), key=lambda s: s.encode()):
        root.update(b"A " + name.encode() + b"\0" + attr_hex(f, name).encode() + b"\n")
    return per, root.hexdigest()


BLOCK = 512
MAGIC = b"capheads sealed file v1\nsha256 "
SIGNATURE = b"\x89HDF\r\n\x1a\n"


def file_seal(data):
    """The user block a sealed file with these bytes should start with."""
    block = MAGIC + hashlib.sha256(data[BLOCK:]).hexdigest().encode() + b"\n"
    return block + b"\0" * (BLOCK - len(block))


def check_file_seal(path):
    data = open(path, "rb").read()
    if data[:8] == SIGNATURE:
        return "no file seal (no user block)"
    if data[:BLOCK] != file_seal(data):
        return None
    return "file seal holds"


def reseal_file(path):
    with open(path, "r+b") as f:
        data = f.read()
        if data[:8] == SIGNATURE:
            return
        f.seek(0)
        f.write(file_seal(data))


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def seal(path):
    with h5py.File(path, "r+") as f:
        per, root = digests(f)
        for name, h in per.items():
            f[name].attrs.create("sha256", np.bytes_(h.encode() + b"\0"))
        if "content_sha256" in f.attrs:
            del f.attrs["content_sha256"]
        f.attrs.create("content_sha256", np.bytes_(root.encode() + b"\0"))
    reseal_file(path)
    return 0


def check(path):
    state = check_file_seal(path)  # before h5py parses anything
    if state is None:
        print(f"{path}: its bytes do not match the file seal in its first {BLOCK} bytes")
        return 1
    with h5py.File(path, "r") as f:
        per, root = digests(f)
        for name, h in per.items():
            if text(f[name].attrs.get("sha256", b"")).rstrip("\0") != h:
                print(f"{path}: /{name} does not match its sha256")
                return 1
        if text(f.attrs.get("content_sha256", b"")).rstrip("\0") != root:
            print(f"{path}: content_sha256 differs")
            return 1
    print(f"{path}: {state}; {len(per)} datasets and the root attributes match their checksums")
    return 0


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    return seal(path) if cmd == "seal" else check(path)


if __name__ == "__main__":
    sys.exit(main())
