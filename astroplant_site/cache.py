"""The shared cache on Redis (CACHE_URL=redis://...): Django's backend, keeping one redis-py client
per process, and counting requests for the API's throttles in one atomic round trip.

Django's backend builds a new `redis.Redis` object for every cache call (setting up some 170
response callbacks each time). A client is thread-safe and only borrows connections from its
pool, so one per pool serves a whole process; redis-py's pool starts afresh in a forked process."""

import uuid

from django.core.cache.backends import redis
from django.utils.functional import cached_property

# A caller's recent requests as a sorted set of their times: drop those older than the period,
# then add this one unless `limit` remain. Atomic: workers counting the same caller at once
# cannot both take the last place.
_SLIDING_WINDOW_ADD = """
local key, now, period, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call("ZREMRANGEBYSCORE", key, "-inf", now - period)
local count = redis.call("ZCARD", key)
local added = 0
if count < limit then
    redis.call("ZADD", key, now, ARGV[4])
    redis.call("EXPIRE", key, period)
    count, added = count + 1, 1
end
return {added, count, redis.call("ZRANGE", key, 0, 0, "WITHSCORES")[2] or false}
"""


class RedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}  # one per connection pool

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        if id(pool) not in self._clients:
            self._clients[id(pool)] = self._client(connection_pool=pool)
        return self._clients[id(pool)]


class RedisCache(redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient

    def sliding_window_add(self, key: str, *, now: float, period: int, limit: int) -> tuple[bool, int, float | None]:
        """Records a request at `now` (seconds) under `key`, unless `limit` requests are recorded
        there within the `period` seconds before it. Returns whether it was recorded, how many
        requests the period then holds, and the time of the oldest of them (None if none)."""
        member = f"{now!r}-{uuid.uuid4().hex}"  # unique, so two requests at one instant count twice
        added, count, oldest = self._sliding_window_script(
            keys=[self.make_and_validate_key(key)], args=[repr(now), period, limit, member]
        )
        return bool(added), count, None if oldest is None else float(oldest)

    @cached_property
    def _sliding_window_script(self):
        return self._cache.get_client(write=True).register_script(_SLIDING_WINDOW_ADD)  # sent once, then by hash
