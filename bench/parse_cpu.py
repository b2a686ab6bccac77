"""CPU per request of parse + validate against ``json.loads`` of the same bodies alone.

Bodies are built in the upstream's real envelope (as the simulator serves them): a members
page of 100 rows (``fields=f12,f13,f14``) and a board-list page of 100 boards. For each body,
``upstream.parse.parse_page`` plus ``parse_member_row``/``parse_board_row`` on every row (what a
worker does per request) is timed against ``json.loads`` alone, in CPU time
(``time.process_time``) over many iterations.

    .venv/bin/python bench/parse_cpu.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from boardsync.upstream.parse import parse_board_row, parse_member_row, parse_page


def envelope(rows: list[dict[str, object]], total: int) -> bytes:
    return json.dumps({"rc": 0, "rt": 6, "svr": 181669437, "lt": 1, "full": 1, "dlmkts": "",
                       "data": {"total": total, "diff": rows}},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def members_body() -> bytes:
    rows = [{"f12": f"{600000 + i:06d}" if i % 2 else f"{i:06d}", "f13": i % 2,
             "f14": f"股票{i:03d}"} for i in range(1, 101)]
    return envelope(rows, 3674)


def boards_body() -> bytes:
    rows = [{"f12": f"BK{1000 + i:04d}", "f13": 90, "f14": f"概念板块{i:03d}"}
            for i in range(100)]
    return envelope(rows, 441)


def cpu_us(fn: Callable[[], object], iterations: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(iterations):
        fn()
    return (time.process_time() - start) / iterations * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20000)
    n = ap.parse_args().iterations
    cases = {
        "members page (100 rows)": (members_body(), lambda page: [parse_member_row(r)
                                                                  for r in page.rows]),
        "board-list page (100 rows)": (boards_body(), lambda page: [
            parse_board_row(r, "concept") for r in page.rows]),
    }
    for name, (body, rows) in cases.items():
        assert len(rows(parse_page(body))) == 100
        base = cpu_us(lambda body=body: json.loads(body), n)
        full = cpu_us(lambda body=body, rows=rows: rows(parse_page(body)), n)
        print(f"{name}: {len(body):,} bytes; parse + validate {full:7.1f} µs/request, "
              f"json.loads alone {base:7.1f} µs/request, ratio {full / base:.2f}x "
              f"({n} iterations, CPU time)")


if __name__ == "__main__":
    main()
