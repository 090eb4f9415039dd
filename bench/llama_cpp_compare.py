#!/usr/bin/env python3
"""Summary of a bench/llama_cpp_compare.sh run directory: llama-N.txt (llama_cpp_compare) and
hotswap-N.txt (engine_throughput_bench) alternate as L0 H0 L1 H1 ... Ln. Each Hotswap run is
set against the mean of the llama.cpp runs just before and after it (Li, Li+1); the ratios
hotswap / llama.cpp are printed per pair and as the median over pairs.

    llama_cpp_compare.py RUN_DIR
"""
import glob
import os
import re
import statistics
import sys


def parse(path):
    text = open(path).read()
    out = {"decode": {}, "prefill": {}}
    m = re.search(r"read bandwidth[^\n]*?median ([\d.]+) GB/s", text)
    out["bw"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"batch-1 decode GB/s / read bandwidth, per round: median ([\d.]+)%", text)
    out["b1_of_bw"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"batch-16 / batch-1 aggregate tok/s, per round: median ([\d.]+)x", text)
    out["b16_over_b1"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"load average ([\d.]+)", text)
    out["load"] = float(m.group(1)) if m else float("nan")
    section = None
    for line in text.splitlines():
        if line.startswith("decode ("):
            section = "decode"
        elif line.startswith("prefill ("):
            section = "prefill"
        elif line.startswith("=="):
            section = None
        f = line.split()
        if section and f and re.fullmatch(r"\d+", f[0]) and line.startswith("  "):
            if section == "decode":  # batch best_ms median_ms tok/s_best tok/s_med tok/s_cpu cpu%
                out["decode"][int(f[0])] = {"best": float(f[3]), "med": float(f[4]), "cpu_rate": float(f[5]),
                                            "cpu": f[6]}
            else:  # prompt reps best_ms median_ms tok/s_best tok/s_cpu ... cpu%
                out["prefill"][int(f[0])] = {"best": float(f[4]), "cpu_rate": float(f[5]), "cpu": f[-1]}
    return out


def main(run):
    llama = sorted(glob.glob(os.path.join(run, "llama-*.txt")), key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))
    hot = sorted(glob.glob(os.path.join(run, "hotswap-*.txt")), key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))
    L = [parse(p) for p in llama]
    H = [parse(p) for p in hot]
    metrics = [("decode b1 tok/s (best step)", lambda r: r["decode"].get(1, {}).get("best")),
               ("decode b1 tok/s (median step)", lambda r: r["decode"].get(1, {}).get("med")),
               ("decode b16 tok/s (best step)", lambda r: r["decode"].get(16, {}).get("best")),
               ("decode b16 tok/s (median step)", lambda r: r["decode"].get(16, {}).get("med")),
               ("prefill 512 tok/s (best)", lambda r: r["prefill"].get(512, {}).get("best")),
               ("decode b1 tok/s [CPU time]", lambda r: r["decode"].get(1, {}).get("cpu_rate")),
               ("decode b16 tok/s [CPU time]", lambda r: r["decode"].get(16, {}).get("cpu_rate")),
               ("prefill 512 tok/s [CPU time]", lambda r: r["prefill"].get(512, {}).get("cpu_rate")),
               ("b1 GB/s / read bandwidth (%, per round)", lambda r: r["b1_of_bw"]),
               ("b16 / b1 (per round)", lambda r: r["b16_over_b1"])]
    print("runs: " + ", ".join("L%d bw %.1f GB/s load %.1f" % (i, r["bw"], r["load"]) for i, r in enumerate(L)))
    print("      " + ", ".join("H%d bw %.1f GB/s load %.1f" % (i, r["bw"], r["load"]) for i, r in enumerate(H)))
    print("%-40s %s" % ("", "  ".join("  L%d    H%d  ratio" % (i, i) for i in range(len(H)))) + "   median ratio")
    for name, get in metrics:
        cells, ratios = [], []
        for i, h in enumerate(H):
            neighbours = [get(l) for l in L[i:i + 2] if get(l) is not None]
            lv = sum(neighbours) / len(neighbours) if neighbours else None
            hv = get(h)
            if lv and hv is not None:
                ratios.append(hv / lv)
                cells.append("%5.1f %5.1f %5.2fx" % (lv, hv, hv / lv))
            else:
                cells.append("    -     -      -")
        med = "%.2fx" % statistics.median(ratios) if ratios else "-"
        print("%-40s %s   %s" % (name, "  ".join(cells), med))
    print("(L = mean of the llama.cpp runs before and after each Hotswap run; ratio = hotswap / llama.cpp;")
    print(" [CPU time] = work / (process CPU s / threads): both count their spinning barrier waits as work;")
    print(" the wall-time rows are the comparison, the per-round bandwidth row the fairest on a drifting host.)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
