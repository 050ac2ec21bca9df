"""`recfit compare`: read finished run folders and compare them, without training anything.

Reads only metrics.json, .hydra/*.yaml, metrics.csv and per_user.parquet, so it stays fast and
safe on folders copied from elsewhere. Imports nothing heavy (no torch, no Hydra): importing this
package costs pandas and little else.

Modules, one idea each:
    discover      find run folders and read their summary and config
    metrics       which metrics exist, which direction is better, what to pair them on
    table         the pandas tables: filter, differing keys, grouping, sorting
    significance  tests over seeds (default), hierarchical bootstrap, per-user paired test; Holm
    render        rich / markdown / csv / latex / json
    plots         matplotlib PNGs
    cli           `recfit compare` argument parsing; `run(argv) -> exit code`
"""
