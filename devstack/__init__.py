"""The local stack for development and tests: brokers, the registry emulator, provisioning, stack.json.

Imported only by the command line (hubstream_cli) and the tests; library code never depends on it.
"""
