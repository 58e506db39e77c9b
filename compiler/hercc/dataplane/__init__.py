"""The eBPF dataplane's compiler side: pure functions from the IR to what the
programs under the top-level dataplane/ are built and filled with.

`config`: the generated header (hercules_config.h) of a node. `maps`: the
contents of its maps (routes, interfaces, address to node), as maps.json.
`layout`: the byte layout of the programs' map keys and values and their
verdicts, mirrored from the C. `program`: the programs, their entry points
and their C text with local includes expanded. Nothing here touches a
kernel; loading is hercc.state.dataplane's.
"""
