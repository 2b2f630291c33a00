#!/usr/bin/env bash
# Create a CA and a TLS certificate for the SuperLink, valid for the given host names/IPs.
#   docker/generate-certs.sh OUT_DIR superlink.example.org 10.0.0.5 [more hosts...]
# Writes OUT_DIR/ca.crt (give it to SuperNodes and the flwr CLI), OUT_DIR/server.pem and
# OUT_DIR/server.key (the SuperLink's), and keeps OUT_DIR/ca.key to sign more.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT_DIR HOST [HOST...]" >&2
  exit 2
fi
out=$1; shift
mkdir -p "$out"
umask 077
san=""; dns=0; ip=0
for host in "$@"; do
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then ip=$((ip + 1)); san+="IP.$ip = $host"$'\n'
  else dns=$((dns + 1)); san+="DNS.$dns = $host"$'\n'; fi
done
cat > "$out/server.conf" <<CNF
[req]
distinguished_name = dn
req_extensions = v3_req
prompt = no
[dn]
CN = $1
[v3_req]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = @alt
[alt]
$san
CNF
[ -f "$out/ca.key" ] || openssl genrsa -out "$out/ca.key" 4096 2>/dev/null
[ -f "$out/ca.crt" ] || openssl req -new -x509 -key "$out/ca.key" -sha256 -days 365 \
  -subj "/O=fedntc/CN=fedntc CA" -out "$out/ca.crt"
openssl genrsa -out "$out/server.key" 4096 2>/dev/null
openssl req -new -key "$out/server.key" -out "$out/server.csr" -config "$out/server.conf"
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -out "$out/server.pem" -days 365 -sha256 -extfile "$out/server.conf" -extensions v3_req 2>/dev/null
rm -f "$out/server.csr"
chmod 644 "$out/ca.crt" "$out/server.pem"
openssl verify -CAfile "$out/ca.crt" "$out/server.pem" >/dev/null
echo "certificates for: $* in $out"
