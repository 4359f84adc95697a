#!/usr/bin/env bash
# The README's first command: sets the machine up (hack/setup.sh) and runs the crio daemon in the
# foreground on its built-in defaults (socket /var/run/crio/crio.sock, /etc/crio/crio.conf and
# /etc/crio/crio.conf.d if present). Extra arguments go to the daemon, e.g. hack/run.sh --log-level debug.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash hack/setup.sh
exec .venv/bin/crio "$@"
