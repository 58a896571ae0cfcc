#!/usr/bin/env bash
# Measures, through a release daemon in a temporary data directory: the
# TSCA restarting a hung DSC instance (the one-shot drill), memory pressure
# (AMBER and back), hung Commit Layer executors (ORANGE and back), the
# emergency shutdown, the refused boot, the acknowledgement and the
# observed restart.
# Usage: scripts/measure-resilience.sh (numbers in the #15 closing notes).
set -u
cd "$(dirname "$0")/.." && cargo build --release --quiet && BIN=$PWD/target/release/maos
T=$(mktemp -d); D=$T/data; DR=$T/drills; mkdir -p $DR; chmod 700 $DR
export MAOS_DATA_DIR=$D NO_COLOR=1
$BIN init >/dev/null
MAOS_DRILL_DIR=$DR $BIN up --listen 127.0.0.1:0 > $T/up.log 2>&1 &
PID=$!
state() { $BIN --json status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["state"])' 2>/dev/null; }
ms() { date +%s%3N; }
until [ "$(state)" = YELLOW ]; do sleep 0.05; done
for i in 1 2 3; do
  t0=$(ms); touch $DR/hang-dsc-instance
  until [ "$(state)" = ORANGE ]; do sleep 0.02; done; t1=$(ms)
  until [ "$(state)" = YELLOW ]; do sleep 0.02; done; t2=$(ms)
  echo "hang $i: ORANGE after $((t1-t0)) ms, YELLOW again (TSCA restart) after $((t2-t0)) ms"
  sleep 3.5
done
$BIN --json tsca | python3 -c 'import json,sys; d=json.load(sys.stdin); i=d["incident"]; print("incident", i["id"], "component_restarts", i["component_restarts"])'
# Memory pressure (mode 1): AMBER, then back under 75 %.
t0=$(ms); echo 86 > $DR/memory-used-percent
until [ "$(state)" = AMBER ]; do sleep 0.02; done; t1=$(ms)
rm $DR/memory-used-percent
until [ "$(state)" = YELLOW ]; do sleep 0.02; done; t2=$(ms)
echo "memory 86 %: AMBER after $((t1-t0)) ms; measured again: YELLOW after $((t2-t1)) ms"
# Hung executors: ORANGE, then back.
t0=$(ms); touch $DR/hang-commit-executors
until [ "$(state)" = ORANGE ]; do sleep 0.02; done; t1=$(ms)
rm $DR/hang-commit-executors
until [ "$(state)" = YELLOW ]; do sleep 0.02; done; t2=$(ms)
echo "hung executors: ORANGE after $((t1-t0)) ms; YELLOW after $((t2-t1)) ms once they answer"
ps -o rss=,time= -p $PID | awk '{print "daemon RSS", $1, "KiB, CPU time", $2, "(audit sweep, watchdog and probes included)"}'
t0=$(ms); $BIN --json ecs trigger --reason measure > $T/ecs.json; t1=$(ms)
echo "maos ecs trigger: $((t1-t0)) ms (CLI process included), state $(state)"
kill -TERM $PID; wait $PID
t0=$(ms); $BIN up --listen 127.0.0.1:0 > $T/refused.log 2>&1; rc=$?; t1=$(ms)
echo "boot after the shutdown: exit $rc in $((t1-t0)) ms: $(grep -o 'KERNEL-ECS-ACK-REQUIRED' $T/refused.log | head -1)"
ID=$(python3 -c 'import json; print(json.load(open("'$T'/ecs.json"))["id"])')
t0=$(ms); $BIN ecs acknowledge $ID > /dev/null; t1=$(ms); echo "maos ecs acknowledge: $((t1-t0)) ms"
$BIN up --listen 127.0.0.1:0 > $T/up2.log 2>&1 & PID=$!
until [ "$(state)" = YELLOW ]; do sleep 0.05; done
$BIN --json status | python3 -c 'import json,sys; s=json.load(sys.stdin)["status"]; print("after ack: observing", s["ecs"]["observing"], "queue_capacity", s["queue_capacity"])'
kill -TERM $PID; wait $PID
$BIN audit verify >/dev/null && echo "audit verify: ok"
$BIN --json audit replay | python3 -c 'import json,sys; d=json.load(sys.stdin); print("replay:", {k:d[k] for k in d if k in ("decisions","divergences","clean","records")})'
rm -rf $T
