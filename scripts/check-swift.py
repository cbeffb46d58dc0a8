#!/usr/bin/env python3
"""Static checks of the Swift package where no Swift toolchain exists: every .swift file parses
(tree-sitter-swift), and every C name the Swift sources use is in include/smolvlm.h: each
smolvlm_* function is called with the header's number of parameters, each SMOLVLM_* constant and
smolvlm_* type exists, each snake_case member (a C struct field) is a field of a header struct.

usage: check-swift.py [REPO_ROOT]   (needs tree-sitter and tree-sitter-swift from PyPI)
"""
import pathlib
import re
import sys

import tree_sitter
import tree_sitter_swift

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
SWIFT_DIRS = [ROOT / "bindings/swift"]
HEADER = ROOT / "include/smolvlm.h"


def header_names(text):
    """(functions name -> parameter count, types, constants, struct fields) of the header."""
    code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    code = re.sub(r"//[^\n]*", " ", code)
    functions = {}
    for m in re.finditer(r"(?<![(*\w])\**\s*\b(smolvlm_\w+)\s*\(([^()]*)\)\s*;", code):
        params = m.group(2).strip()
        functions[m.group(1)] = 0 if params in ("", "void") else params.count(",") + 1
    types = set(re.findall(r"\b(?:struct|enum)\s+(smolvlm_\w+)", code))
    types |= set(re.findall(r"\b(smolvlm_\w+)\s*;", code)) - set(functions)
    types |= set(re.findall(r"\(\s*\*\s*(smolvlm_\w+)\s*\)", code))
    constants = set(re.findall(r"\b(SMOLVLM_[A-Z0-9_]+)\b", code))
    fields = set()
    for body in re.findall(r"typedef struct smolvlm_\w+\s*\{(.*?)\}", code, flags=re.S):
        for decl in body.split(";"):
            names = re.findall(r"\b([a-z_][a-z0-9_]*)\s*$", decl.strip())
            fields.update(names)
    return functions, types, constants, fields


def main():
    functions, types, constants, fields = header_names(HEADER.read_text())
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    files = sorted(p for d in SWIFT_DIRS for p in d.rglob("*.swift"))
    errors, called, used = [], {}, set()
    for path in files:
        rel = path.relative_to(ROOT)
        src = path.read_bytes()
        tree = parser.parse(src)
        stack = [tree.root_node]
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            line = node.start_point[0] + 1
            if node.type == "ERROR" or node.is_missing:
                errors.append(f"{rel}:{line}: does not parse near {node.text.decode()[:60]!r}")
                continue
            text = node.text.decode() if node.child_count == 0 else ""
            if node.type in ("simple_identifier", "type_identifier") and re.match(r"(?i)smolvlm_", text):
                used.add(text)
                if text not in functions and text not in types and text not in constants:
                    errors.append(f"{rel}:{line}: {text} is not in include/smolvlm.h")
            if node.type == "navigation_suffix":
                name = node.children[-1].text.decode()
                if "_" in name and name[:1].islower() and name not in fields:
                    errors.append(f"{rel}:{line}: .{name} is no field of a smolvlm.h struct")
            if node.type == "call_expression" and node.children[0].type == "simple_identifier":
                name = node.children[0].text.decode()
                if name not in functions:
                    continue
                suffix = node.children[1] if node.child_count > 1 else None
                args = [c for c in (suffix.children if suffix else []) if c.type == "value_arguments"]
                n = sum(1 for c in args[0].children if c.type == "value_argument") if args else 0
                n += sum(1 for c in (suffix.children if suffix else []) if c.type == "lambda_literal")
                called[name] = called.get(name, 0) + 1
                if n != functions[name]:
                    errors.append(f"{rel}:{line}: {name} takes {functions[name]} arguments, called with {n}")
    if not files:
        errors.append("no .swift files found")
    package = (ROOT / "bindings/swift/Package.swift").read_text()
    if 'pkgConfig: "smolvlm"' not in package:
        errors.append("Package.swift: CSmolVLM must find the library through pkg-config smolvlm")
    modulemap = (ROOT / "bindings/swift/Sources/CSmolVLM/module.modulemap").read_text()
    for needed in ('header "shim.h"', 'link "smolvlm"'):
        if needed not in modulemap:
            errors.append(f"module.modulemap lacks {needed}")
    if "#include <smolvlm.h>" not in (ROOT / "bindings/swift/Sources/CSmolVLM/shim.h").read_text():
        errors.append("shim.h must include <smolvlm.h>")
    if errors:
        print("\n".join(f"check-swift: {e}" for e in errors), file=sys.stderr)
        sys.exit(1)
    print(f"check-swift: {len(files)} Swift files parse; {len(called)} C functions called "
          f"({sum(called.values())} calls) with the header's parameter counts; "
          f"{len(used)} C names used, all declared in include/smolvlm.h")


if __name__ == "__main__":
    main()
