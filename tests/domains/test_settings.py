"""The environment the domains service reads."""

import pytest

from mailstream_domains.settings import DomainsSettings


def test_defaults_fit_a_dev_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DNS_NAMESERVERS", "DOMAINS_SPF_INCLUDE", "DOMAINS_SPF_IPS", "MAILSTREAM_BOUNCE_DOMAIN"):
        monkeypatch.delenv(name, raising=False)
    settings = DomainsSettings()
    assert settings.http_port == 8102
    assert settings.dns_nameservers == []
    assert settings.spf_include == "_spf.mailstream.test"
    assert settings.effective_bounce_domain == settings.inbound_domain
    assert settings.effective_dmarc_rua == f"dmarc-reports@{settings.inbound_domain}"


def test_lists_and_empty_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNS_NAMESERVERS", "127.0.0.1:5353, 192.0.2.53")
    monkeypatch.setenv("DOMAINS_SPF_IPS", "192.0.2.10,2001:db8::/32")
    monkeypatch.setenv("DOMAINS_SPF_INCLUDE", "")
    monkeypatch.setenv("MAILSTREAM_BOUNCE_DOMAIN", "Bounces.Example.test")
    monkeypatch.setenv("DOMAINS_HTTP_PORT", "9102")
    settings = DomainsSettings()
    assert settings.dns_nameservers == ["127.0.0.1:5353", "192.0.2.53"]
    assert settings.spf_ips == ["192.0.2.10", "2001:db8::/32"]
    assert settings.spf_include is None
    assert settings.effective_bounce_domain == "bounces.example.test"
    assert settings.http_port == 9102
