"""Tools for development, tests, benchmarks and the demo, never used by the site itself: the
synthetic radiographs (``phantoms``, ``phantom_anatomy``) and helpers for the processes the tests
and benchmarks start (``processes``). No Django."""
