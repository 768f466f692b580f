#!/usr/bin/env bash
# deploy/docker/entrypoint.sh, the container's entry point, outside a container: the node id
# from a StatefulSet host name's ordinal, its refusals (partial TLS files among them), and
# two 3-node clusters of it on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (one port set, as three
# pods or compose services have), one with plain TCP, one with TLS from deploy/tls-certs.sh's
# files (the compose layout, the Kubernetes Secret's and single variables, one node each).
# Each elects a leader, takes a put, reads it back, reports /health 200 (plain HTTP) on every
# node, passes the Dockerfile's HEALTHCHECK (raftkv-entrypoint health) and stops cleanly on
# SIGTERM, after which the HEALTHCHECK fails. With TLS, a client without a certificate from
# the CA is refused. Then the YAML of deploy/docker and deploy/k8s (python3-yaml):
# parsed, and its names, ports and TLS files checked against each other and the Secret.
# Run with dash, the /bin/sh of Debian's images.
#   entrypoint_test.sh SOURCE_DIR BUILD_CMD_DIR
set -uo pipefail
src=$1
entry=$src/deploy/docker/entrypoint.sh
certs=$src/deploy/tls-certs.sh
bin=$2
export PATH=$bin:$PATH
sh="sh"
command -v dash >/dev/null && sh=dash
work=$(mktemp -d /tmp/entrypoint-test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.out "$work"/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

"$sh" -n "$entry" || fail "$sh -n refuses it"

dry() { # env assignments...: the config the entry point writes, in $work/dry.out
  env -i PATH="$PATH" RAFTKV_CONF="$work/dry.conf" RAFTKV_DRY_RUN=1 "$@" "$sh" "$entry" \
    >"$work/dry.out" 2>&1
}
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_HOSTNAME=raftkv-0 || fail "dry run: $?"
grep -qx 'node_id = 1' "$work/dry.out" || fail "raftkv-0 is not node 1"
grep -qx 'pub_address = tcp://a:7201' "$work/dry.out" || fail "node 1's pub address is not on a"
grep -qx 'peer.3 = tcp://c:7001' "$work/dry.out" || fail "member 3 is not c"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_HOSTNAME=raftkv-2 || fail "dry run: $?"
grep -qx 'node_id = 3' "$work/dry.out" || fail "raftkv-2 is not node 3"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_HOSTNAME=raftkv
[ $? = 2 ] && grep -q 'does not end in -<ordinal>' "$work/dry.out" || fail "no ordinal accepted"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_NODE_ID=4
[ $? = 2 ] && grep -q 'names 3 members' "$work/dry.out" || fail "node 4 of 3 accepted"
dry RAFTKV_PEERS=a,b,c RAFTKV_NODE_ID=1 && fail "no RAFTKV_CLUSTER_ID accepted"
grep -q RAFTKV_CLUSTER_ID "$work/dry.out" || fail "missing RAFTKV_CLUSTER_ID not named"


# TLS files from deploy/tls-certs.sh, one CA: the compose files and the Kubernetes Secret.
t=$work/tls
"$certs" -d "$t" compose >"$work/certs.out" 2>&1 || fail "tls-certs.sh compose: status $?"
"$certs" -d "$t" -n raftkv-test k8s >"$work/certs.out" 2>&1 || fail "tls-certs.sh k8s: status $?"
# Node 1: RAFTKV_TLS_DIR with compose's files; node 2: single variables; node 3:
# RAFTKV_TLS_DIR with the Secret's files, as its volume shows them.
mkdir "$work/tls-n1" "$work/tls-n3"
cp "$t/ca.crt" "$work/tls-n1/ca.crt"
cp "$t/raftkv-1.crt" "$work/tls-n1/tls.crt"
cp "$t/raftkv-1.key" "$work/tls-n1/tls.key"
for f in ca.crt tls.crt tls.key; do
  sed -n "s/^  ${f/./\\.}: //p" "$t/raftkv-tls.yaml" | base64 -d >"$work/tls-n3/$f" ||
    fail "the Secret's $f does not decode"
done
node_env() { # MODE I: the TLS variables of node I, into the array nenv
  nenv=()
  [ "$1" = tls ] || return 0
  case $2 in
  1) nenv=(RAFTKV_TLS_DIR="$work/tls-n1") ;;
  2) nenv=(RAFTKV_TLS_CA="$t/ca.crt" RAFTKV_TLS_CERT="$t/raftkv-2.crt" RAFTKV_TLS_KEY="$t/raftkv-2.key") ;;
  3) nenv=(RAFTKV_TLS_DIR="$work/tls-n3") ;;
  esac
}

