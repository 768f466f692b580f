#!/usr/bin/env bash
# deploy/tls-certs.sh: the CA kept once made, certificates naming DNS names and IP addresses
# and issued by it, the compose set's key modes, the Kubernetes Secret, refusals; and
# deploy/cluster.sh -t, which makes its files with it, running a TLS cluster (a put and a
# get with DIR/tls's client files, as raft-bench --spawn --tls uses them).
#   tls_certs_test.sh SOURCE_DIR RAFTD
set -uo pipefail
certs=$1/deploy/tls-certs.sh
cluster_sh=$1/deploy/cluster.sh
raftd=$2
work=$(mktemp -d /tmp/tls-certs-test.XXXXXX)
cleanup() {
  "$cluster_sh" -d "$work/c" destroy >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.out "$work"/c/node*/raftd.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
command -v openssl >/dev/null || { echo "SKIPPED: no openssl"; exit 77; }

d=$work/t
"$certs" -d "$d" ca >"$work/certs.out" 2>&1 || fail "ca: status $?"
ca=$(openssl x509 -in "$d/ca.crt" -noout -fingerprint)
"$certs" -d "$d" ca >"$work/certs.out" 2>&1 || fail "ca again: status $?"
[ "$(openssl x509 -in "$d/ca.crt" -noout -fingerprint)" = "$ca" ] || fail "a second ca replaced the CA"
"$certs" -d "$d" cert n1 node-1.example 10.1.2.3 >"$work/certs.out" 2>&1 || fail "cert: status $?"
openssl verify -CAfile "$d/ca.crt" "$d/n1.crt" >"$work/verify.out" 2>&1 || fail "n1.crt not issued by the CA"
san=$(openssl x509 -in "$d/n1.crt" -noout -ext subjectAltName)
[[ $san == *"DNS:node-1.example"* && $san == *"IP Address:10.1.2.3"* ]] || fail "n1.crt names: $san"
[ "$(stat -c %a "$d/n1.key")" = 600 ] && [ "$(stat -c %a "$d/ca.key")" = 600 ] ||
  fail "a key readable by others"
"$certs" -d "$d" cert n2 >"$work/certs.out" 2>&1
[ $? = 2 ] || fail "a certificate naming no host made"
"$certs" -d "$work/empty" cert n1 h >"$work/certs.out" 2>&1
[ $? = 2 ] && grep -q 'no CA' "$work/certs.out" || fail "a certificate without a CA made"
"$certs" -d "$d" -n Bad_NS k8s >"$work/certs.out" 2>&1
[ $? = 2 ] || fail "a bad namespace accepted"

"$certs" -d "$work/compose" -r 2 compose >"$work/certs.out" 2>&1 || fail "compose: status $?"
for f in raftkv-1.crt raftkv-1.key raftkv-2.crt raftkv-2.key client.crt client.key; do
  [ -f "$work/compose/$f" ] || fail "compose: no $f"
done
[ ! -e "$work/compose/raftkv-3.crt" ] || fail "compose -r 2 made raftkv-3"
[ "$(stat -c %a "$work/compose/raftkv-1.key")" = 644 ] && [ "$(stat -c %a "$work/compose")" = 700 ] ||
  fail "compose: the node keys are not 0644 in a 0700 directory"

"$certs" -d "$work/k" -n ns1 -r 5 k8s >"$work/certs.out" 2>&1 || fail "k8s: status $?"
san=$(openssl x509 -in "$work/k/raftkv.crt" -noout -ext subjectAltName)
for n in raftkv-0.raftkv-peers.ns1.svc raftkv-4.raftkv-peers.ns1.svc.cluster.local raftkv.ns1.svc; do
  [[ $san == *"DNS:$n,"* || $san == *"DNS:$n" ]] || fail "k8s: the certificate does not name $n"
done
sed -n 's/^  tls\.key: //p' "$work/k/raftkv-tls.yaml" | base64 -d | cmp -s - "$work/k/raftkv.key" ||
  fail "k8s: the Secret's tls.key is not the key"
grep -qx '  namespace: ns1' "$work/k/raftkv-tls.yaml" || fail "k8s: the Secret's namespace"

# cluster.sh -t
"$cluster_sh" -d "$work/c" -b "$raftd" -t start >"$work/cluster.out" 2>&1 || fail "cluster.sh -t start"
t=$work/c/tls
kv() {
  "$(dirname "$raftd")/raft-kv" --endpoints "$("$cluster_sh" -d "$work/c" endpoints)" \
    --tls-ca "$t/ca.crt" --tls-cert "$t/client.crt" --tls-key "$t/client.key" --timeout 30000 "$@"
}
[[ $("$cluster_sh" -d "$work/c" endpoints) == tls+tcp://* ]] || fail "cluster.sh -t: not tls+tcp://"
kv put k v >"$work/kv.out" 2>&1 || fail "cluster.sh -t: put: status $?"
[ "$(kv get k)" = v ] || fail "cluster.sh -t: get"
for i in 1 2 3; do
  openssl verify -CAfile "$t/ca.crt" "$t/node$i.crt" >"$work/verify.out" 2>&1 ||
    fail "cluster.sh -t: node$i.crt"
done
"$cluster_sh" -d "$work/c" stop >"$work/cluster.out" 2>&1 || fail "cluster.sh -t stop"
echo ok
