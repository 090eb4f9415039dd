#!/usr/bin/env python3
"""Chart of a load-test sweep against concurrency: generated and prompt tokens/s (left),
completed requests/s and errors (middle), time to first token and inter-token latency
p50/p90/p99 (right).

    python3 load_tests/chart.py RESULTS_JSON [CHART_PNG]

Needs matplotlib (Debian: python3-matplotlib); installs it with apt-get when it is missing
and the script runs as root, else says what to install. If the python3 on PATH lacks it but
/usr/bin/python3 has it (pyenv, a venv), re-runs itself with /usr/bin/python3.
"""
import json
import os
import subprocess
import sys


SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-matplotlib lands


def system_python_has_matplotlib():
    if not os.path.exists(SYSTEM_PYTHON) or os.path.realpath(sys.executable) == os.path.realpath(SYSTEM_PYTHON):
        return False
    return subprocess.call([SYSTEM_PYTHON, "-c", "import matplotlib"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL) == 0


def import_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        # Another python3 first on PATH (pyenv, a venv): Debian's package is for the system one.
        if not system_python_has_matplotlib():
            if os.geteuid() != 0 or subprocess.call(["which", "apt-get"], stdout=subprocess.DEVNULL) != 0:
                sys.exit("chart: matplotlib is missing: apt-get install -y python3-matplotlib (or pip install matplotlib)")
            print("chart: installing python3-matplotlib", file=sys.stderr)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.check_call(["apt-get", "install", "-y", "-q", "python3-matplotlib"], env=env,
                                  stdout=subprocess.DEVNULL)
        if system_python_has_matplotlib():
            os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
        import matplotlib  # noqa: F401
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = sys.argv[1]
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(src), "chart.png")
    with open(src) as f:
        results = json.load(f)
    levels = results["levels"]
    if not levels:
        sys.exit("chart: no levels in " + src)
    plt = import_matplotlib()

    x = [lv["concurrency"] for lv in levels]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 5))

    def log2_axis(ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(x)
        ax.set_xticklabels([str(v) for v in x])
        ax.set_xlabel("concurrent streams")
        ax.grid(True, which="both", alpha=0.3)

    ax1.plot(x, [lv["generated_tokens_per_s"] for lv in levels], "o-", color="tab:blue",
             label="generated (server counter)")
    ax1.plot(x, [lv["generated_tokens_per_s_client"] for lv in levels], "x--", color="tab:cyan",
             label="generated (client)")
    ax1.plot(x, [lv["prompt_tokens_per_s"] for lv in levels], "d:", color="tab:gray", label="prompt (server counter)")
    log2_axis(ax1)
    ax1.set_ylabel("tokens/s")
    ax1.set_ylim(bottom=0)
    ax1.legend(fontsize=8)
    ax1.set_title("tokens/s")

    ax2.plot(x, [lv["requests_per_s"] for lv in levels], "s-", color="tab:green", label="completed requests/s")
    log2_axis(ax2)
    ax2.set_ylabel("requests/s")
    ax2.set_ylim(bottom=0)
    errs = [lv["requests"]["errors"] for lv in levels]
    if any(errs):
        ax2b = ax2.twinx()
        ax2b.bar(x, errs, width=[v * 0.3 for v in x], color="tab:red", alpha=0.4, label="errors")
        ax2b.set_ylabel("errors", color="tab:red")
    ax2.legend(fontsize=8, loc="upper left")
    ax2.set_title("requests/s" + (f" ({sum(errs)} errors)" if any(errs) else " (no errors)"))

    for key, color, name in (("ttft_ms", "tab:red", "TTFT"), ("itl_ms", "tab:purple", "ITL")):
        for p, style in (("p50", "o-"), ("p90", "^--"), ("p99", "v:")):
            ys = [lv[key][p] for lv in levels]
            pts = [(a, b) for a, b in zip(x, ys) if b is not None and b > 0]
            if pts:
                ax3.plot([a for a, _ in pts], [b for _, b in pts], style, color=color, label=f"{name} {p}")
    log2_axis(ax3)
    ax3.set_yscale("log")
    ax3.set_ylabel("milliseconds")
    ax3.legend(fontsize=8, ncol=2)
    ax3.set_title("time to first token, inter-token latency")

    o = results.get("options", {})
    m = results.get("model", {})
    fig.suptitle(f"hotswap serve, {m.get('id', '?')}: prompt {o.get('prompt')}, output {o.get('output')}, "
                 f"mix {o.get('mix')}, {o.get('duration')} s per level", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
