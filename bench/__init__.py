"""The event pipeline's benchmark: `make bench` (see bench/README.md)."""

# As fast as possible: posts made between looks at the queue, one transaction each, by
# the end-to-end producers (bench/server.py, bench/bare.py) and bench/ceiling.py.
FAST_CHUNK = 25
