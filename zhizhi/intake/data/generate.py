"""Build the labelled sets of duplicate detection and category suggestion (seeded, reproducible).

    .venv/bin/python -m zhizhi.intake.data.generate          # rewrites the three JSON files here

- `dedup_pairs.json`: pairs of reports labelled duplicate / not duplicate. Duplicates are paraphrases
  of one problem (synonym swaps, reordered clauses, details added or dropped, another channel's
  wording, or a second resident's own description) near the same place within hours. Non-duplicates
  are the same wording far away, the same place days later (outside the window), a sibling item of
  the same 大类 at the same place, and another 大类 at the same place.
- `suggest_train.json`: reports with their 小类, written from the responsibility list's keywords with
  one family of sentence frames (stands in for past cases that dispatchers confirmed).
- `suggest_heldout.json`: ≥500 reports for accuracy only, written with *other* sentence frames, the
  demo generator's scenario sentences and keyword subsets: no sentence of it is in the training set.

Only the standard library and the two list files are read, so the sets do not depend on a database.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LIST_FILE = HERE.parent.parent / "cases" / "data" / "responsibility_list.json"

ROADS = ["小河路", "湖州街", "长乐路", "和睦路", "大关路", "登云路", "通益路", "金华路", "莫干山路", "德胜路"]
ESTATES = ["和睦新村", "大关西苑", "长乐苑", "登云公寓", "小河佳苑", "通益公寓", "德胜东村", "金华南苑"]
SPOTS = ["楼下", "门口", "旁边", "单元楼道口", "北门", "南门附近", "东侧", "停车场边上"]
SYNONYMS = [
    ("垃圾桶", "垃圾箱"),
    ("没人", "无人"),
    ("好几天", "多日"),
    ("门口", "大门前"),
    ("很", "特别"),
    ("车辆", "汽车"),
    ("坏了", "损坏了"),
    ("晚上", "夜里"),
    ("噪声", "噪音"),
    ("楼道", "过道"),
    ("清理", "清扫"),
    ("马上", "尽快"),
    ("一直", "始终"),
    ("附近", "周边"),
    ("居民", "住户"),
]
OPENERS = ["", "市民来电反映：", "居民在线反映：", "来信反映：", "网格员巡查发现：", "我想反映一下，"]
DURATIONS = ["已经两天了", "持续一个多星期了", "今天早上发现的", "好几天了", "昨天晚上开始"]
EFFECTS = ["影响周边居民", "存在安全隐患", "群众意见较大", "影响正常生活", "很不方便"]
REQUESTS = ["希望尽快处理", "请相关部门来看看", "麻烦尽快派人处理", "希望给个答复"]
EXTRAS = ["已经拍了照片", "旁边就是幼儿园", "老人小孩经常经过", "之前也反映过一次", "晚上更明显"]

# Sentence frames: training and held-out never share one.
TRAIN_FRAMES = [
    "{where}{k1}，{k2}，{effect}。",
    "{where}出现{name}问题，{k1}{k2}，{request}。",
    "反映{where}{name}：{k1}，{duration}。",
    "{where}有{k1}的情况，{k2}，{request}。",
]
HELDOUT_FRAMES = [
    "你好，{where}这边{k1}，{k2}都{duration_h}了，{request_h}",
    "{duration_h}，{where}{k1}，真的受不了，{request_h}",
    "请问{where}{k1}归谁管？{k2}，{request_h}",
    "{where}{detail}，{effect_h}，{request_h}",
    "{detail}，就在{where}，{effect_h}",
]
DURATIONS_H = ["快一个月", "三四天", "半个多月", "整整一周", "两个礼拜"]
EFFECTS_H = ["大家都很有意见", "走路都要绕开", "老人出门很危险", "孩子们上学路过"]
REQUESTS_H = ["盼早日解决。", "请帮忙协调。", "能不能派人管一管？", "谢谢！", "急盼处理。"]


def load_leaves() -> list[dict[str, Any]]:
    leaves = []
    for top in json.loads(LIST_FILE.read_text(encoding="utf-8")):
        for leaf in top.get("children", []):
            leaves.append({**leaf, "major": top["code"], "major_name": top["name"]})
    return leaves


def scenario_details() -> dict[str, list[str]]:
    """The demo generator's scenario sentences by 小类 name fragment (held-out wording only)."""
    try:
        from zhizhi.cases.demo_history import SCENARIOS
    except Exception:  # Django not set up: the held-out set then uses frames only
        return {}
    return {fragment: details for fragment, _, details, _ in SCENARIOS}


