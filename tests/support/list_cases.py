#!/usr/bin/python3
"""Lists the unittest cases of Python test files, for ctest (tests/python.cmake runs it at
configure time and registers one ctest test per case).

    list_cases.py FILE...      one line per case: "FILE Class.method", in file order;
                               a file that cannot be imported: the line "FILE" alone
                               (it is then registered whole, and fails when run) and the
                               reason on stderr

Each file is imported as its own module (it is not run); nothing is started.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # keep the source tree clean


def _tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _tests(t)
        else:
            yield t


def cases(path: Path) -> list:
    """The ids "Class.method" of every case in the test file at path."""
    name = "_listed_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and friends look their module up there
    spec.loader.exec_module(module)
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(module)
    if loader.errors:
        raise ImportError("\n".join(loader.errors))
    return [t.id().removeprefix(name + ".") for t in _tests(suite)]


def main(argv: list) -> int:
    status = 0
    for arg in argv:
        try:
            ids = cases(Path(arg).resolve())
        except Exception:
            sys.stderr.write(f"{arg}: cannot list its cases:\n{traceback.format_exc()}")
            print(arg)
            status = 1
            continue
        for case_id in ids:
            print(f"{arg} {case_id}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
