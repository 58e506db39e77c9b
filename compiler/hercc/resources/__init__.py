"""The vocabulary plan/, state/, lab/ and the backends share; it imports none of them.

model         Resource and State, the kinds and their ids (the table), what is
              sensitive and what forces a replace, ORDER
ids           typed resource ids (`parse_id(PeerId, "<NS>/<IF>/<key>")`, `format_id`)
              and which end of a veth pair names it
canonical     the one written form of keys, endpoints and allowed IPs
fingerprints  secrets as short hashes (a private key as a device stores it)
sysctl        the sysctls Hercules manages and their defaults
naming        IFNAMSIZ, the one `ifname()`, and `Naming`: networks and workloads to
              namespace and interface names
action        what a plan does to a resource: `Action` and its symbol
errors        InvalidValue, MalformedId (both OperationError)
"""