def place(rng: random.Random) -> tuple[str, float, float]:
    if rng.random() < 0.6:
        where = f"{rng.choice(ESTATES)}{rng.randint(1, 30)}幢{rng.choice(SPOTS)}"
    else:
        where = f"{rng.choice(ROADS)}{rng.randint(1, 399)}号附近"
    return where, round(120.10 + rng.uniform(0, 0.02), 6), round(30.30 + rng.uniform(0, 0.01), 6)


def moved(lng: float, lat: float, metres: float, rng: random.Random) -> tuple[float, float]:
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = metres * math.cos(angle), metres * math.sin(angle)
    return (
        round(lng + dx / (111320 * math.cos(math.radians(lat))), 6),
        round(lat + dy / 110540, 6),
    )


def problem(leaf: dict[str, Any], rng: random.Random) -> dict[str, str]:
    words = list(leaf.get("keywords") or [leaf["name"]])
    k1, k2 = rng.sample(words, 2) if len(words) >= 2 else (words[0], leaf["name"])
    return {
        "detail": f"{k1}{rng.choice(['严重', '明显', '没人管', '好几处'])}，{k2}",
        "effect": rng.choice(EFFECTS),
        "duration": rng.choice(DURATIONS),
        "request": rng.choice(REQUESTS),
    }


def render(leaf: dict[str, Any], where: str, facts: dict[str, str], opener: str, order: list[str]) -> str:
    parts = [where + facts["detail"]] + [facts[k] for k in order if k in facts]
    return opener + "，".join(parts) + "。"


def swap_synonyms(text: str, rng: random.Random) -> str:
    for a, b in SYNONYMS:
        if a in text and rng.random() < 0.7:
            text = text.replace(a, b)
        elif b in text and rng.random() < 0.7:
            text = text.replace(b, a)
    return text


def paraphrase(leaf: dict[str, Any], where: str, facts: dict[str, str], rng: random.Random) -> str:
    """Another resident's or channel's wording of the same problem at the same place."""
    facts = dict(facts)
    kind = rng.random()
    if kind < 0.3:  # a second resident describes it in their own words
        facts["detail"] = problem(leaf, rng)["detail"]
    for key in ("effect", "duration", "request"):
        if rng.random() < 0.35:
            facts.pop(key, None)
    if rng.random() < 0.5:
        facts["extra"] = rng.choice(EXTRAS)
    order = [k for k in ("effect", "duration", "request", "extra") if k in facts]
    rng.shuffle(order)
    short = where if rng.random() < 0.7 else where[: max(4, len(where) - 3)]
    text = render(leaf, short, facts, rng.choice(OPENERS), order)
    return swap_synonyms(text, rng)


