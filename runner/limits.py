"""The remote API's numbers the runner relies on (api-contract.md), in one place.

Sizes are read as powers of ten (MB = 10^6): safe whichever way the API means them. The
emulator keeps its own copy in emulator/catalog.py on purpose, as an independent check.
"""

MAX_BATCH_REQUESTS = 100_000  # requests in one batch (api-contract section 4)
MAX_BATCH_BYTES = 256_000_000  # one create's body (api-contract section 4)
MAX_REQUEST_BYTES = 32_000_000  # one Messages request, hence one input file (api-contract 2.7)

OUTPUT_300K_BETA = "output-300k-2026-03-24"
NORMAL_MAX_TOKENS = 128_000  # max_tokens without the 300k-output beta
