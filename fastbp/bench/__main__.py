"""python -m fastbp.bench [options]: the same as ``fastbp bench``."""

from .command import bench

bench(prog_name="fastbp bench")
