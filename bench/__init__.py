"""crio's benchmarks: standalone scripts printing a table (``python -m bench.NAME``); never run by pytest."""
