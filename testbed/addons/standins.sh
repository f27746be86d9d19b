#!/bin/bash
# testbed add-on: stand-ins for PBS Pro, Torque, LSF and HTCondor commands (testbed/standins/).
#   up:   install them into /opt/rc-testbed/standins/<sched>/bin (world-readable); idempotent
#   down: remove /opt/rc-testbed/standins
# Each scheduler has its own bin dir (PBS and Torque both call their commands qsub/qstat/qdel):
# a profile picks one with  "loginSetup": ["export PATH=/opt/rc-testbed/standins/pbs/bin:$PATH"].
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../standins" && pwd)"
DEST=/opt/rc-testbed/standins
PY=/opt/rc-testbed/python/bin/python
declare -A CMDS=(
  [pbs]="qsub qstat qdel"
  [torque]="qsub qstat qdel"
  [lsf]="bsub bjobs bkill"
  [htcondor]="condor_submit condor_q condor_history condor_rm"
)

up() {
  [[ -x $PY ]] || PY=python3
  local tmp sched cmd
  tmp=$(mktemp -d /opt/rc-testbed/.standins.XXXXXX)
  install -d -m 755 "$tmp/lib"
  install -m 644 "$SRC/standin.py" "$SRC/README.md" "$tmp/lib/"
  install -m 755 "$SRC/run-job" "$tmp/lib/"
  for sched in "${!CMDS[@]}"; do
    install -d -m 755 "$tmp/$sched/bin"
    for cmd in ${CMDS[$sched]}; do
      printf '#!/bin/sh\n# %s stand-in on the testbed (jupyterlab-remote-cluster): see %s/lib/README.md\nexec %s %s/lib/standin.py %s %s "$@"\n' \
        "$sched" "$DEST" "$PY" "$DEST" "$sched" "$cmd" > "$tmp/$sched/bin/$cmd"
      chmod 755 "$tmp/$sched/bin/$cmd"
    done
  done
  chmod 755 "$tmp"
  # swap in one rename: a running command never sees a half-installed tree
  rm -rf "$DEST.old"
  [[ -e $DEST ]] && mv "$DEST" "$DEST.old"
  mv "$tmp" "$DEST"
  rm -rf "$DEST.old"
}

down() { rm -rf "$DEST" "$DEST.old"; }

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
