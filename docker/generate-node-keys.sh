#!/usr/bin/env bash
# Create SuperNode authentication keys (ECDSA P-384, OpenSSH format, as Flower requires).
#   docker/generate-node-keys.sh OUT_DIR NAME [NAME...]   -> OUT_DIR/NAME and OUT_DIR/NAME.pub
# Register each public key with the SuperLink (flwr supernode register OUT_DIR/NAME.pub <conn>)
# and give the private key to that SuperNode (--auth-supernode-private-key).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT_DIR NAME [NAME...]" >&2
  exit 2
fi
out=$1; shift
mkdir -p "$out"
for name in "$@"; do
  [ -f "$out/$name" ] || ssh-keygen -q -t ecdsa -b 384 -N "" -C "$name" -f "$out/$name"
done
echo "keys for: $* in $out"
