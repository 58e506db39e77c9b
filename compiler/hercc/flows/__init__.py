"""Flow export: the accounting map's records as NetFlow v9 or IPFIX (docs/flows.md).

`records` (the map's key and counters, clocks), `table` (snapshots to
records: deltas, timeouts, eviction, sampling), `packing`, `netflow_v9` and
`ipfix` (the encoders), `sender` (UDP), `exporter` (the loop).
"""
