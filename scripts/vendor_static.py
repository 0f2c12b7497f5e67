"""Copy the front-end packages installed by `npm ci` into zhizhi/static/vendor (nothing from a CDN)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node_modules"
OUT = ROOT / "zhizhi" / "static" / "vendor"

FILES = {
    "htmx.org/dist/htmx.min.js": "htmx.min.js",
    "alpinejs/dist/cdn.min.js": "alpine.min.js",
    "echarts/dist/echarts.min.js": "echarts.min.js",
    "leaflet/dist/leaflet.js": "leaflet/leaflet.js",
    "leaflet/dist/leaflet.css": "leaflet/leaflet.css",
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for src, dst in FILES.items():
        target = OUT / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(NODE / src, target)
    images = NODE / "leaflet" / "dist" / "images"
    shutil.copytree(images, OUT / "leaflet" / "images", dirs_exist_ok=True)
    print(f"vendored {len(FILES)} files into {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
