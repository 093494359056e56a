"""python -m fastbp.bench [options]: the same as ``fastbp bench``."""

import sys

from ..cli import main

main(["bench", *sys.argv[1:]], prog_name="fastbp bench")
