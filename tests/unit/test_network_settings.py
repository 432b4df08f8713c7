"""TURN credentials in coturn's REST scheme, and the network settings: what they accept and what they refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace

import pytest

from server.config import IceServer, Settings, load_settings
from server.media.ice import IcePolicy, ports_capacity
from server.media.pool import default_capacity
from server.media.turn import ice_servers_for, turn_credential

SECRET = "coturn-static-auth-secret"
URLS = ("turn:203.0.113.5:3478?transport=udp", "turns:203.0.113.5:5349?transport=tcp")


def test_a_credential_is_expiry_colon_label_with_an_hmac_sha1_password() -> None:
    username, password = turn_credential(SECRET, "sess-1", ttl_s=600, now=1_000_000.7)
    assert username == "1000600:sess-1"
    expected = base64.b64encode(hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()
    assert password == expected
    # Another secret, label or time: another password.
    assert turn_credential("other", "sess-1", ttl_s=600, now=1_000_000)[1] != password
    assert turn_credential(SECRET, "sess-2", ttl_s=600, now=1_000_000)[1] != password


def test_ice_servers_carry_the_static_list_plus_fresh_turn_credentials_per_label() -> None:
    stun = IceServer(urls=("stun:203.0.113.5:3478",))
    settings = Settings(ice_servers=(stun,), turn_secret=SECRET, turn_urls=URLS, turn_ttl_s=900)
    servers = ice_servers_for(settings, "abc", now=2_000_000)
    assert servers[0] == stun
    turn = servers[1]
    assert turn.urls == URLS and turn.username == "2000900:abc"
    assert turn.credential == turn_credential(SECRET, "abc", ttl_s=900, now=2_000_000)[1]
    later = ice_servers_for(settings, "abc", now=2_000_100)[1]
    assert later.username == "2001000:abc" and later.credential != turn.credential
    # No secret or no URLs: no TURN entry, and never one without credentials.
    assert ice_servers_for(replace(settings, turn_secret=None), "abc") == (stun,)
    assert ice_servers_for(replace(settings, turn_urls=()), "abc") == (stun,)


def test_network_settings_from_the_environment() -> None:
    settings = load_settings(
        env={
            "RAPPORT_TURN_SECRET": SECRET,
            "RAPPORT_TURN_URLS": ",".join(URLS) + ", ",
            "RAPPORT_TURN_TTL_S": "300",
            "RAPPORT_RTC_PORTS": "50000-50100",
            "RAPPORT_PUBLIC_IP": " 203.0.113.10 ",
        }
    )
    assert settings.turn_secret == SECRET and settings.turn_urls == URLS and settings.turn_ttl_s == 300
    assert settings.rtc_ports == (50000, 50100) and settings.public_ip == "203.0.113.10"
    assert load_settings(env={"RAPPORT_RTC_PORTS": "50000-50001"}).rtc_ports == (50000, 50001)
    assert load_settings(env={"RAPPORT_RTC_PORTS": ""}).rtc_ports is None
    assert IcePolicy.of(settings).args() == ["--rtc-ports", "50000-50100", "--public-ip", "203.0.113.10"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RAPPORT_RTC_PORTS", "50100-50000", "rtc_ports"),
        ("RAPPORT_RTC_PORTS", "80-90", "rtc_ports"),
        ("RAPPORT_RTC_PORTS", "50000-70000", "rtc_ports"),
        ("RAPPORT_RTC_PORTS", "fifty", "rtc_ports"),
        ("RAPPORT_RTC_PORTS", "50000", "rtc_ports"),
        ("RAPPORT_RTC_PORTS", "50000-50000", "rtc_ports"),
        ("RAPPORT_RTC_PORTS", "1-2-3", "rtc_ports"),
        ("RAPPORT_PUBLIC_IP", "cloud.example", "public_ip"),
        ("RAPPORT_PUBLIC_IP", "203.0.113.300", "public_ip"),
        ("RAPPORT_TURN_URLS", "stun:203.0.113.5:3478", "turn_urls"),
        ("RAPPORT_TURN_URLS", "https://turn.example", "turn_urls"),
    ],
)
def test_bad_network_settings_are_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(env={name: value})


def test_capacity_never_exceeds_what_the_port_range_holds() -> None:
    assert ports_capacity((50000, 50100)) == 50 and ports_capacity((50000, 50001)) == 1
    assert default_capacity(Settings(max_calls=100, rtc_ports=(50000, 50019))) == 10
    assert default_capacity(Settings(max_calls=4, rtc_ports=(50000, 50019))) == 4
    assert default_capacity(Settings(max_calls=100)) == 100
