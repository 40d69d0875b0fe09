"""The sidecar: a process of the dashboard's own beside each capturing process.

The capturing process (a server, a shell, a management command) only captures:
its pump drains the hand-off queue, names the receivers (the functions live
there), pickles the raw events and writes them to the sidecar's stdin
(`link.py`). The sidecar (`main.py`, `python -m dashboard.sidecar`)
describes them, renders the frame when someone watches, writes it back, and
stores the history, on its own GIL: the saving process's time and its
interpreter lock are left to the host. `wire.py` is what both ends agree on.
"""
