#!/usr/bin/env bash
# A CA and certificates for raftkv's TLS (README, "TLS"), made with openssl: EC P-256 keys,
# unencrypted (raftd reads them at start), valid 10 years. What deploy/cluster.sh -t, the
# compose TLS variant (deploy/docker/compose.tls.yaml) and Kubernetes (deploy/k8s/) use.
#
#   tls-certs.sh [-d DIR] ca                  DIR/ca.crt and ca.key (kept if there already)
#   tls-certs.sh [-d DIR] cert NAME HOST...   DIR/NAME.crt and NAME.key, issued by DIR's CA,
#                                             for each HOST (a DNS name or an IP address)
#   tls-certs.sh [-d DIR] [-r N] compose      the CA, raftkv-1 ... raftkv-N (N = 3) for the
#                                             compose services (each named for its host name,
#                                             localhost and 127.0.0.1), and client
#   tls-certs.sh [-d DIR] [-r N] [-n NS] k8s  the CA, one certificate for every pod of the
#                                             StatefulSet (N = 3 replicas in namespace NS =
#                                             default), client, and DIR/raftkv-tls.yaml: the
#                                             Secret raftkv-tls the StatefulSet mounts
#
# DIR defaults to ./raftkv-tls. Clients give raft-kv --tls-ca DIR/ca.crt --tls-cert
# DIR/client.crt --tls-key DIR/client.key. Any certificate the CA issued is accepted as a
# member's or a client's, whatever it names (raftd and raft-kv do not check names: README,
# "TLS"): keep DIR/ca.key away from the nodes. The certificates name every address their
# node is reached at all the same, for clients that check (the library's tls_server_name).
set -euo pipefail

dir=./raftkv-tls
replicas=3
namespace=default

die() {
    echo "tls-certs.sh: $*" >&2
    exit 2
}

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    exit "${1:-0}"
}

make_ca() {
    mkdir -p "$dir"
    [ ! -f "$dir/ca.crt" ] || [ ! -f "$dir/ca.key" ] || return 0
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 3650 -subj "/CN=raftkv cluster CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
        2>/dev/null) || die "openssl could not make the CA in $dir"
    chmod 644 "$dir/ca.crt"
}

# make_cert NAME HOST...: DIR/NAME.{crt,key} for the HOSTs, issued by DIR's CA.
make_cert() {
    local name=$1 san="" h
    shift
    [ $# -ge 1 ] || die "cert $name: no host to name in it"
    [ -f "$dir/ca.key" ] || die "no CA in $dir (tls-certs.sh -d $dir ca)"
    for h in "$@"; do
        if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+="${san:+,}IP:$h"; else san+="${san:+,}DNS:$h"; fi
    done
    (umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=$name" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null) ||
        die "openssl could not make the key of $name"
    printf 'subjectAltName=%s\n' "$san" >"$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 3650 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null ||
        die "openssl could not issue the certificate of $name"
    rm -f "$dir/$name.csr" "$dir/$name.ext"
}

# compose: the nodes' keys are readable by all (0644), as the container's user (uid 10001)
# reads them through a bind mount that keeps the host's owner; DIR itself is 0700.
compose() {
    local i
    make_ca
    chmod 700 "$dir"
    for ((i = 1; i <= replicas; i++)); do
        make_cert "raftkv-$i" "raftkv-$i" localhost 127.0.0.1
        chmod 644 "$dir/raftkv-$i.key"
    done
    make_cert client client
}

# k8s: one certificate for the pods (a StatefulSet's pods share their volumes' sources),
# naming each pod under the headless Service raftkv-peers, the client Service raftkv, and
# localhost and 127.0.0.1 (raft-kv run in the pod).
k8s() {
    local i hosts=() d
    [[ $namespace =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "bad namespace: $namespace"
    for ((i = 0; i < replicas; i++)); do
        for d in svc svc.cluster.local; do hosts+=("raftkv-$i.raftkv-peers.$namespace.$d"); done
    done
    hosts+=(raftkv "raftkv.$namespace" "raftkv.$namespace.svc" "raftkv.$namespace.svc.cluster.local"
        localhost 127.0.0.1)
    make_ca
    make_cert raftkv "${hosts[@]}"
    make_cert client client
    {
        echo "# The Secret deploy/k8s/statefulset.yaml mounts (made by deploy/tls-certs.sh k8s):"
        echo "# kubectl -n $namespace apply -f $dir/raftkv-tls.yaml"
        echo "apiVersion: v1"
        echo "kind: Secret"
        echo "metadata:"
        echo "  name: raftkv-tls"
        echo "  namespace: $namespace"
        echo "  labels:"
        echo "    app.kubernetes.io/name: raftkv"
        echo "type: kubernetes.io/tls"
        echo "data:"
        echo "  ca.crt: $(base64 -w0 "$dir/ca.crt")"
        echo "  tls.crt: $(base64 -w0 "$dir/raftkv.crt")"
        echo "  tls.key: $(base64 -w0 "$dir/raftkv.key")"
    } >"$dir/raftkv-tls.yaml"
    chmod 600 "$dir/raftkv-tls.yaml"
}

while getopts "d:r:n:h" opt; do
    case $opt in
    d) dir=$OPTARG ;;
    r) replicas=$OPTARG ;;
    n) namespace=$OPTARG ;;
    h) usage 0 ;;
    *) usage 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage 2
[[ $replicas =~ ^[1-9][0-9]?$ ]] || die "bad replica count: $replicas (1..99)"
command -v openssl >/dev/null || die "openssl not found"
cmd=$1
shift
case $cmd in
ca) make_ca ;;
cert)
    [ $# -ge 2 ] || usage 2
    make_cert "$@"
    ;;
compose) compose ;;
k8s) k8s ;;
*) usage 2 ;;
esac
