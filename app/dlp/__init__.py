"""Data Loss Prevention: the built-in detection profiles, the compiled detector of a profile set,
the text a body carries, and the gateway's policies over them. Pure (no I/O); imports only `core`."""