for i in 1 2 3; do
  node_env tls $i
  dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_NODE_ID=$i "${nenv[@]}" ||
    fail "TLS dry run of node $i: status $?"
  if grep -Eq '(^|[^+])tcp://' "$work/dry.out"; then fail "node $i: a tcp:// address with TLS"; fi
  for want in 'peer.3 = tls+tcp://c:7001' 'client.2 = tls+tcp://b:7101' \
    'listen_peer = tls+tcp://0.0.0.0:7001' 'listen_client = tls+tcp://0.0.0.0:7101' \
    'listen_pub = tls+tcp://0.0.0.0:7201' 'http_address = http://0.0.0.0:7301' \
    'tls_ca_file = ' 'tls_cert_file = ' 'tls_key_file = '; do
    grep -q "^$want" "$work/dry.out" || fail "node $i with TLS: no line \"$want\""
  done
done
# Some TLS files without the others: refused, naming the missing one, also by the HEALTHCHECK.
mkdir "$work/partial"
cp "$t/ca.crt" "$work/partial/ca.crt"
cp "$t/raftkv-1.crt" "$work/partial/tls.crt"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_NODE_ID=1 RAFTKV_TLS_DIR="$work/partial"
[ $? = 2 ] && grep -q "no file $work/partial/tls.key" "$work/dry.out" ||
  fail "a TLS dir without tls.key accepted, or the key not named"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_NODE_ID=1 RAFTKV_TLS_CA="$t/ca.crt"
[ $? = 2 ] && grep -q 'RAFTKV_TLS_CERT unset' "$work/dry.out" ||
  fail "RAFTKV_TLS_CA alone accepted, or RAFTKV_TLS_CERT not named"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_NODE_ID=1 RAFTKV_TLS_DIR="$work/none"
[ $? = 2 ] || fail "a TLS dir that is not there accepted (plain TCP instead of TLS)"
env -i PATH="$PATH" RAFTKV_TLS_DIR="$work/partial" "$sh" "$entry" health >"$work/dry.out" 2>&1
[ $? = 2 ] || fail "raftkv-entrypoint health with a TLS dir without tls.key: not status 2"

# Ports free on the three addresses, below the ephemeral range, into $base.
pick_ports() {
  local i p ok=0
  for _ in $(seq 50); do
    base=$((20000 + (RANDOM % 120) * 100))
    ok=1
    for i in 1 2 3; do
      for p in 1 2 3 4; do free "127.0.0.$i" $((base + p)) || ok=0; done
    done
    [ "$ok" = 1 ] && return
  done
  fail "no free ports"
}
free() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

http_get() { # node path: the response to GET path on node's HTTP port
  (
    exec 3<>"/dev/tcp/127.0.0.$1/$((base + 4))" || exit 1
    printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$2" >&3
    cat <&3
  ) 2>/dev/null
}

# The HEALTHCHECK (raftkv-entrypoint health) of node I of a MODE cluster, into $work/hc.out.
healthcheck() { # MODE I
  node_env "$1" "$2"
  env RAFTKV_CLIENT_PORT=$((base + 2)) "${nenv[@]}" "$sh" "$entry" health >"$work/hc.out" 2>&1
}

