"""Benchmarks: fastbp against a from-scratch NumPy MLP, PyTorch eager and JAX.

``fastbp bench`` (or ``python -m fastbp.bench``) runs :func:`suite.run`. The
baseline engines live here, inside the package, so that an installed fastbp can
run them; PyTorch and JAX are optional (``pip install 'fastbp[bench]'``) and
imported only when present. Nothing in the engine imports this package.
"""
