"""Category suggestion: from a report's Chinese text to the responsibility-list item, with a confidence.

Three signals, added in log space and turned into probabilities with a softmax:
1. a multinomial naive Bayes classifier (numpy) over character 2-grams and jieba words, trained on
   past cases whose category a dispatcher set or confirmed (`category_certain`), the corrections in
   `SuggestionLog`, and the list's own item names and keywords as small pseudo-documents;
2. the responsibility list's keywords (`Category.keywords`) found in the text, longer ones weighing
   more (the same rule as `routing.suggest_category`);
3. jieba's TF-IDF keywords of the text matched against the item names.

The model lives in `var/suggester.json` (`ZHIZHI_SUGGESTER_PATH`); `manage.py train_suggester` and the
daily huey task retrain it. Without a model file the classifier is trained from the list alone.

`classify_and_register(...)` is what intake channels call instead of `register_case`: suggestion →
duplicate check → registration (auto-dispatch when the suggestion is confident and the grid
resolves, which the core does) → automatic merge of a sure duplicate → SuggestionLog row.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from zhizhi import clock
from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case, Category
from zhizhi.intake import dedup
from zhizhi.intake.models import SuggestionLog
from zhizhi.intake.textfeatures import keywords, normalize, tokens

ALPHA = 1.0  # Laplace smoothing of the word counts (chosen on a split of the training set)
KEYWORD_WEIGHT = 1.5  # log-odds per character of a matched list keyword
NAME_WEIGHT = 2.0  # log-odds when a jieba keyword of the text is (in) the item's name
PSEUDO_REPEAT = 3  # how often the list's own keywords count as a training document
TRAIN_LIMIT = 200_000  # most recent confirmed cases read for training


def model_path() -> Path:
    default = Path(settings.BASE_DIR) / "var" / "suggester.json"
    return Path(getattr(settings, "ZHIZHI_SUGGESTER_PATH", default))


def auto_threshold() -> float:
    """At or above this confidence a suggestion counts as certain (the core may auto-dispatch)."""
    return float(getattr(settings, "ZHIZHI_SUGGEST_AUTO", 0.85))


def features(text: str) -> list[str]:
    norm = normalize(text)
    grams = [norm[i : i + 2] for i in range(len(norm) - 1)]
    return grams + ["w:" + w for w in tokens(text)]


@dataclass
class Model:
    classes: list[str]  # 小类 codes
    counts: list[dict[str, float]]  # per class: feature → count
    docs: list[int]
    trained_at: str = ""
    vocab: dict[str, int] = field(default_factory=dict)
    logp: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    prior: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unseen: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def compile(self) -> Model:
        self.vocab = {}
        for per in self.counts:
            for f in per:
                self.vocab.setdefault(f, len(self.vocab))
        k, v = len(self.classes), len(self.vocab)
        mat = np.zeros((k, v), dtype=np.float64)
        for c, per in enumerate(self.counts):
            for f, n in per.items():
                mat[c, self.vocab[f]] = n
        totals = mat.sum(axis=1) + ALPHA * (v + 1)
        self.logp = np.log(mat + ALPHA) - np.log(totals)[:, None]
        self.unseen = np.log(ALPHA) - np.log(totals)
        docs = np.asarray(self.docs, dtype=np.float64) + 1
        self.prior = np.log(docs / docs.sum())
        return self

    def log_scores(self, feats: Iterable[str]) -> np.ndarray:
        idx = [self.vocab[f] for f in feats if f in self.vocab]
        # Features never seen in training say nothing about the class: they are left out.
        return self.prior + (self.logp[:, idx].sum(axis=1) if idx else 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "counts": self.counts,
            "docs": self.docs,
            "trained_at": self.trained_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Model:
        return cls(data["classes"], data["counts"], data["docs"], data.get("trained_at", "")).compile()


def leaves() -> list[Category]:
    return list(Category.objects.filter(parent__isnull=False, active=True).order_by("code"))


def items_from_list(data: list[dict[str, Any]]) -> list[Category]:
    """Unsaved 小类 objects (code, name, keywords, parent) from a responsibility-list JSON, so the
    labelled sets can be measured without a database."""
    out = []
    for top in data:
        major = Category(code=top["code"], name=top["name"])
        for leaf in top.get("children", []):
            out.append(
                Category(
                    code=leaf["code"], name=leaf["name"], keywords=leaf.get("keywords") or [], parent=major
                )
            )
    return out


def pseudo_documents(items: Iterable[Category]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        words = [item.name, *(item.keywords or [])]
        for _ in range(PSEUDO_REPEAT):
            out.append(("，".join(words), item.code))
    return out


def fit(examples: Iterable[tuple[str, str]], items: list[Category] | None = None) -> Model:
    """Train on (text, 小类 code) pairs plus the list's own keywords."""
    items = leaves() if items is None else items
    codes = [c.code for c in items]
    pos = {code: i for i, code in enumerate(codes)}
    counts: list[Counter[str]] = [Counter() for _ in codes]
    docs = [0] * len(codes)
    for text, code in [*pseudo_documents(items), *examples]:
        i = pos.get(code)
        if i is None:
            continue
        counts[i].update(features(text))
        docs[i] += 1
    model = Model(codes, [dict(c) for c in counts], docs, clock.now().isoformat())
    return model.compile()


