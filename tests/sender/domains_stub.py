"""A tiny real HTTP server standing in for the domains service's internal signing-key endpoint."""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class DomainKey:
    domain: str
    account_id: str
    selector: str
    rsa_key: rsa.RSAPrivateKey
    ed25519_selector: str | None = None
    ed25519_key: ed25519.Ed25519PrivateKey | None = None

    def document(self) -> dict:
        return {
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": "rsa-sha256",
            "private_key_pem": pem(self.rsa_key),
            "ed25519": None
            if self.ed25519_key is None
            else {"selector": self.ed25519_selector, "private_key_pem": pem(self.ed25519_key)},
        }


@dataclass
class DomainsStub:
    token: str
    keys: dict[str, DomainKey] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    status_override: int | None = None
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "DomainsStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                stub.requests.append({"path": parts.path, **query})
                if self.headers.get("X-Internal-Token") != stub.token:
                    return self._answer(401, {"detail": "bad token"})
                if stub.status_override is not None:
                    return self._answer(stub.status_override, {"detail": "override"})
                key = stub.keys.get(query.get("domain", ""))
                if parts.path != "/internal/signing-key" or key is None or key.account_id != query.get("account_id"):
                    return self._answer(404, {"detail": "no verified key"})
                return self._answer(200, key.document())

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
