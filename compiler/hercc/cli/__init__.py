"""The hercc command line: the only package that prints or exits.

main.py     the parser, the one mapping from errors to exit codes, main(argv) and run()
exitcode    ExitCode, every status hercc exits with
console     Console: where a command writes (Output: streams that outlive a closed pipe),
            and the spec texts read for diagnostics
spec        the arguments of the commands that compile a spec (check, build, route, graph)
check, build, fmt, route, graph, summary, keys, lab, plan_apply (plan and apply), diff:
            one module per command or family; each registers its parser and wires
            its flags to a service, handing the result to a view
plan_gateway  plan and apply of a gateway (--gateway); plan_common: what the node and
            gateway commands share (root, keys, the model, the lock, the report, the steps)
views/      text and JSON renderers of what the commands print (plans, diffs, labs)
"""
