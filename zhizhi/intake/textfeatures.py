"""Chinese text features shared by duplicate detection, category suggestion and keyword topics.

- `normalize`: full-width → half-width, lower case, punctuation and whitespace removed, so "垃圾桶，满了！"
  and "垃圾桶满了" give the same characters.
- `shingles`: character 2- and 3-grams of the normalized text (no segmentation: a wrong cut would
  hide a shared word, and reports are short).
- `MinHasher`: k salted universal hashes over the shingles (numpy), the Jaccard estimate between two
  signatures, and LSH band keys for candidate search.
- `keywords` / `tokens`: jieba, loaded once per process and silenced (its dictionary load costs about
  a second, so nothing imports it at module load).
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

_PUNCT = re.compile(r"[\W_]+", re.UNICODE)
# Words that carry no topic in a resident's report (jieba's idf table still ranks some of them high).
_STOPWORDS = (
    "反映 希望 尽快 处理 问题 情况 相关 部门 请求 居民 市民 来电 来信 投诉 现在 一直 已经 没有 这个 那个 "
    "我们 他们 你们 我家 小区 附近 一下 一些 非常 比较 还是 就是 可以 能够 要求 解决 严重 影响 今天 昨天 "
    "每天 多次 麻烦 谢谢 请问 那里 这里 这边 那边 时候 什么 怎么 为什么 因为 所以 但是 如果 而且 然后 "
    "一个 好几 看看 派人 重视 答复 给个 现场 发现 存在 网格员 巡查 上报 拍照 "
)
STOPWORDS = frozenset(_STOPWORDS.split())


def normalize(text: str) -> str:
    """Half-width, lower-case text without punctuation or whitespace."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return _PUNCT.sub("", text)


def shingles(text: str, sizes: Iterable[int] = (2, 3)) -> set[str]:
    """Character n-grams of the normalized text; a text shorter than the smallest size is itself."""
    norm = normalize(text)
    out: set[str] = set()
    for n in sizes:
        out.update(norm[i : i + n] for i in range(len(norm) - n + 1))
    if not out and norm:
        out.add(norm)
    return out


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


# A prime just above 2**32: (a·x + b) mod P with a < 2**31 and x < 2**32 stays inside uint64.
_PRIME = np.uint64(4294967311)
_MAXHASH = np.uint32(0xFFFFFFFF)


class MinHasher:
    """MinHash signatures (`perms` salted universal hashes) with LSH banding (`bands` × rows)."""

    def __init__(self, perms: int = 64, bands: int = 16, seed: int = 20261123) -> None:
        if perms % bands:
            raise ValueError("perms must be a multiple of bands")
        self.perms, self.bands, self.rows = perms, bands, perms // bands
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, 2**31 - 1, size=perms, dtype=np.uint64)
        self.b = rng.integers(0, 2**32 - 1, size=perms, dtype=np.uint64)

    def signature(self, grams: Iterable[str]) -> np.ndarray:
        """uint32[perms]; an empty set gives all-max (similar to nothing)."""
        xs = np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64)
        if xs.size == 0:
            return np.full(self.perms, _MAXHASH, dtype=np.uint32)
        hashed = (np.outer(self.a, xs) + self.b[:, None]) % _PRIME
        return (hashed.min(axis=1) & np.uint64(0xFFFFFFFF)).astype(np.uint32)

    def of_text(self, text: str) -> np.ndarray:
        return self.signature(shingles(text))

    @staticmethod
    def similarity(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
        """Estimated Jaccard similarity: the share of equal minimums."""
        return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)

    @staticmethod
    def similarities(sig: np.ndarray, many: np.ndarray) -> np.ndarray:
        """Estimated Jaccard of `sig` against each row of `many` (n × perms)."""
        if many.size == 0:
            return np.zeros(0)
        return (many == sig[None, :]).mean(axis=1)

    def band_keys(self, sig: np.ndarray) -> list[int]:
        """One key per band (band number folded in, so equal rows of different bands do not meet)."""
        rows = sig.reshape(self.bands, self.rows)
        return [hash((i, row.tobytes())) for i, row in enumerate(rows)]


# Words of grassroots governance that jieba's general dictionary cuts apart ("广场舞" → 广场/舞).
DOMAIN_WORDS = (
    "广场舞 停车位 停车难 电动车 垃圾桶 垃圾箱 垃圾房 加装电梯 飞线充电 群租房 僵尸车 共享单车 油烟 小广告 "
    "占道经营 违章搭建 消防通道 楼道堆物 窨井 井盖 路灯 噪音 扰民 红茶议事会 物业费 装修垃圾 流浪猫 流浪狗"
)

# --- jieba, loaded once ---------------------------------------------------------------------------
_jieba_lock = threading.Lock()
_jieba: dict[str, Any] = {}


def _load() -> tuple[Any, Any]:
    if "jieba" not in _jieba:
        with _jieba_lock:
            if "jieba" not in _jieba:
                import jieba
                import jieba.analyse

                jieba.setLogLevel(logging.WARNING)
                logging.getLogger("jieba").setLevel(logging.WARNING)
                jieba.initialize()
                for word in DOMAIN_WORDS.split():
                    jieba.add_word(word, freq=20000)
                _jieba["analyse"] = jieba.analyse
                _jieba["jieba"] = jieba
    return _jieba["jieba"], _jieba["analyse"]


def tokens(text: str) -> list[str]:
    """jieba words of the text, punctuation, single characters and stop words dropped."""
    jieba, _ = _load()
    text = unicodedata.normalize("NFKC", text or "")
    return [w for w in jieba.lcut(text) if len(w) > 1 and w not in STOPWORDS and not _PUNCT.fullmatch(w)]


def add_words(words: Iterable[str]) -> None:
    """Teach jieba more words (the responsibility list's keywords), once per process."""
    jieba, _ = _load()
    known = _jieba.setdefault("added", set())
    for word in words:
        if word and len(word) > 1 and word not in known:
            jieba.add_word(word, freq=20000)
            known.add(word)


def sub_words(word: str) -> list[str]:
    """The word and the dictionary words inside it ("停车难" → 停车, 停车难), for counting topics."""
    jieba, _ = _load()
    return [w for w in jieba.lcut_for_search(word) if len(w) > 1 and w not in STOPWORDS]


def keywords(text: str, top: int = 8) -> list[str]:
    """The text's keywords by jieba's TF-IDF, stop words and numbers dropped."""
    _, analyse = _load()
    text = unicodedata.normalize("NFKC", text or "")
    out = []
    for word in analyse.extract_tags(text, topK=top * 2):
        if word in STOPWORDS or len(word) < 2 or word.isdigit():
            continue
        out.append(word)
        if len(out) >= top:
            break
    return out
