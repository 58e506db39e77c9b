"""Text and JSON renderers of what the commands print; data in, strings out.

plan   one node's plan (`hercc plan`, `hercc apply`), Terraform-style
diff   a plan per node between two specs (`hercc diff`)
lab    the reachability matrix, the status and the per-node plans of a lab
"""
