#!/usr/bin/env bash
# Starts a NameRnn cluster on this machine: one coordinator (train --cluster) and N worker
# processes on 127.0.0.1, waits for the run to end, stops every process it started (also on
# Ctrl-C or failure) and exits with the coordinator's exit code.
#
#   deploy/local-cluster.sh --workers N [--slots S] [--configuration C] [--no-build] -- <train options>
#   deploy/local-cluster.sh --workers 2 -- --data ../shared/data/names --out runs/cluster
set -uo pipefail

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
workers=2
slots=1
build=1
configuration=Release
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) [ $# -ge 2 ] || usage; workers=$2; shift 2 ;;
    --slots) [ $# -ge 2 ] || usage; slots=$2; shift 2 ;;
    --configuration) [ $# -ge 2 ] || usage; configuration=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "error: unknown option '$1' (train options go after --)" >&2; exit 2 ;;
  esac
done
case "$workers" in ''|*[!0-9]*|0) echo "error: --workers: expected a whole number of at least 1, got '$workers'" >&2; exit 2 ;; esac
case "$slots" in ''|*[!0-9]*|0) echo "error: --slots: expected a whole number of at least 1, got '$slots'" >&2; exit 2 ;; esac

bin=$configuration/net10.0/linux-x64
coordinator="$root/src/Coordinator/bin/$bin/namernn"
worker="$root/src/Worker/bin/$bin/namernn-worker"
if [ "$build" = 1 ]; then
  dotnet build "$root/src/Coordinator/NameRnn.Coordinator.csproj" -c "$configuration" -v quiet -nologo >&2 || exit 1
fi
for program in "$coordinator" "$worker"; do
  [ -x "$program" ] || { echo "error: $program is missing; build first (dotnet build -c $configuration) or drop --no-build" >&2; exit 1; }
done

# Options every node must share are passed on to the workers too.
shared=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --max-frame-size|--cluster-secret|--tls-certificate|--tls-password) shared+=("${args[i]}" "${args[i + 1]:-}") ;;
    --max-frame-size=*|--cluster-secret=*|--tls-certificate=*|--tls-password=*|--tls-insecure) shared+=("${args[i]}") ;;
  esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/namernn-cluster.XXXXXX")
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

"$coordinator" train --cluster --hostname 127.0.0.1 --port 0 --address-file "$work/address" \
  --min-workers "$((workers * slots))" "$@" &
coordinator_pid=$!
pids+=("$coordinator_pid")

for _ in $(seq 600); do
  [ -s "$work/address" ] && break
  kill -0 "$coordinator_pid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$work/address" ]; then
  wait "$coordinator_pid"; rc=$?
  echo "error: the coordinator did not start listening (exit code $rc)" >&2
  exit $(( rc == 0 ? 1 : rc ))
fi
address=$(cat "$work/address")
echo "coordinator at $address; starting $workers worker process(es)" >&2

for i in $(seq "$workers"); do
  "$worker" --seed-node "$address" --hostname 127.0.0.1 --port 0 --slots "$slots" ${shared[@]+"${shared[@]}"} &
  pids+=("$!")
done

wait "$coordinator_pid"
rc=$?
exit "$rc"
