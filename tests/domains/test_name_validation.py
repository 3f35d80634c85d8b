"""Which names may become sending domains: table-driven."""

import pytest

from mailstream_domains.name_validation import MUST_OWN, DomainNameError, validate_sending_domain


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("acme.com", "acme.com"),
        ("Mails.ACME.com.", "mails.acme.com"),
        ("  acme.co.uk ", "acme.co.uk"),
        ("news.mails.acme.co.uk", "news.mails.acme.co.uk"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("my-shop.github.io", "my-shop.github.io"),
        ("acme.test", "acme.test"),
    ],
)
def test_owned_domains_and_subdomains_are_accepted(raw: str, stored: str) -> None:
    assert validate_sending_domain(raw) == stored


@pytest.mark.parametrize(
    "raw",
    ["gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com",
     "yahoo.com", "yahoo.co.jp", "icloud.com", "me.com", "aol.com", "proton.me", "gmx.de", "gmx.net", "mail.ru",
     "yandex.ru", "yandex.com", "qq.com", "163.com", "support.gmail.com", "GMAIL.COM"],
)  # fmt: skip
def test_free_mail_domains_are_refused_with_the_reason(raw: str) -> None:
    with pytest.raises(DomainNameError, match=MUST_OWN):
        validate_sending_domain(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "required"),
        ("com", "full domain"),
        ("co.uk", "public suffix"),
        ("github.io", "public suffix"),
        ("support@acme.com", "not an email address"),
        ("https://acme.com", "not a URL"),
        ("192.0.2.1", "IP address"),
        ("-acme.com", "not a valid DNS label"),
        ("acme_mail.com", "not a valid DNS label"),
        ("a" * 64 + ".com", "not a valid"),
        ("acme..com", "not a valid"),
    ],
)
def test_malformed_names_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(DomainNameError, match=reason):
        validate_sending_domain(raw)
