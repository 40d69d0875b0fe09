"""The event pipeline's benchmark: `make bench` (see bench/README.md)."""
