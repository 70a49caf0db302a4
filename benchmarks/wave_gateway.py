"""`askwise serve` with the wave-batching engine of `wave_engine.py` in place of the current
one: the baseline gateway of `benchmarks/serving.py --only engines`. Takes `askwise serve`'s
flags.

    python benchmarks/wave_gateway.py --port 8001 --max-batch-size 32
"""

import sys
from pathlib import Path

from askwise.cli import main
from askwise.policy.engines import transformers_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wave_engine import WaveEngine  # noqa: E402  (a sibling script, not part of the package)

# The gateway imports the engine class from this module when it builds the app.
transformers_engine.TransformersEngine = WaveEngine

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
