#!/usr/bin/env python3
"""Ratios of bench/served_compare.sh's runs: Hotswap / llama-server, each Hotswap run against
the mean of the llama-server runs just before and after it (the runs alternate L H L ...).

    served_compare.py RUN_DIR

Per weight format: generated tokens/s seen by the clients at each concurrency level (higher is
better; ratio > 1: Hotswap ahead), and the median time to first token of a 512-token prompt
(ratio = llama-server's / Hotswap's, so > 1 again means Hotswap ahead)."""
import json
import os
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def run_figures(run_dir):
    """{level: client tokens/s} of the sweep, and the prefill probe's TTFT p50 (ms) or None."""
    sweep = load(os.path.join(run_dir, "sweep", "results.json"))
    tps = {lv["concurrency"]: lv["generated_tokens_per_s_client"] for lv in sweep["levels"]}
    errors = sum(lv["requests"]["errors"] for lv in sweep["levels"])
    ttft = None
    probe = os.path.join(run_dir, "prefill", "results.json")
    if os.path.exists(probe):
        levels = load(probe)["levels"]
        ttft = levels[0]["ttft_ms"]["p50"] if levels else None
    return tps, ttft, errors


def runs_of(weights_dir, who):
    tags = sorted(int(d.split("-")[1]) for d in os.listdir(weights_dir) if d.startswith(who + "-"))
    return [run_figures(os.path.join(weights_dir, f"{who}-{t}")) for t in tags]


def main():
    run = sys.argv[1]
    print(open(os.path.join(run, "info.txt")).read().strip())
    for weights in sorted(d for d in os.listdir(run) if os.path.isdir(os.path.join(run, d))):
        wdir = os.path.join(run, weights)
        llama, hot = runs_of(wdir, "llama"), runs_of(wdir, "hotswap")
        if not hot or len(llama) != len(hot) + 1:
            print(f"{weights}: incomplete ({len(llama)} llama-server runs, {len(hot)} hotswap runs)")
            continue
        print(f"\n== weights {weights} (llama.cpp: {'bf16' if weights == 'bf16' else weights.replace('q', 'Q') + '_0'})")
        levels = sorted(hot[0][0])
        print("clients  llama-server tok/s  hotswap tok/s  ratio (per run; median)")
        for lv in levels:
            ratios, l_all, h_all = [], [], []
            for i, (h_tps, _, _) in enumerate(hot):
                neighbours = [llama[i][0].get(lv), llama[i + 1][0].get(lv)]
                ref = statistics.mean(x for x in neighbours if x)
                ratios.append(h_tps[lv] / ref)
                l_all.extend(x for x in neighbours if x)
                h_all.append(h_tps[lv])
            print(f"{lv:7d}  {statistics.mean(l_all):18.1f}  {statistics.mean(h_all):13.1f}  "
                  f"{' '.join(f'{r:.2f}' for r in ratios)}; {statistics.median(ratios):.2f}")
        if all(h[1] for h in hot):
            ratios = []
            for i, (_, h_ttft, _) in enumerate(hot):
                ref = statistics.mean(x for x in (llama[i][1], llama[i + 1][1]) if x)
                ratios.append(ref / h_ttft)
            print(f"512-token prompt, TTFT p50: llama-server {statistics.mean(l[1] for l in llama):.0f} ms, "
                  f"hotswap {statistics.mean(h[1] for h in hot):.0f} ms; llama/hotswap "
                  f"{' '.join(f'{r:.2f}' for r in ratios)}; {statistics.median(ratios):.2f}")
        errs = sum(r[2] for r in llama + hot)
        if errs:
            print(f"requests with errors: {errs} (see the runs' results.json)")


if __name__ == "__main__":
    main()