def build_pairs(leaves: list[dict[str, Any]], n: int = 420, seed: int = 4) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    by_major: dict[str, list[dict[str, Any]]] = {}
    for leaf in leaves:
        by_major.setdefault(leaf["major"], []).append(leaf)
    kinds = ["paraphrase"] * 5 + ["far", "late", "sibling", "other_major"]
    pairs = []
    for i in range(n):
        leaf = rng.choice(leaves)
        where, lng, lat = place(rng)
        facts = problem(leaf, rng)
        order = ["effect", "duration", "request"]
        rng.shuffle(order)
        a = {
            "text": render(leaf, where, facts, rng.choice(OPENERS), order),
            "category": leaf["code"],
            "lng": lng,
            "lat": lat,
            "minutes": 0,
        }
        kind = kinds[i % len(kinds)]
        dist = float(leaf.get("dedup_distance_m") or 50)
        if kind == "paraphrase":
            x, y = moved(lng, lat, rng.uniform(0, dist * 0.8), rng)
            b = {"text": paraphrase(leaf, where, facts, rng), "category": leaf["code"], "lng": x, "lat": y}
            b["minutes"] = rng.randint(5, 48 * 60)
        elif kind == "far":
            x, y = moved(lng, lat, rng.uniform(dist * 3, dist * 20), rng)
            b = {"text": paraphrase(leaf, where, facts, rng), "category": leaf["code"], "lng": x, "lat": y}
            b["minutes"] = rng.randint(5, 24 * 60)
        elif kind == "late":
            x, y = moved(lng, lat, rng.uniform(0, dist * 0.5), rng)
            b = {"text": paraphrase(leaf, where, facts, rng), "category": leaf["code"], "lng": x, "lat": y}
            b["minutes"] = rng.randint(4 * 24 * 60, 10 * 24 * 60)
        else:
            if kind == "sibling" and len(by_major[leaf["major"]]) > 1:
                other = rng.choice([x for x in by_major[leaf["major"]] if x["code"] != leaf["code"]])
            else:
                other = rng.choice([x for x in leaves if x["major"] != leaf["major"]])
                kind = "other_major"
            x, y = moved(lng, lat, rng.uniform(0, dist * 0.5), rng)
            text = render(other, where, problem(other, rng), rng.choice(OPENERS), ["effect", "request"])
            b = {"text": text, "category": other["code"], "lng": x, "lat": y}
            b["minutes"] = rng.randint(5, 24 * 60)
        pairs.append({"kind": kind, "duplicate": kind == "paraphrase", "a": a, "b": b})
    return pairs


def build_train(leaves: list[dict[str, Any]], per_leaf: int = 6, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for leaf in leaves:
        words = list(leaf.get("keywords") or [leaf["name"]])
        for _ in range(per_leaf):
            k1, k2 = rng.sample(words, 2) if len(words) >= 2 else (words[0], words[0])
            where, _, _ = place(rng)
            text = rng.choice(TRAIN_FRAMES).format(
                where=where,
                k1=k1,
                k2=k2,
                name=leaf["name"],
                effect=rng.choice(EFFECTS),
                duration=rng.choice(DURATIONS),
                request=rng.choice(REQUESTS),
            )
            out.append({"text": text, "category": leaf["code"], "major": leaf["major"]})
    return out


def build_heldout(leaves: list[dict[str, Any]], n: int = 672, seed: int = 11) -> list[dict[str, str]]:
    rng = random.Random(seed)
    scenarios = scenario_details()
    train_texts = {row["text"] for row in build_train(leaves)}
    out = []
    i = 0
    while len(out) < n:
        leaf = leaves[i % len(leaves)]
        i += 1
        words = list(leaf.get("keywords") or [leaf["name"]])
        # Held-out reports use one or two keywords, rarely the item's own name.
        k1, k2 = rng.sample(words, 2) if len(words) >= 2 else (words[0], words[0])
        details = next((d for frag, d in scenarios.items() if frag in leaf["name"]), None)
        detail = rng.choice(details) if details else f"{k1}{rng.choice(['的问题', '这件事', '的现象'])}"
        where, _, _ = place(rng)
        text = rng.choice(HELDOUT_FRAMES).format(
            where=where,
            k1=k1,
            k2=k2,
            detail=detail,
            duration_h=rng.choice(DURATIONS_H),
            effect_h=rng.choice(EFFECTS_H),
            request_h=rng.choice(REQUESTS_H),
        )
        if text in train_texts:
            continue
        out.append({"text": text, "category": leaf["code"], "major": leaf["major"]})
    return out


def write() -> dict[str, int]:
    leaves = load_leaves()
    sets = {
        "dedup_pairs.json": build_pairs(leaves),
        "suggest_train.json": build_train(leaves),
        "suggest_heldout.json": build_heldout(leaves),
    }
    for name, rows in sets.items():
        (HERE / name).write_text(json.dumps(rows, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return {name: len(rows) for name, rows in sets.items()}


if __name__ == "__main__":
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zhizhi.settings")
    import django

    django.setup()
    print(write())
