#!/bin/sh
# Chooses the program by role. A worker that is not told its address advertises the container's IP.
set -e
role=${1:-}
[ $# -gt 0 ] && shift
case "$role" in
  coordinator)
    exec /app/namernn "$@" ;;
  worker)
    if [ -z "${NAMERNN_WORKER__HOSTNAME:-}" ]; then
      case " $* " in
        *" --hostname "*) ;;
        *) NAMERNN_WORKER__HOSTNAME=$(hostname -i | awk '{print $1}'); export NAMERNN_WORKER__HOSTNAME ;;
      esac
    fi
    exec /app/namernn-worker "$@" ;;
  *)
    echo "usage: coordinator <train options> | worker --seed-node akka.tcp://namernn@HOST:4053 [options]" >&2
    exit 2 ;;
esac
