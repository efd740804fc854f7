"""docextract.cache.LruCache: the one cache behind schema reports, validators and the service's tasks."""

from __future__ import annotations

from docextract.cache import LruCache


def test_the_least_recently_used_entry_goes_first():
    cache: LruCache[str, int] = LruCache(2)
    assert cache.put("a", 1) == 1
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)
    cache.put("c", 4)  # a new value under a known key replaces it
    assert cache.get("c") == 4 and len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None
