# Sourced by the GPU run scripts: unbuffered output and the repository's folders importable as the
# `superlinear` package (linked under one name, no install on the lent machine).
export PYTHONUNBUFFERED=1
mkdir -p /tmp/shim/superlinear
for d in core kernels adapters storage plugins frontends; do ln -sfn "$PWD/$d" "/tmp/shim/superlinear/$d"; done
export PYTHONPATH=/tmp/shim
