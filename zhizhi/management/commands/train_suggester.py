"""Retrain the category suggester from confirmed cases and dispatchers' corrections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "重新训练类别推荐模型 / Retrain the category suggester (writes var/suggester.json)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--output", help="model file (default: ZHIZHI_SUGGESTER_PATH or var/suggester.json)"
        )
        parser.add_argument(
            "--examples", help="JSON file of {text, category} rows to train on instead of the database"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from zhizhi.intake import suggest

        examples = None
        if options.get("examples"):
            rows = json.loads(Path(options["examples"]).read_text(encoding="utf-8"))
            examples = [(row["text"], row["category"]) for row in rows]
        path = Path(options["output"]) if options.get("output") else None
        info = suggest.train(path, examples)
        self.stdout.write(
            f"已训练：{info['examples']} 条样本，{info['classes']} 个小类，{info['features']} 个特征 / "
            f"trained on {info['examples']} examples, {info['classes']} items, {info['features']} features"
        )
