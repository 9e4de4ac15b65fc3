"""Code every app may use; a Django app without models (the lowest layer: it imports no other app).

Django-free, so that ``ml.core`` and ``readerstudy.analysis`` may use them: ``csvfile`` (the CSV
writer), ``atomicfile`` (the one atomic file write) and ``lru``. With Django: ``roles``,
``queueing`` (``enqueue``, the one way to queue a task; ``QueueUnavailable`` and its middleware),
``health`` (/health/, /health/live/), ``audit`` (the access-log middleware) and ``storage``."""
