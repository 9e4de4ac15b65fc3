"""The detector's accuracy check on the phantoms: ``python -m devtools.accuracy --kind detector``
(its docstring says what it does; the options are the same, --kind aside).

    python scripts/detector_accuracy.py [--studies 400] [--seed 7] [--config cpu-small] [--epochs N] [--data-dir DIR]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.accuracy import main  # noqa: E402 - the repository root is on the path from here

if __name__ == "__main__":
    sys.exit(main(["--kind", "detector", *sys.argv[1:]]))
