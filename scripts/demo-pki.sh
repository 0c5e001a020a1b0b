#!/usr/bin/env bash
# Makes a demo PKI in DIR: root CA -> intermediate CA -> server certificate
# (localhost) and device certificates (CN = ClientId), all ECDSA P-256.
#   scripts/demo-pki.sh DIR DEVICE...
set -euo pipefail
dir=$1; shift
mkdir -p "$dir"; cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
# sign NAME ISSUER SUBJECT EXTENSIONS
sign() {
    openssl req -new -key "$1.key" -subj "$3" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
        -days 365 -sha256 -extfile <(printf '%s\n' "$4") -out "$1.crt" 2>/dev/null
    rm -f "$1.csr"
}

key root
openssl req -x509 -new -key root.key -subj "/O=Demo Fleet/CN=Demo Root CA" -days 3650 \
    -sha256 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.crt
key intermediate
sign intermediate root "/O=Demo Fleet/CN=Demo Devices CA" \
    "basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign"
cat intermediate.crt root.crt >ca-chain.pem

key server
sign server intermediate "/CN=localhost" \
    "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
# nginx sends the chain, so devices need only the root.
cat server.crt intermediate.crt >server-chain.crt && mv server-chain.crt server.crt

for device in "$@"; do
    key "$device"
    sign "$device" intermediate "/O=Demo Fleet/CN=$device" "extendedKeyUsage=clientAuth"
done
rm -f ./*.srl