def training_examples(limit: int = TRAIN_LIMIT) -> list[tuple[str, str]]:
    """Past cases with a category a person set or confirmed, and the dispatchers' corrections."""
    rows = (
        Case.objects.filter(category__isnull=False, category_certain=True)
        .exclude(status="cancelled")
        .order_by("-pk")
        .values_list("title", "description", "category__code")[:limit]
    )
    out = [(f"{t} {d}", code) for t, d, code in rows]
    for text, code in SuggestionLog.objects.filter(chosen__isnull=False).values_list("text", "chosen__code")[
        :limit
    ]:
        out.append((text, code))
    return out


_lock = threading.Lock()
_cache: dict[str, Any] = {}


def train(path: Path | None = None, examples: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Retrain from the database (or `examples`), write the model file, and use it from now on."""
    sync_choices()
    examples = training_examples() if examples is None else examples
    model = fit(examples)
    target = path or model_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(model.to_json(), ensure_ascii=False), encoding="utf-8")
    tmp.replace(target)
    with _lock:
        _cache["model"] = model
    return {"examples": len(examples), "classes": len(model.classes), "features": len(model.vocab)}


def use(model: Model | None) -> None:
    """Set (or with None, forget) the process's model (tests; after a list change)."""
    with _lock:
        _cache.pop("model", None)
        _cache.pop("items", None)
        if model is not None:
            _cache["model"] = model


def current() -> Model:
    with _lock:
        model = _cache.get("model")
        if model is None:
            path = model_path()
            if path.exists():
                model = Model.from_json(json.loads(path.read_text(encoding="utf-8")))
            else:
                model = fit([])
            _cache["model"] = model
        return model


def _items(codes: list[str]) -> dict[str, Category]:
    with _lock:
        items = _cache.get("items")
    if items is None or any(code not in items for code in codes):
        items = {c.code: c for c in Category.objects.filter(code__in=codes)}
        with _lock:
            _cache["items"] = items
    return items


def suggest(
    text: str, top: int = 3, *, model: Model | None = None, items: dict[str, Category] | None = None
) -> list[tuple[Category, float]]:
    """The `top` most likely 小类 for the text with confidences (summing to ≤ 1), best first.
    `model`/`items` replace the process's model and the database's list (measurements, tests)."""
    model = model or current()
    if not model.classes or not (text or "").strip():
        return []
    scores = model.log_scores(features(text)).astype(np.float64)
    items = items if items is not None else _items(model.classes)
    found = set(keywords(text, top=6))
    for i, code in enumerate(model.classes):
        item = items.get(code)
        if item is None:
            continue
        hit = sum(len(w) for w in (item.keywords or []) if w and w in text)
        if item.name in text:
            hit += len(item.name)
        name_hit = any(w in item.name or item.name in w for w in found)
        scores[i] += KEYWORD_WEIGHT * hit + (NAME_WEIGHT if name_hit else 0.0)
    scores -= scores.max()
    probs = np.exp(scores)
    probs /= probs.sum()
    order = np.argsort(-probs)[:top]
    return [(items[model.classes[i]], float(probs[i])) for i in order if model.classes[i] in items]


# --- the record of suggestions and corrections -----------------------------------------------------
def log_suggestion(case: Case | None, text: str, ranked: list[tuple[Category, float]]) -> SuggestionLog:
    top = ranked[0] if ranked else (None, 0.0)
    return SuggestionLog.objects.create(
        case=case,
        text=text[:4000],
        suggested=top[0],
        confidence=round(top[1], 4),
        top3=[c.code for c, _ in ranked[:3]],
    )


def record_choice(case: Case, category: Category | None = None) -> int:
    """The dispatcher set or confirmed the case's category: close its open suggestion rows."""
    chosen = category or case.category
    if chosen is None:
        return 0
    n = 0
    for row in SuggestionLog.objects.filter(case=case, chosen__isnull=True):
        row.chosen = chosen
        row.corrected = row.suggested_id != chosen.pk
        row.save(update_fields=["chosen", "corrected"])
        n += 1
    return n


def sync_choices() -> int:
    """Fill the choices of suggestions whose case has since got a confirmed category (periodic)."""
    n = 0
    rows = SuggestionLog.objects.filter(
        chosen__isnull=True, case__category__isnull=False, case__category_certain=True
    ).select_related("case")
    for row in rows.iterator(chunk_size=1000):
        assert row.case is not None
        row.chosen_id = row.case.category_id
        row.corrected = row.suggested_id != row.case.category_id
        row.save(update_fields=["chosen", "corrected"])
        n += 1
    return n


def accuracy_report() -> dict[str, Any]:
    """Top-1 / top-3 accuracy of the logged suggestions against the dispatchers' choices, per 大类."""
    sync_choices()
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"n": 0, "top1": 0, "top3": 0, "corrected": 0})
    rows = SuggestionLog.objects.filter(chosen__isnull=False).select_related("chosen__parent")
    for row in rows.iterator(chunk_size=2000):
        chosen = row.chosen
        assert chosen is not None
        major = chosen.parent or chosen
        cell = per[f"{major.code} {major.name}"]
        cell["n"] += 1
        cell["top1"] += int(row.suggested_id == chosen.pk)
        cell["top3"] += int(chosen.code in (row.top3 or []))
        cell["corrected"] += int(row.corrected)
    total = {k: sum(v[k] for v in per.values()) for k in ("n", "top1", "top3", "corrected")}

    def rates(cell: dict[str, Any]) -> dict[str, Any]:
        n = cell["n"] or 1
        return {**cell, "top1_rate": cell["top1"] / n, "top3_rate": cell["top3"] / n}

    return {
        "overall": rates(total),
        "per_major": {k: rates(v) for k, v in sorted(per.items())},
    }


