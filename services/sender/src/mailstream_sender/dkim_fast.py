"""dkimpy's DKIM signer with the private-key step done by OpenSSL (through `cryptography`).

dkimpy does canonicalisation, body hash, tag list and folding; it also does RSA in pure Python, which is slow.
`FastDKIM` keeps every dkimpy step and replaces only the two places that touch the key: `sign()` takes an
already-loaded key object (loading a PEM is costly, so keys are loaded once and cached), and `gen_header()` calls
the key's `sign()`. Both methods follow dkimpy 1.1.8 line by line (the structure of
`dkim.DKIM.sign`/`gen_header`); tests compare the result byte for byte with stock dkimpy and verify it with
dkimpy and Perl's Mail::DKIM.
"""

import base64
import time

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim import HASH_ALGORITHMS, RE_BTAG, HashThrough, ParameterError, fold, hash_headers
from dkim.canonicalization import CanonicalizationPolicy

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

_PREHASH = {b"rsa-sha256": hashes.SHA256(), b"rsa-sha1": hashes.SHA1()}  # noqa: S303 - verifying old mail only


class FastDKIM(dkim.DKIM):
    def set_message(self, message: bytes | None) -> None:
        """dkimpy splits the whole message into lines to find the header block; for a CRLF-only message (all of
        ours) splitting the header block alone and slicing the body gives the same (headers, body) with less work."""
        end = message.find(b"\r\n\r\n") if message else -1
        if end < 0 or message.count(b"\n") != message.count(b"\r\n"):
            super().set_message(message)
            return
        super().set_message(message[: end + 4])
        self.body = message[end + 4 :]

    def sign_with_key(
        self,
        selector: bytes,
        domain: bytes,
        key: PrivateKey,
        *,
        signature_algorithm: bytes = b"rsa-sha256",
        include_headers: list[bytes] | None = None,
        canonicalize: tuple[bytes, bytes] = (b"relaxed", b"simple"),
    ) -> bytes:
        """Like `dkim.DKIM.sign`, with a loaded `cryptography` key; returns `DKIM-Signature: ...\\r\\n`."""
        if signature_algorithm == b"ed25519-sha256":
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise ParameterError("ed25519-sha256 needs an Ed25519 key")
        elif signature_algorithm in _PREHASH:
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ParameterError(f"{signature_algorithm.decode()} needs an RSA key")
        else:
            raise ParameterError(f"unsupported signature algorithm {signature_algorithm!r}")
        self.signature_algorithm = signature_algorithm
        canon_policy = CanonicalizationPolicy.from_c_value(b"/".join(canonicalize))
        if include_headers is None:
            include_headers = self.default_sign_headers()
        include = tuple(x.lower() for x in include_headers)
        self.include_headers = include
        if b"from" not in include:
            raise ParameterError("The From header field MUST be signed")
        for name in set(include).intersection(self.should_not_sign):
            raise ParameterError(f"The {name!r} header field SHOULD NOT be signed")

        body = canon_policy.canonicalize_body(self.body)
        self.hasher = HASH_ALGORITHMS[self.signature_algorithm]
        bodyhash = base64.b64encode(self.hasher(body).digest())
        sigfields = [
            (b"v", b"1"),
            (b"a", self.signature_algorithm),
            (b"c", canon_policy.to_c_value()),
            (b"d", domain),
            (b"i", b"@" + domain),
            (b"q", b"dns/txt"),
            (b"s", selector),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(include)),
            (b"bh", bodyhash),
            # As dkimpy: force b= onto its own line so refolding after adding it keeps the other tags' whitespace.
            (b"b", b"0" * 60),
        ]
        res = self.gen_header(sigfields, include, canon_policy, b"DKIM-Signature", key)
        self.domain = domain
        self.selector = selector
        self.signature_fields = dict(sigfields)
        return b"DKIM-Signature: " + res

    def gen_header(self, fields, include_headers, canon_policy, header_name, pk, standardize=False):  # type: ignore[override]
        """dkimpy's `gen_header` (non-standardised form) with the signature computed by OpenSSL."""
        if standardize:
            raise ParameterError("FastDKIM signs DKIM-Signature headers only")
        header_value = fold(b"; ".join(b"=".join(x) for x in fields), namelen=len(header_name), linesep=b"\r\n")
        header_value = RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        h = HashThrough(self.hasher(), self.debug_content)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = hash_headers(h, canon_policy, headers, include_headers, header, dict(fields))
        if isinstance(pk, ed25519.Ed25519PrivateKey):
            signature = pk.sign(h.digest())  # RFC 8463: Ed25519 over the SHA-256 of the signed data
        else:
            signature = pk.sign(h.digest(), padding.PKCS1v15(), Prehashed(_PREHASH[self.signature_algorithm]))
        idx = next(i for i, field in enumerate(fields) if field[0] == b"b")
        fields[idx] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return fold(header_value, namelen=len(header_name), linesep=self.linesep)
