#!/bin/bash
# Installs gan-study on one node of a Ray cluster launcher cluster (the setup_commands of cluster.yaml and
# cluster.onprem.yaml): the project's virtual environment, as the README's install makes it, with the
# cluster's Ray, first on PATH in the launcher's shells (they source ~/.bashrc).
#
#   bash ~/gan-study/cluster/setup-node.sh "ray[default,tune]==2.60.0" [more pip requirements]
#
# A virtual environment because the system Python of Ubuntu 24.04 / Debian 12 images refuses `pip install`
# (PEP 668, externally-managed-environment). pip only runs when pyproject.toml or the requirements changed
# since the last successful install, so a second `ray up` takes seconds instead of reinstalling torch.
# GAN_STUDY_VENV picks another environment (default: .venv in the checkout this script is in), GAN_STUDY_PYTHON
# the Python that makes it (default: python3), which must be min_python or newer.
set -euo pipefail

project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${GAN_STUDY_VENV:-$project/.venv}
python=${GAN_STUDY_PYTHON:-python3}
# pyproject.toml's requires-python (tests/test_cluster_yaml.py keeps them equal); torch 2.14.1 has nothing
# older. An image whose python3 is older fails here, with its version named, rather than deep in pip: Ray's
# default AWS image (Deep Learning AMI, Ubuntu 18.04) has 3.6.
min_python=3.10

# `require_python WHAT PYTHON`: fails, naming the version, unless PYTHON is min_python or newer.
require_python() {
  local version oldest
  version=$("$2" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || version=none
  oldest=$(printf '%s\n' "$min_python" "$version" | sort -V | head -n1)
  if [ "$version" = none ] || [ "$oldest" != "$min_python" ]; then
    echo "setup-node.sh: $1 ($2) is Python $version; gan-study needs $min_python or newer: use an image with a" \
      "newer python3 (Ubuntu 24.04, Debian 12: cluster.yaml's ImageId) or set GAN_STUDY_PYTHON" >&2
    exit 1
  fi
}
[ -e "$venv" ] || require_python "the Python that makes $venv" "$python"

if [ ! -e "$venv" ] && ! "$python" -m venv "$venv"; then
  # Debian/Ubuntu without python3-venv (Ubuntu's cloud images): Python's message above names the package, and
  # the half-made environment has no pip. Cloud images give the launcher's user sudo; elsewhere, ask an admin.
  rm -rf "$venv"
  command -v apt-get >/dev/null && sudo -n true 2>/dev/null || exit 1
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip --version >/dev/null 2>&1 ||
  { echo "setup-node.sh: $venv is not a working virtual environment (no pip): remove it or set GAN_STUDY_VENV" >&2
    exit 1; }
require_python "$venv's Python (remove $venv to make it again)" "$venv/bin/python"

stamp_file=$venv/.gan-study-setup
stamp="$(sha256sum "$project/pyproject.toml" | cut -d' ' -f1) $*"
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]; then
  "$venv/bin/python" -m pip install -q "$@" -e "$project"
  printf '%s\n' "$stamp" >"$stamp_file"
fi

line="export PATH=\"$venv/bin:\$PATH\""
touch ~/.bashrc
grep -qxF "$line" ~/.bashrc || printf '%s\n' "$line" >>~/.bashrc
