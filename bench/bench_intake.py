"""Reports per second through intake → dedup → suggest → route (`suggest.classify_and_register`)
against an index of N open and recent cases, as a ratio to the plain create path
(`services.register_case` with the category given: route + auto-dispatch, no dedup, no suggestion),
both measured in the same run on the same database; plus dedup precision/recall on the labelled
pairs and suggestion top-1/top-3 on the held-out reports.

The child process migrates a throwaway database (PostgreSQL `bench_intake` when reachable, else a
temporary SQLite file), loads the demo street (scale 0.05) and the demo responsibility list, then
bulk-inserts N open cases reported within the last 72 hours (texts from the labelled-set generator,
points spread over a 60 × 45 km city-sized box around the street, a tenth of them inside the street),
builds the dedup index once (timed on its own), trains the suggester on suggest_train.json, and
measures the two paths on the same generated reports, a fifth of them paraphrases of indexed cases
next to them (so merges happen).

Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_intake.py [--cases 1000000] [--reports 300] [--engine postgres|sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import pg_reachable, run_child  # noqa: E402

PG_NAME = "bench_intake"


def measured_quality() -> dict[str, float]:
    """Dedup precision/recall and suggestion accuracy on the committed labelled sets."""
    from zhizhi.intake import dedup, suggest
    from zhizhi.intake.data.generate import LIST_FILE, load_leaves

    here = Path(dedup.__file__).resolve().parent / "data"
    items = {
        leaf["code"]: (leaf["major"], float(leaf.get("dedup_distance_m") or 50)) for leaf in load_leaves()
    }
    pairs = json.loads((here / "dedup_pairs.json").read_text(encoding="utf-8"))
    scored = [(dedup.judge_pair(p["a"], p["b"], items), p["duplicate"]) for p in pairs]
    out: dict[str, float] = {"pairs": len(pairs)}
    for name, threshold in (("flagged", dedup.low_threshold()), ("sure", dedup.high_threshold())):
        tp = sum(1 for s, d in scored if s >= threshold and d)
        fp = sum(1 for s, d in scored if s >= threshold and not d)
        fn = sum(1 for s, d in scored if s < threshold and d)
        out[f"{name}_precision"] = tp / max(tp + fp, 1)
        out[f"{name}_recall"] = tp / max(tp + fn, 1)
    data = json.loads(LIST_FILE.read_text(encoding="utf-8"))
    leaves = suggest.items_from_list(data)
    by_code = {c.code: c for c in leaves}
    train = json.loads((here / "suggest_train.json").read_text(encoding="utf-8"))
    held = json.loads((here / "suggest_heldout.json").read_text(encoding="utf-8"))
    model = suggest.fit([(r["text"], r["category"]) for r in train], leaves)
    top1 = top3 = 0
    for row in held:
        codes = [c.code for c, _ in suggest.suggest(row["text"], model=model, items=by_code)]
        top1 += codes[0] == row["category"]
        top3 += row["category"] in codes
    out.update(heldout=len(held), top1=top1 / len(held), top3=top3 / len(held))
    return out


def child(n_cases: int, n_reports: int) -> None:
    import django

    django.setup()
    import datetime as dt
    import io
    import random
    import resource

    from django.core.management import call_command
    from django.db import connection

    from zhizhi import clock
    from zhizhi.cases import services
    from zhizhi.cases.models import Case, Category
    from zhizhi.geo.models import Building
    from zhizhi.intake import dedup, suggest
    from zhizhi.intake.data import generate
    from zhizhi.orgs.models import User

    call_command("migrate", "--no-input", verbosity=0)
    call_command("demo_street", seed=1, scale=0.05, stdout=io.StringIO())
    call_command("load_responsibility_list", stdout=io.StringIO())
    rng = random.Random(5)
    leaves = generate.load_leaves()
    cats = {c.code: c for c in Category.objects.filter(parent__isnull=False)}
    points = list(Building.objects.values_list("lng", "lat"))
    lng0 = sum(p[0] for p in points) / len(points)
    lat0 = sum(p[1] for p in points) / len(points)

    # --- N open and recent cases, bulk-inserted (the index's population) -------------------------
    now = clock.now()
    started = time.perf_counter()
    batch: list[Case] = []
    indexed: list[tuple[dict, str, float, float, dict]] = []  # a sample to write duplicates of
    for i in range(n_cases):
        leaf = rng.choice(leaves)
        where, _, _ = generate.place(rng)
        facts = generate.problem(leaf, rng)
        text = generate.render(leaf, where, facts, rng.choice(generate.OPENERS), ["effect", "request"])
        if i % 10 == 0:
            x, y = rng.choice(points)
        else:
            x, y = lng0 + rng.uniform(-0.3, 0.3), lat0 + rng.uniform(-0.2, 0.2)
        title, _, description = text.partition("，")
        batch.append(
            Case(
                number=f"BX{i:010d}",
                title=title[:200],
                description=description,
                category=cats[leaf["code"]],
                status=rng.choice(("registered", "dispatched", "handling")),
                channel="hotline",
                lng=round(x, 6),
                lat=round(y, 6),
                reported_at=now - dt.timedelta(minutes=rng.uniform(10, 71 * 60)),
                area_path="",
            )
        )
        if i % 10 == 0 and len(indexed) < 4 * n_reports:
            indexed.append((leaf, where, x, y, facts))
        if len(batch) >= 5000:
            Case.objects.bulk_create(batch, batch_size=5000)
            batch.clear()
    if batch:
        Case.objects.bulk_create(batch, batch_size=5000)
    insert_s = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE cases_case")

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    dedup.INDEX.refresh()
    build_s = time.perf_counter() - started
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = Path(dedup.__file__).resolve().parent / "data"
    train = json.loads((data / "suggest_train.json").read_text(encoding="utf-8"))
    suggest.use(suggest.fit([(r["text"], r["category"]) for r in train]))

    # --- the measured reports: a fifth paraphrase an indexed case next to it --------------------------
    def make_reports(offset: int) -> list[tuple[str, str, str, float, float]]:
        out = []
        for j in range(offset, offset + n_reports):
            if j % 5 == 0 and indexed:
                leaf, where, x, y, facts = indexed[j % len(indexed)]
                text = generate.paraphrase(leaf, where, facts, rng)
                x, y = generate.moved(x, y, rng.uniform(0, 10), rng)
            else:
                leaf = rng.choice(leaves)
                where, _, _ = generate.place(rng)
                x, y = rng.choice(points)
                x, y = x + rng.uniform(-0.0002, 0.0002), y + rng.uniform(-0.0002, 0.0002)
                text = generate.render(leaf, where, generate.problem(leaf, rng), "市民来电反映：", ["effect"])
            title, _, description = text.partition("，")
            out.append((title[:200], description, leaf["code"], x, y))
        return out

    # Each path and round gets its own fresh reports (one path's cases must not be the other's
    # duplicates), drawn from the same distribution.
    sets = [make_reports(k * n_reports) for k in range(4)]
    dispatcher = User.objects.get(username="dispatcher")

    def plain(tag: str, reports: list[tuple[str, str, str, float, float]]) -> float:
        t0 = time.perf_counter()
        for k, (title, description, code, x, y) in enumerate(reports):
            services.register_case(
                dispatcher,
                title=title,
                description=description,
                category=code,
                lng=x,
                lat=y,
                channel="hotline",
                external_id=f"{tag}-{k}",
            )
        return len(reports) / (time.perf_counter() - t0)

    def full(tag: str, reports: list[tuple[str, str, str, float, float]]) -> tuple[float, dict[str, int]]:
        counts = {"merged": 0, "dispatched": 0, "waiting": 0, "likely": 0}
        t0 = time.perf_counter()
        for k, (title, description, _, x, y) in enumerate(reports):
            result = suggest.classify_and_register(
                dispatcher,
                title=title,
                description=description,
                lng=x,
                lat=y,
                channel="hotline",
                external_id=f"{tag}-{k}",
            )
            if result.merged_into is not None:
                counts["merged"] += 1
            elif result.case.status == "dispatched":
                counts["dispatched"] += 1
            else:
                counts["waiting"] += 1
            counts["likely"] += bool(result.candidates and not result.merged_into)
        return len(reports) / (time.perf_counter() - t0), counts

    # Warm-up (jieba, caches, the index's catch-up query), then alternate to share the machine's noise.
    suggest.suggest("垃圾桶满了")
    plain_rates, full_rates = [], []
    counts: dict[str, int] = {}
    for rnd in range(2):
        plain_rates.append(plain(f"p{rnd}", sets[2 * rnd]))
        rate, counts = full(f"f{rnd}", sets[2 * rnd + 1])
        full_rates.append(rate)
    quality = measured_quality()
    print(
        json.dumps(
            {
                "engine": connection.vendor,
                "cases": n_cases,
                "indexed": dedup.INDEX.n,
                "insert_s": insert_s,
                "index_build_s": build_s,
                "index_rss_mb": (rss1 - rss0) / 1024,
                "reports": n_reports,
                "plain_per_s": max(plain_rates),
                "full_per_s": max(full_rates),
                "outcomes": counts,
                **quality,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--engine", choices=("postgres", "sqlite"), default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.cases, args.reports)
        return
    engine = args.engine or ("postgres" if pg_reachable() else "sqlite")
    r = run_child(
        __file__,
        engine,
        PG_NAME,
        [f"--cases={args.cases}", f"--reports={args.reports}"],
        prefix="zhizhi-bench-intake-",
        extra_env=lambda tmp: {"ZHIZHI_SUGGESTER_PATH": Path(tmp) / "suggester.json"},
    )
    load = os.getloadavg()[0]
    print(f"Intake with dedup + suggestion, {os.cpu_count()} cores, load average {load:.1f} (shared machine)")
    print(
        f"engine {r['engine']}; index of {r['indexed']:,} open+recent cases (--cases {r['cases']:,}): "
        f"bulk insert {r['insert_s']:.0f} s, index build {r['index_build_s']:.1f} s, "
        f"+{r['index_rss_mb']:.0f} MB resident"
    )
    print(
        f"plain register_case  {r['plain_per_s']:8.1f} reports/s\n"
        f"dedup+suggest+route  {r['full_per_s']:8.1f} reports/s   "
        f"cost ratio plain/full = {r['plain_per_s'] / r['full_per_s']:.2f}×  "
        f"({r['reports']} fresh reports per path and round, best of 2 rounds)"
    )
    print(f"outcomes of the last full run: {r['outcomes']}")
    print(
        f"dedup on {r['pairs']} labelled pairs: flagged (≥ low) P={r['flagged_precision']:.3f} "
        f"R={r['flagged_recall']:.3f}; sure (auto-merge) P={r['sure_precision']:.3f} R={r['sure_recall']:.3f}"
    )
    print(f"suggestion on {r['heldout']} held-out reports: top-1={r['top1']:.3f} top-3={r['top3']:.3f}")


if __name__ == "__main__":
    main()
