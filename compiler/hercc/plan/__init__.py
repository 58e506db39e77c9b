"""Plan and apply: desired node state from the IR, live state from the kernel, the diff."""
