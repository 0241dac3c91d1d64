#!/usr/bin/env bash
# Set up everything napari-temdeblur needs on a fresh Debian machine (run as root or with sudo):
# the system libraries napari's Qt window and a virtual X server need, a virtual environment in
# .venv, the CPU build of PyTorch (before the package, so pip never pulls a multi-GB CUDA build),
# then the package itself. Safe to run again: it only installs what is missing.
#
#   bash scripts/setup_env.sh            # runtime only
#   bash scripts/setup_env.sh --testing  # plus Qt binding, pytest, pytest-qt, pytest-xvfb
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TEMDEBLUR_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
extra=""
[ "${1:-}" = "--testing" ] && extra="[testing]"

# Xvfb + Mesa OpenGL + the libxcb/xkbcommon libraries Qt's xcb platform plugin loads.
apt_packages=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libfontconfig1 libdbus-1-3
    libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
    libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1)
# Debian's own Python needs python3-venv to create virtual environments
"$python" -c "import ensurepip" 2>/dev/null || apt_packages+=(python3-venv)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup_env: installing system packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip_install() {
    # pip warns once per package about this machine's local index folders; keep only real messages
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
# The CPU build first: a bare `torch` requirement would otherwise resolve to a CUDA build.
# GPU users: install the CUDA build of torch into the venv before this script (see README).
"$venv/bin/python" -c "import torch" 2>/dev/null || pip_install "torch==${TEMDEBLUR_TORCH_VERSION:-2.13.0}"
pip_install -e "$here$extra"
# napari's window needs a Qt binding; the package leaves the choice to the user (napari's convention)
"$venv/bin/python" -c "import qtpy" 2>/dev/null || pip_install "PyQt6>6.5"
echo "setup_env: ready in $venv"
