#!/usr/bin/env python3
"""Adds up the results of every test step into one closing line.

Reads meson's testlog.json files and JUnit XML files (pytest, the fuzz run)
from a directory, prints one line per step, then `N passed, M failed`.
Exits non-zero when anything failed or when no test ran at all.
"""
import json
import pathlib
import sys
import xml.etree.ElementTree as ET


def meson_counts(path):
    passed = failed = skipped = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        result = json.loads(line).get("result")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
    return passed, failed, skipped


def junit_counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    passed = failed = skipped = 0
    for suite in suites:
        tests = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        failed += bad
        skipped += skip
        passed += tests - bad - skip
    return passed, failed, skipped


def main():
    results = pathlib.Path(sys.argv[1])
    total = [0, 0, 0]
    for path in sorted(results.iterdir()):
        if path.name.endswith(".testlog.json"):
            counts = meson_counts(path)
        elif path.suffix == ".xml":
            counts = junit_counts(path)
        else:
            continue
        print(f"  {path.name.split('.')[0]:<12} {counts[0]} passed, {counts[1]} failed, "
              f"{counts[2]} skipped")
        total = [t + c for t, c in zip(total, counts)]
    line = f"{total[0]} passed, {total[1]} failed"
    if total[2]:
        line += f", {total[2]} skipped"
    print(line)
    return 0 if total[1] == 0 and total[0] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
