#!/usr/bin/env python3
"""Summarize fsbench.sh output: medians per metric per filesystem, kmsfs ratios,
and the targets of issue 7.

Usage: summarize.py [--json OUT.json] RAW.txt [...]   -> Markdown on stdout

Input lines are `LABEL METRIC VALUE UNIT`; '#' lines and FAIL values are
ignored. Labels starting with "kmsfs" are the filesystems under test; peers
are gocryptfs and securefs, the passthrough FUSE mount is bindfs and the floor
is ext4.

Ratios are always kmsfs / other. For throughput (MB/s, IOPS) higher is better,
so a ratio >= 1 means kmsfs is ahead; for times (s) lower is better, so a ratio
<= 1 means kmsfs is ahead.
"""
import json
import statistics
import sys
from collections import OrderedDict, defaultdict

PEERS = ("gocryptfs", "securefs")
PASSTHROUGH = "bindfs"
FLOOR = "ext4"
THROUGHPUT = ("seq_write", "seq_read", "rand4k_read", "rand4k_write")
SMALL = ("untar", "ls_lR", "du_s", "cat_all", "rm_rf")
INFO_TIMES = ("rand4k_fsync", "untar_sync")
MEMORY = ("rss_seq_write", "rss_end", "rss_open10k", "rssnow_open10k", "open_files")


def parse(paths):
    vals = defaultdict(list)
    labels, metrics, units = OrderedDict(), OrderedDict(), {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.startswith("#"):
                    continue
                parts = line.split()
                if len(parts) != 4:
                    continue
                label, metric, value, unit = parts
                try:
                    v = float(value)
                except ValueError:
                    continue
                labels[label] = 1
                metrics[metric] = 1
                units[metric] = unit
                vals[(label, metric)].append(v)
    return vals, list(labels), list(metrics), units


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def main(argv):
    json_out = None
    if len(argv) >= 2 and argv[0] == "--json":
        json_out, argv = argv[1], argv[2:]
    if not argv:
        sys.exit(__doc__)
    vals, labels, metrics, units = parse(argv)
    med = {
        (l, m): statistics.median(v) for (l, m), v in vals.items() if v
    }

    out = []
    p = out.append
    n = {l: max((len(vals.get((l, m), [])) for m in metrics), default=0) for l in labels}
    p("### Medians (min–max) per filesystem\n")
    p("| metric | " + " | ".join(labels) + " |")
    p("|---|" + "---:|" * len(labels))
    for m in metrics:
        row = []
        for l in labels:
            v = vals.get((l, m), [])
            if not v:
                row.append("-")
            elif len(v) == 1:
                row.append(fmt(v[0]))
            else:
                row.append(f"{fmt(statistics.median(v))} ({fmt(min(v))}–{fmt(max(v))})")
        p(f"| {m} [{units[m]}] | " + " | ".join(row) + " |")
    p("")
    p("rounds: " + ", ".join(f"{l}={n[l]}" for l in labels))
    p("")

    report = {"medians": {}, "comparisons": {}, "rounds": n}
    for (l, m), v in vals.items():
        report["medians"].setdefault(l, {})[m] = {
            "median": statistics.median(v), "min": min(v), "max": max(v),
            "n": len(v), "unit": units[m], "values": v,
        }

    peers = [l for l in PEERS if l in labels]
    for k in [l for l in labels if l.startswith("kmsfs")]:
        rows = []
        p(f"### {k}: ratios (kmsfs / other) and issue-7 targets\n")
        p("Throughput: ratio ≥ 1 is kmsfs ahead. Times: ratio ≤ 1 is kmsfs ahead.\n")
        p("| metric | kmsfs | best peer | vs best peer | vs bindfs | vs ext4 | target | met |")
        p("|---|---:|---|---:|---:|---:|---|:-:|")
        for m in list(THROUGHPUT) + list(SMALL) + list(INFO_TIMES):
            if (k, m) not in med:
                continue
            x = med[(k, m)]
            higher = m in THROUGHPUT
            pv = [(med[(q, m)], q) for q in peers if (q, m) in med]
            best = (max(pv) if higher else min(pv)) if pv else None
            r_best = x / best[0] if best and best[0] else None
            r_bind = x / med[(PASSTHROUGH, m)] if med.get((PASSTHROUGH, m)) else None
            r_floor = x / med[(FLOOR, m)] if med.get((FLOOR, m)) else None
            checks = []
            if m in THROUGHPUT and r_best is not None:
                checks.append(("≥ best peer", r_best >= 1.0))
            if m in SMALL and r_best is not None:
                checks.append(("≤ best peer", r_best <= 1.0))
            if m in ("seq_write", "seq_read") and r_bind is not None:
                checks.append(("≥ 0.7× bindfs", r_bind >= 0.7))
            if m in SMALL and r_floor is not None:
                checks.append(("≤ 3× ext4", r_floor <= 3.0))
            target = "; ".join(c for c, _ in checks) or "(info)"
            met = " ".join("✅" if ok else "❌" for _, ok in checks) or "–"
            best_s = f"{fmt(best[0])} {best[1]}" if best else "-"
            p(f"| {m} [{units[m]}] | {fmt(x)} | {best_s} | {fmt(r_best)} | {fmt(r_bind)} | {fmt(r_floor)} | {target} | {met} |")
            rows.append({
                "metric": m, "unit": units[m], "kmsfs": x,
                "best_peer": best[1] if best else None, "best_peer_value": best[0] if best else None,
                "ratio_best_peer": r_best, "ratio_bindfs": r_bind, "ratio_ext4": r_floor,
                "targets": [{"target": c, "met": ok} for c, ok in checks],
            })
        mem = [(m, med[(k, m)]) for m in MEMORY if (k, m) in med]
        if mem:
            p("")
            p("Daemon memory: " + ", ".join(
                f"{m} = {v / 1024:.1f} MiB" if units[m] == "kB" else f"{m} = {v:.0f}"
                for m, v in mem))
        p("")
        total = sum(len(r["targets"]) for r in rows)
        met = sum(t["met"] for r in rows for t in r["targets"])
        p(f"Targets met: {met}/{total}\n")
        report["comparisons"][k] = {"rows": rows, "memory": dict(mem), "targets_met": met, "targets_total": total}

    text = "\n".join(out)
    print(text)
    if json_out:
        with open(json_out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
