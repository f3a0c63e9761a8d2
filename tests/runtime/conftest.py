"""Runtime tests: a real git repository in tmp_path, a real SQLite store, a fixed clock.

Devices are enrolled and report through the store's own functions (the HTTP path is covered by
the server and end-to-end tests)."""
