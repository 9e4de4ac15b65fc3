"""The classifier's accuracy check on the phantoms: ``python -m devtools.accuracy --kind classifier``
(its docstring says what it does; the options are the same, --kind aside).

    python scripts/phantom_accuracy.py [--studies 400] [--seed 7] [--config cpu-small] [--regime R] [--data-dir DIR]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.accuracy import main  # noqa: E402 - the repository root is on the path from here

if __name__ == "__main__":
    sys.exit(main(["--kind", "classifier", *sys.argv[1:]]))