# A cluster of 3 entry points with plain TCP or TLS (MODE plain or tls): see the header.
run_cluster() { # MODE
  local mode=$1 s=tcp i tls_args=() deadline
  [ "$mode" = plain ] || {
    s=tls+tcp
    tls_args=(--tls-ca "$t/ca.crt" --tls-cert "$t/client.crt" --tls-key "$t/client.key")
  }
  pick_ports
  for i in 1 2 3; do
    node_env "$mode" $i
    env RAFTKV_CLUSTER_ID=77 RAFTKV_PEERS=127.0.0.1,127.0.0.2,127.0.0.3 RAFTKV_NODE_ID=$i \
      RAFTKV_LISTEN_HOST=127.0.0.$i RAFTKV_PEER_PORT=$((base + 1)) \
      RAFTKV_CLIENT_PORT=$((base + 2)) RAFTKV_PUB_PORT=$((base + 3)) \
      RAFTKV_HTTP_PORT=$((base + 4)) RAFTKV_DATA_DIR="$work/$mode-n$i" \
      RAFTKV_CONF="$work/$mode-n$i.conf" "${nenv[@]}" "$sh" "$entry" >"$work/$mode-n$i.log" 2>&1 &
    pids+=($!)
  done
  endpoints=$s://127.0.0.1:$((base + 2)),$s://127.0.0.2:$((base + 2)),$s://127.0.0.3:$((base + 2))
  kv() { raft-kv --endpoints "$endpoints" "${tls_args[@]}" --timeout 30000 "$@"; }
  kv put greeting hello >"$work/kv.out" 2>&1 || fail "$mode: put: exit status $?"
  [ "$(kv get greeting)" = hello ] || fail "$mode: get did not return the value put"

  for i in 1 2 3; do
    deadline=$((SECONDS + 30))
    until [[ $(http_get $i /health | head -n 1) == "HTTP/1.1 200"* ]]; do
      [ $SECONDS -lt $deadline ] || fail "$mode: node $i: /health is not 200 within 30 s"
      sleep 0.1
    done
    healthcheck "$mode" $i || fail "$mode: node $i: the HEALTHCHECK's exit status $?"
  done
  if [ "$mode" = tls ]; then
    # raft-kv reads the variables the entry point takes: in a container it needs no --tls-*.
    node_env tls 2
    [ "$(env "${nenv[@]}" raft-kv --endpoints "$s://127.0.0.2:$((base + 2))" --timeout 30000 \
      get greeting)" = hello ] || fail "raft-kv with node 2's RAFTKV_TLS_* variables"
    refused
  fi

  # exec: the entry point's process is raftd, which SIGTERM stops cleanly.
  for i in 0 1 2; do kill -TERM "${pids[$i]}"; done
  for i in 0 1 2; do
    wait "${pids[$i]}" || fail "$mode: node $((i + 1)) exited with status $? on SIGTERM"
  done
  pids=()
  # ... and the HEALTHCHECK fails once the node is down.
  healthcheck "$mode" 1
  [ $? = 3 ] || fail "$mode: the HEALTHCHECK on a stopped node: not exit status 3"
}

# A TLS cluster refuses clients without a certificate from its CA, and plain TCP.
refused() {
  local ep=tls+tcp://127.0.0.1:$((base + 2)) deadline n
  "$certs" -d "$work/other" ca && "$certs" -d "$work/other" cert client client ||
    fail "tls-certs.sh: another CA"
  raft-kv --endpoints "$ep" --tls-ca "$t/ca.crt" --tls-cert "$work/other/client.crt" \
    --tls-key "$work/other/client.key" --timeout 2000 get greeting >"$work/kv.out" 2>&1 &&
    fail "a client certificate from another CA accepted"
  raft-kv --endpoints "$ep" --tls-ca "$t/ca.crt" --timeout 2000 get greeting >"$work/kv.out" 2>&1 &&
    fail "a client without a certificate accepted"
  raft-kv --endpoints "tcp://127.0.0.1:$((base + 2))" --timeout 2000 get greeting \
    >"$work/kv.out" 2>&1 && fail "a plain TCP client accepted"
  # The node counts what its listener refused (read once a second).
  deadline=$((SECONDS + 30))
  while :; do
    n=$(http_get 1 /status | grep -o '"client_tls_refused": *[0-9]*' | grep -o '[0-9]*$')
    [ "${n:-0}" -gt 0 ] && break
    [ $SECONDS -lt $deadline ] || fail "node 1 counted no refused client handshake within 30 s"
    sleep 0.2
  done
}

run_cluster plain
run_cluster tls

# The YAML of deploy/docker and deploy/k8s, parsed and checked against each other, the
# Secret tls-certs.sh wrote and its certificate's names (Debian 12's python3-yaml).
python3 -c 'import yaml' 2>/dev/null ||
  fail "no python3 with yaml (deploy/install-deps.sh --tests installs python3-yaml)"
san=$(openssl x509 -in "$work/tls-n3/tls.crt" -noout -ext subjectAltName) ||
  fail "the Secret's certificate: no subjectAltName"
python3 - "$src" "$t" raftkv-test "$san" >"$work/yaml.out" 2>&1 <<'PY' || fail "YAML checks"
import os, re, sys, yaml

src, tls, ns, san = sys.argv[1:]
names = set(re.findall(r"DNS:([^,\s]+)", san)) | set(re.findall(r"IP Address:([^,\s]+)", san))
errors = []
def check(ok, what):
    if not ok:
        errors.append(what)
def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