# --- the intake call --------------------------------------------------------------------------------
@dataclass
class Intake:
    case: Case
    suggestions: list[tuple[Category, float]]
    merged_into: Case | None = None
    candidates: list[dedup.Candidate] = field(default_factory=list)
    log: SuggestionLog | None = None


def classify_and_register(
    actor: Any, *, title: str, description: str = "", category: Any = None, **kwargs: Any
) -> Intake:
    """Suggest → dedup → register (the core auto-dispatches a certain category in a resolved grid)
    → merge a sure duplicate. `kwargs` are `register_case`'s (lng, lat, channel, reporter…).

    With `category` given, it is used as is (the channel knew it, e.g. a camera event type).
    Otherwise a suggestion at or above `ZHIZHI_SUGGEST_AUTO` is taken as certain; a weaker one is
    filed as an uncertain category, so the dispatcher confirms it from the queue."""
    text = f"{title} {description}".strip()
    ranked = suggest(text)
    certain = kwargs.pop("category_certain", True)
    if category in (None, "") and ranked:
        best, confidence = ranked[0]
        category, certain = best, confidence >= auto_threshold()
    cat = case_services.category_by(category) if category not in (None, "") else None
    probe = dedup.Report(text, _float(kwargs.get("lng")), _float(kwargs.get("lat")), clock.now(), cat)
    candidates = dedup.find_duplicates(probe)
    sure = [c for c in candidates if c.sure]
    if sure:
        kwargs["register"] = False  # a report waiting to be merged is not dispatched first
    with transaction.atomic():
        case = case_services.register_case(
            actor, title=title, description=description, category=cat, category_certain=certain, **kwargs
        )
        log = log_suggestion(case, text, ranked)
    merged = None
    if sure and case.status == "reported":
        try:
            dedup.merge_into(dedup.robot(), case, sure[0].case, f"系统自动合并：{sure[0].reason}")
            merged = sure[0].case
        except (case_services.IllegalAction, case_services.NotFound, dedup.Invalid, dedup.Forbidden):
            # The parent closed a moment ago: the report waits in the queue as a normal one.
            case = case_services.register_reported(dedup.robot(), case.pk)
        case.refresh_from_db()
    return Intake(case, ranked, merged, candidates, log)


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


@db_periodic_task(crontab(minute="40", hour="2"))
def retrain_suggester_daily() -> dict[str, Any]:
    """Daily retraining on the day's confirmed and corrected cases (the model file is replaced)."""
    return train()
