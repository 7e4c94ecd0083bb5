#!/usr/bin/env python3
"""Runs every libFuzzer target of a fuzz build for a bounded time.

Seeds come from the *_corpus_gen programs in the same folder (they write
packets made by our own encoder). Each target gets a share of the time by its
weight (SHARE_WEIGHTS, default 1): a small parser that saturates in seconds
gets less, so adding it does not lengthen the step or starve the others.
Prints what each run did and writes a JUnit file so the summary counts it.
"""
import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

# Relative time shares; targets not named here weigh 1.
# The shares divide --seconds, so a new target lengthens the step only by its
# start-up; session_records_fuzz gets ~6 s of a 60 s step.
SHARE_WEIGHTS = {"proxy_protocol_fuzz": 0.2, "store_log_fuzz": 0.2, "session_records_fuzz": 0.4}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", required=True, type=pathlib.Path)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--junit", required=True, type=pathlib.Path)
    args = parser.parse_args()

    fuzz_dir = args.build / "tests" / "fuzz"
    targets = sorted(p for p in fuzz_dir.glob("*_fuzz") if p.is_file())
    if not targets:
        print("no fuzz targets were built", file=sys.stderr)
        return 1
    seeds = args.build / "fuzz-seeds"
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir(parents=True)
    for gen in sorted(fuzz_dir.glob("*_corpus_gen")):
        subprocess.run([str(gen), str(seeds)], check=True)

    suite = ET.Element("testsuite", name="fuzz", tests=str(len(targets)))
    failures = 0
    total_weight = sum(SHARE_WEIGHTS.get(t.name, 1) for t in targets)
    for target in targets:
        per_target = max(5, int(args.seconds * SHARE_WEIGHTS.get(target.name, 1) / total_weight))
        corpus = args.build / "fuzz-corpus" / target.name
        corpus.mkdir(parents=True, exist_ok=True)
        artifacts = args.build / "fuzz-artifacts"
        artifacts.mkdir(exist_ok=True)
        cmd = [str(target), f"-max_total_time={per_target}", "-rss_limit_mb=2048",
               "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(corpus), str(seeds)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = proc.stdout
        runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
        cov = re.findall(r"cov: (\d+)", out)
        case = ET.SubElement(suite, "testcase", classname="fuzz", name=target.name)
        summary = (f"{target.name}: {per_target}s, "
                   f"{runs.group(1) if runs else '?'} executions, "
                   f"coverage {cov[-1] if cov else '?'} edges, exit {proc.returncode}")
        print(summary)
        if proc.returncode != 0:
            failures += 1
            print(out[-6000:])
            ET.SubElement(case, "failure", message=summary).text = out[-6000:]
    suite.set("failures", str(failures))
    ET.ElementTree(suite).write(args.junit)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
