#!/usr/bin/env python3
"""Times every named query on DataFusion (vigil) and on DuckDB over the same Parquet files.

Usage (from the repository root):
    python3 queries/benches/duckdb_compare.py [--events 10000000] [--dir /tmp/vigil-bench] [--iterations 3]

Steps: generate the data directory once (cargo bench ... gen), run the DataFusion timings
(cargo bench ... run, release build), then run the very same rendered SQL on DuckDB (views over
the same Parquet files, with SQL macros for the two UDFs the queries use), check that both
engines return the same rows, and print a Markdown table with the ratios.
Needs `pip install duckdb`.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]

MACROS = [
    # The BG/NBD P(alive) of vigil_engine::bgnbd::BgNbdParams::p_alive (1 when x == 0; NULL for
    # an impossible history or non-positive parameters, as the UDF).
    """CREATE OR REPLACE MACRO p_alive(x, t_x, big_t, r, alpha, a, b) AS
       CASE WHEN x IS NULL OR t_x IS NULL OR big_t IS NULL THEN NULL
            WHEN NOT (r > 0 AND alpha > 0 AND a > 0 AND b > 0) OR x < 0 OR t_x < 0 OR big_t < t_x THEN NULL
            WHEN x <= 0 THEN 1.0
            ELSE 1.0 / (1.0 + a / (b + x - 1) * pow((alpha + big_t) / (alpha + t_x), r + x)) END""",
    """CREATE OR REPLACE MACRO health_band(score) AS
       CASE WHEN score IS NULL THEN NULL WHEN score >= 70 THEN 'healthy'
            WHEN score >= 40 THEN 'watch' ELSE 'at_risk' END""",
]


def cargo_bench(*args):
    cmd = ["cargo", "bench", "-q", "-p", "vigil-queries", "--bench", "analyst_sql", "--", *args]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=REPO, check=True)


def duck(data_dir: Path, threads: int):
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{data_dir}/events/*.parquet')")
    con.execute(f"CREATE VIEW accounts AS SELECT * FROM read_parquet('{data_dir}/accounts.parquet')")
    con.execute(f"CREATE VIEW health AS SELECT * FROM read_parquet('{data_dir}/health.parquet')")
    con.execute(
        "CREATE VIEW alerts AS SELECT 'x' AS alert_id, 'x' AS account_id, TIMESTAMPTZ '2000-01-01' AS ts,"
        " 'x' AS kind, 'x' AS severity, 'x' AS message WHERE false"
    )
    for m in MACROS:
        con.execute(m)
    return con


def norm(v):
    if v is None or v == "":
        return ""
    try:
        return round(float(v), 2)
    except (TypeError, ValueError):
        s = str(v)
        # DuckDB prints timestamps with a space and microseconds, arrow's CSV with a T and
        # only the digits it needs.
        if len(s) >= 19 and s[4] == "-" and s[10] in "T ":
            s = s.replace("T", " ")
            if "." in s:
                s = s.rstrip("0").rstrip(".")
        return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--dir", default="/tmp/vigil-bench")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    data = Path(args.dir) / f"events-{args.events}"
    if not (data / "events").is_dir():
        data.mkdir(parents=True, exist_ok=True)
        cargo_bench("gen", str(data), str(args.events))
    cargo_bench("run", str(data), str(args.iterations))
    df_times = {t["query"]: t for t in json.loads((data / "datafusion_timings.json").read_text())}

    con = duck(data, args.threads)
    rows = []
    mismatches = []
    for name, t in df_times.items():
        sql = (data / "sql" / f"{name}.sql").read_text()
        times = []
        result = None
        for i in range(args.iterations + 1):
            start = time.perf_counter()
            cur = con.execute(sql)
            result = cur.fetchall()
            el = (time.perf_counter() - start) * 1000
            if i > 0:
                times.append(el)
        ddb = statistics.median(times)
        with open(data / "results" / f"datafusion_{name}.csv") as f:
            r = list(csv.reader(f))[1:]
        got_df = [[norm(v) for v in row] for row in r]
        got_ddb = [[norm(v) for v in row] for row in result]
        same = got_df == got_ddb
        if not same:
            mismatches.append(name)
            for a, b in zip(got_df, got_ddb):
                if a != b:
                    print(f"{name}: first difference\n  datafusion {a}\n  duckdb     {b}", file=sys.stderr)
                    break
            else:
                print(f"{name}: {len(got_df)} vs {len(got_ddb)} rows", file=sys.stderr)
        rows.append((name, t["median_ms"], ddb, t["rows"], same))

    events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    lines = [
        f"{events:,} events, {args.iterations} timed runs each (median), {args.threads} threads, same Parquet files.",
        "",
        "| query | rows | DataFusion (ms) | DuckDB (ms) | DataFusion / DuckDB | same rows |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, dfm, ddb, n, same in rows:
        lines.append(f"| {name} | {n} | {dfm:.0f} | {ddb:.0f} | {dfm / ddb:.2f} | {'yes' if same else 'NO'} |")
    total_df = sum(r[1] for r in rows)
    total_ddb = sum(r[2] for r in rows)
    lines.append(f"| **all** | | {total_df:.0f} | {total_ddb:.0f} | {total_df / total_ddb:.2f} | |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if mismatches:
        print(f"results differ for: {', '.join(mismatches)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
