"""The shared cache on Redis (astroplant_site/cache.py), as production runs it with CACHE_URL=redis://...
(the `redis_cache` fixture: the test Redis, under a key prefix of each test's own)."""

import threading
import time


def test_the_cache_works_as_djangos(redis_cache):
    redis_cache.set("greeting", {"hello": "world"}, 60)
    assert redis_cache.get("greeting") == {"hello": "world"}
    assert redis_cache.add("greeting", "other", 60) is False
    redis_cache.set("count", 1, 60)
    assert redis_cache.incr("count") == 2


def test_a_window_holds_at_most_its_limit_of_requests(redis_cache):
    # Given a limit of 3 requests in 60 s
    now = time.time()
    answers = [redis_cache.sliding_window_add("caller", now=now + n, period=60, limit=3) for n in range(4)]

    # Then the fourth is refused; each answer says how many the window holds and since when
    assert answers == [(True, 1, now), (True, 2, now), (True, 3, now), (False, 3, now)]


def test_requests_older_than_the_period_no_longer_count(redis_cache):
    now = time.time()
    for n in range(3):
        redis_cache.sliding_window_add("caller", now=now + n, period=60, limit=3)

    # When the first request is a period old
    answer = redis_cache.sliding_window_add("caller", now=now + 60, period=60, limit=3)

    # Then there is room again: the window holds the last two and this one
    assert answer == (True, 3, now + 1)


def test_requests_counted_at_once_by_many_workers_are_each_counted(redis_cache):
    # Given 16 workers that count 10 requests each of one caller at the same moment, with room for 100
    added = []
    start = threading.Barrier(16)

    def worker():
        start.wait()
        added.extend(
            redis_cache.sliding_window_add("caller", now=time.time(), period=60, limit=100)[0] for _ in range(10)
        )

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly 100 were let through, none more
    assert added.count(True) == 100
    assert added.count(False) == 60
