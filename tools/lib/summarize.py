#!/usr/bin/env python3
"""Adds up the results of every test step into one closing line.

Reads, from a directory, one folder per meson step (GoogleTest JUnit files
and meson's testlog.json) and JUnit XML files (pytest, the fuzz run);
prints one line per step, then `N passed, M failed`.
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


def step_counts(path):
    """Counts for one step: a JUnit file, or a folder of GoogleTest JUnit
    files plus meson's log (whose failures count when a binary died before
    writing its file)."""
    if path.is_file():
        return junit_counts(path)
    totals = [0, 0, 0]
    for xml in sorted(path.glob("*.xml")):
        totals = [t + c for t, c in zip(totals, junit_counts(xml))]
    log = path / "meson.testlog.json"
    if log.exists():
        meson_passed, meson_failed, meson_skipped = meson_counts(log)
        if not any(totals):  # no GoogleTest output at all: count binaries
            return meson_passed, meson_failed, meson_skipped
        totals[1] = max(totals[1], meson_failed)
    return tuple(totals)


def main():
    results = pathlib.Path(sys.argv[1])
    total = [0, 0, 0]
    for path in sorted(results.iterdir()):
        if not (path.is_dir() or path.suffix == ".xml"):
            continue
        counts = step_counts(path)
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
