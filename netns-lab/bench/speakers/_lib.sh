# shellcheck shell=bash
# Helpers sourced by the speaker plugins in this directory (not a plugin itself).

# stop_pids: TERM each PID in $RUNDIR/pids (last first), KILL it after 15 s
stop_pids() {
  : "${RUNDIR:?}"
  [[ -f "$RUNDIR/pids" ]] || return 0
  local p
  for p in $(tac "$RUNDIR/pids"); do
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
}

# frr_dir: FRR's daemons (FRR_DIR, else Debian's /usr/lib/frr, else beside a zebra in PATH)
frr_dir() {
  if [[ -n "${FRR_DIR:-}" ]]; then echo "$FRR_DIR"; return; fi
  if [[ -x /usr/lib/frr/zebra ]]; then echo /usr/lib/frr; return; fi
  local z; z="$(command -v zebra)" || { echo "FRR daemons not found (set FRR_DIR)" >&2; return 1; }
  dirname "$z"
}