k8s = os.path.join(src, "deploy/k8s")
docs = [d for f in sorted(os.listdir(k8s)) if f.endswith(".yaml") for d in load(os.path.join(k8s, f))]
docs += load(os.path.join(tls, "raftkv-tls.yaml"))
kind = lambda k: [d for d in docs if d["kind"] == k]
(sts,), (pdb,), (secret,) = kind("StatefulSet"), kind("PodDisruptionBudget"), kind("Secret")
services = {d["metadata"]["name"]: d for d in kind("Service")}
pod = sts["spec"]["template"]
labels = pod["metadata"]["labels"]
within = lambda sel: sel.items() <= labels.items()
check(within(sts["spec"]["selector"]["matchLabels"]), "the StatefulSet's selector")
check(within(pdb["spec"]["selector"]["matchLabels"]), "the PDB's selector")
headless = services.get(sts["spec"]["serviceName"])
check(headless is not None and headless["spec"].get("clusterIP") == "None",
      "serviceName is not a headless Service")
(c,) = pod["spec"]["containers"]
ports = {p["name"] for p in c["ports"]}
for name, s in services.items():
    check(within(s["spec"]["selector"]), f"Service {name}'s selector")
    for p in s["spec"]["ports"]:
        check(p["targetPort"] in ports, f"Service {name}: target port {p['targetPort']}")
ready = c["readinessProbe"]["httpGet"]
check(ready["path"] == "/health" and ready["port"] == "http" and
      ready.get("scheme", "HTTP") == "HTTP", "readiness is not GET /health over plain HTTP")
check(c["livenessProbe"]["tcpSocket"]["port"] in ports, "the liveness probe's port")
volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
claims = {v["metadata"]["name"] for v in sts["spec"]["volumeClaimTemplates"]}
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
check(set(mounts) <= set(volumes) | claims, "a mount without its volume")
tls_vol = [n for n, v in volumes.items() if "secret" in v]
check(len(tls_vol) == 1 and volumes[tls_vol[0]]["secret"]["secretName"] == secret["metadata"]["name"],
      "the Secret volume does not name tls-certs.sh's Secret")
check(secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"},
      "the Secret's type or keys")
env = {e["name"]: e.get("value") for e in c["env"]}
if tls_vol:
    for var, key in (("RAFTKV_TLS_CA", "ca.crt"), ("RAFTKV_TLS_CERT", "tls.crt"), ("RAFTKV_TLS_KEY", "tls.key")):
        check(env.get(var) == mounts.get(tls_vol[0], "?") + "/" + key, f"{var} is not the mounted {key}")
peers = env["RAFTKV_PEERS"].replace("$(POD_NAMESPACE)", ns).split(",")
check(len(peers) == sts["spec"]["replicas"], "RAFTKV_PEERS and replicas differ")
for i, p in enumerate(peers):
    check(p == f"{sts['metadata']['name']}-{i}.{sts['spec']['serviceName']}.{ns}.svc",
          f"member {i + 1}, {p}, is not pod {i}")
    check(p in names, f"the certificate does not name {p}")
for n in ("raftkv", f"raftkv.{ns}.svc", "127.0.0.1"):
    check(n in names, f"the certificate does not name {n}")

docker = os.path.join(src, "deploy/docker")
(base,), (over,) = load(os.path.join(docker, "compose.yaml")), load(os.path.join(docker, "compose.tls.yaml"))
hosts = [base["services"][s]["hostname"] for s in base["services"]]
for name, s in base["services"].items():
    check(s["environment"]["RAFTKV_PEERS"].split(",") == hosts, f"compose {name}: RAFTKV_PEERS")
check(set(over["services"]) == set(base["services"]), "compose.tls.yaml's services")
for name, s in over["services"].items():
    targets = {x["target"]: x["source"] for x in s["secrets"]}
    check(set(targets) == {"ca.crt", "tls.crt", "tls.key"}, f"compose {name}: secrets")
    for var, key in (("RAFTKV_TLS_CA", "ca.crt"), ("RAFTKV_TLS_CERT", "tls.crt"), ("RAFTKV_TLS_KEY", "tls.key")):
        check(s["environment"].get(var) == "/run/secrets/" + key, f"compose {name}: {var}")
    for key, want in (("ca.crt", "ca.crt"), ("tls.crt", f"{name}.crt"), ("tls.key", f"{name}.key")):
        f = over["secrets"].get(targets.get(key), {}).get("file", "")
        path = re.sub(r"^\$\{RAFTKV_TLS_FILES:\?[^}]*\}", tls, f)
        check(os.path.basename(path) == want and os.path.isfile(path),
              f"compose {name}: its {key} is not tls-certs.sh's {want}: {f}")
for e in errors:
    print("YAML:", e)
sys.exit(1 if errors else 0)
PY
echo ok
