#!/usr/bin/env python3
"""Fails if a wasm module imports from the "env" module.

An "env" import means native-only code (a C symbol, a libc call) crept into a crate that must
run in a browser or a Worker; the module would fail to instantiate there (docs/toolchain.md §2).
"""
import sys


def leb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def name(data: bytes, pos: int) -> tuple[str, int]:
    n, pos = leb(data, pos)
    return data[pos:pos + n].decode("utf-8", "replace"), pos + n


def imports(path: str) -> list[tuple[str, str]]:
    data = open(path, "rb").read()
    if data[:4] != b"\0asm":
        raise SystemExit(f"{path}: not a wasm module")
    pos, found = 8, []
    while pos < len(data):
        section, pos = data[pos], pos + 1
        size, pos = leb(data, pos)
        end = pos + size
        if section == 2:  # import section
            count, p = leb(data, pos)
            for _ in range(count):
                module, p = name(data, p)
                field, p = name(data, p)
                kind, p = data[p], p + 1
                if kind == 0:  # function: type index
                    _, p = leb(data, p)
                elif kind == 1:  # table: reftype + limits
                    p += 1
                    flags, p = leb(data, p)
                    _, p = leb(data, p)
                    if flags & 1:
                        _, p = leb(data, p)
                elif kind == 2:  # memory: limits
                    flags, p = leb(data, p)
                    _, p = leb(data, p)
                    if flags & 1:
                        _, p = leb(data, p)
                elif kind == 3:  # global: valtype + mut
                    p += 2
                else:  # tag
                    p += 1
                    _, p = leb(data, p)
                found.append((module, field))
        pos = end
    return found


bad = 0
for path in sys.argv[1:]:
    env = [f for m, f in imports(path) if m == "env"]
    if env:
        bad += 1
        print(f"{path}: imports from \"env\": {', '.join(env[:10])}", file=sys.stderr)
    else:
        print(f"{path}: no \"env\" imports")
sys.exit(1 if bad else 0)
