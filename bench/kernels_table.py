"""Merges the kernel bench's rounds (bench/kernels.sh) into one table.

Each input is one round's markdown table from `cargo bench --bench kernels`, run right after that
round's reference. Per kernel: the median wall time and real-time factor over the rounds, the
median reference real-time factor, and the median of the per-round ratios with their range.
"""
import statistics
import sys


def rows(path):
    out = {}
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 8 or cells[0] in ("kernel", "") or cells[0].startswith("kernel ("):
                continue
            if set(cells[0]) <= set("-"):
                continue
            out[cells[0]] = cells
    return out


def num(cell):
    digits = "".join(ch for ch in cell if ch.isdigit() or ch == ".")
    return float(digits) if digits else None


def main(paths):
    rounds = [rows(p) for p in paths]
    names = list(rounds[0])
    print(f"| kernel (one thread, {len(rounds)} interleaved rounds) | audio | wall (median) "
          "| real-time factor per core | reference | reference RTF | ratio (median) | ratio range |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        cells = [r[name] for r in rounds if name in r]
        wall = statistics.median(num(c[2]) for c in cells)
        rtf = statistics.median(num(c[3]) for c in cells)
        ref = cells[0][5]
        refs = [num(c[6]) for c in cells if num(c[6]) is not None]
        ratios = [num(c[7]) for c in cells if num(c[7]) is not None]
        if ratios:
            ref_rtf = f"{statistics.median(refs):,.0f}×"
            ratio = f"{statistics.median(ratios):.2f}"
            span = f"{min(ratios):.2f}–{max(ratios):.2f}"
        else:
            ref_rtf, ratio, span = "-", "-", "-"
        print(f"| {name} | {cells[0][1]} | {wall:.3f} s | {rtf:,.0f}× | {ref} | {ref_rtf} | {ratio} | {span} |")


if __name__ == "__main__":
    main(sys.argv[1:])
