#!/usr/bin/env python3
"""What a session holds on nginx's heap, by kind, from the massif output of
its workers (scripts/soak/massif-nginx.sh):

    scripts/soak/massif_sites.py SESSIONS DIR/massif.out.<worker pid> ...

For each file: the peak snapshot less the first detailed one (taken before
the devices connect), each block charged to the first group below whose
functions are on its allocation stack, summed over the files and divided
by SESSIONS (the sessions live at the peak, over all the given workers).
"""

import collections
import re
import sys

# First match wins: a certificate's public key is part of the certificate,
# a key made in the handshake is not.
GROUPS = [
    ("the peer's certificate, parsed (X509 and its public key)",
     ("X509_new_ex", "ASN1_item_d2i_ex", "ASN1_item_ex_d2i", "d2i_X509", "X509_chain_up_ref",
      "ASN1_STRING", "X509_NAME")),
    ("key-exchange keys (EVP_PKEY_generate, EC_KEY)",
     ("EVP_PKEY_generate", "EC_KEY", "EC_GROUP", "EC_POINT", "o2i_ECPublicKey", "BN_",
      "EVP_PKEY_")),
    ("the record layer's ciphers", ("EVP_CipherInit_ex", "EVP_CIPHER_CTX")),
    ("the handshake's transcript hash", ("EVP_MD_CTX", "EVP_Digest")),
    ("the SSL object and what SSL_new allocates with it", ("SSL_new",)),
    ("the socket BIO", ("SSL_set_fd", "BIO_new")),
    ("other OpenSSL state kept from the handshake", ("ngx_ssl_handshake",)),
    ("nginx: session, pool, proxy buffers, module context", ("ngx_",)),
]
NODE = re.compile(r"^( *)n\d+: (\d+) (.*)$")
FRAME = re.compile(r"0x[0-9A-Fa-f]+: (\S+)")


def snapshots(path):
    """(kind, heap bytes, extra bytes, tree) of each detailed or peak snapshot;
    a tree is a list of (depth, bytes, function)."""
    snap = {}
    lines = open(path).read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        key, _, value = line.partition("=")
        if key in ("mem_heap_B", "mem_heap_extra_B"):
            snap[key] = int(value)
        elif key == "heap_tree":
            tree = []
            while i < len(lines) and (m := NODE.match(lines[i])):
                f = FRAME.match(m.group(3))
                tree.append((len(m.group(1)), int(m.group(2)),
                             f.group(1) if f else m.group(3)))
                i += 1
            if value in ("peak", "detailed"):
                yield value, snap["mem_heap_B"], snap["mem_heap_extra_B"], tree
            snap = {}


def grouped(tree):
    """Bytes per group: each node's own bytes (less its children's), with
    the stack from the allocation up to it."""
    out = collections.Counter()
    stack = []
    for i, (depth, size, func) in enumerate(tree):
        stack[depth:] = [func]
        children = 0
        for d, b, _ in tree[i + 1:]:
            if d <= depth:
                break
            if d == depth + 1:
                children += b
        if depth > 0 and size > children:
            frames = stack[1:]
            name = next((g for g, keys in GROUPS
                         if any(k in f for f in frames for k in keys)), "other")
            out[name] += size - children
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sessions = int(sys.argv[1])
    total = collections.Counter()
    blocks = 0.0
    for path in sys.argv[2:]:
        snaps = list(snapshots(path))
        peak = next(s for s in reversed(snaps) if s[0] == "peak")
        first = snaps[0]
        total.update(grouped(peak[3]))
        total.subtract(grouped(first[3]))
        # valgrind counts 8 bytes of its own per block.
        blocks += (peak[2] - first[2]) / 8
    for name, b in total.most_common():
        print(f"{b / sessions:8.0f}  {name}")
    print(f"{sum(total.values()) / sessions:8.0f}  total bytes requested per session, "
          f"in {blocks / sessions:.0f} blocks")


if __name__ == "__main__":
    main()
