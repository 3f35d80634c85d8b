"""Access to the .eml fixtures in tests/fixtures/mail (written as the named clients write them)."""

from pathlib import Path

MAIL_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
OWNER = "support@acme.example"


def eml(name: str, **replacements: str) -> bytes:
    data = (MAIL_DIR / name).read_bytes()
    for old, new in replacements.items():
        data = data.replace(old.encode(), new.encode())
    return data
