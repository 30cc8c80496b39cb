#!/usr/bin/env bash
# Creates (once) the Python virtualenv used by Kiln's benchmark peers
# (NumPy, NumExpr, Numba) at <repo>/bench/.venv and prints its python path
# on the last line of stdout; everything else goes to stderr:
#
#     PY=$(bench/peers/setup.sh | tail -1)
#
# A second run is fast: nothing is installed when the packages already import.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/bench/.venv"
py="$venv/bin/python"
packages=(numpy numexpr numba scipy)

if [[ ! -x "$py" ]]; then
    echo "setup.sh: creating virtualenv $venv" >&2
    python3 -m venv "$venv" >&2
fi

if ! "$py" -c 'import numpy, numexpr, numba, scipy' >/dev/null 2>&1; then
    echo "setup.sh: installing ${packages[*]} into $venv" >&2
    "$py" -m pip install -q --upgrade pip >&2
    "$py" -m pip install -q "${packages[@]}" >&2
fi

"$py" -c 'import numpy, numexpr, numba, scipy, sys
print("setup.sh: numpy %s, numexpr %s, numba %s, scipy %s, python %s"
      % (numpy.__version__, numexpr.__version__, numba.__version__,
         scipy.__version__, sys.version.split()[0]), file=sys.stderr)'

echo "$py"
