import os

# Tests share two cores with the servers they start: one torch thread each (models.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
