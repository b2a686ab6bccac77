"""The extraction parser reads an IP's TTL in every form providers give it: seconds left, an
absolute expiry time (also in text lines, where its space must not split the entry), or none.

Pure tests at a fixed wall time; the simulator serving each form over a socket is covered in
``test_sim_provider_ttl.py``.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from boardsync.errors import ProviderError
from boardsync.proxy import PROVIDER_TZ, parse_extraction_body

WALL = datetime(2024, 5, 1, 12, 0, 0, tzinfo=PROVIDER_TZ).timestamp()


def test_text_lines_with_an_expiry_time_keep_the_space_inside_the_time() -> None:
    body = "1.2.3.4:80,2024-05-01 12:01:30\r\n5.6.7.8:81,2024-05-01 12:00:45\r\n"
    eps = parse_extraction_body(body, wall_now=WALL)
    assert [e.key for e in eps] == ["1.2.3.4:80", "5.6.7.8:81"]
    assert [e.ttl_s for e in eps] == [pytest.approx(90.0), pytest.approx(45.0)]


@pytest.mark.parametrize("sep", [" ", "|", "\n"])
def test_expiry_times_with_every_separator(sep: str) -> None:
    body = sep.join(["1.2.3.4:80,2024-05-01 12:01:00", "5.6.7.8:81,2024/05/01 12:02:00",
                     "9.9.9.9:82,2024-05-01T12:03:00", "8.8.8.8:83,30"])
    eps = parse_extraction_body(body, wall_now=WALL)
    assert [e.ttl_s for e in eps] == [pytest.approx(60.0), pytest.approx(120.0),
                                      pytest.approx(180.0), 30.0]


def test_an_expiry_then_more_extras() -> None:
    (ep,) = parse_extraction_body("1.2.3.4:80,2024-05-01 12:01:00,江苏徐州", wall_now=WALL)
    assert ep.ttl_s == pytest.approx(60.0)


def test_text_without_a_ttl_states_none() -> None:
    # None: the manager then keeps the IP for its configured ``ip_ttl`` (45 s by default).
    eps = parse_extraction_body("1.2.3.4:80\r\n5.6.7.8:81", wall_now=WALL)
    assert [e.ttl_s for e in eps] == [None, None]


def test_a_lone_time_is_still_not_an_address() -> None:
    # Only a date right after ``,`` joins the next token: a stray time stays an error body.
    with pytest.raises(ProviderError):
        parse_extraction_body("1.2.3.4:80 12:01:30", wall_now=WALL)


def test_json_with_only_an_expiry_time() -> None:
    body = ('{"code":0,"success":true,"data":[{"ip":"1.2.3.4","port":80,'
            '"expire_time":"2024-05-01 12:01:30","outip":"58.1.2.3"}]}')
    (ep,) = parse_extraction_body(body, wall_now=WALL)
    assert ep.ttl_s == pytest.approx(90.0) and ep.identity_hint == "58.1.2.3"


def test_json_with_neither_ttl_nor_expiry() -> None:
    body = '{"code":0,"success":true,"data":[{"ip":"1.2.3.4","port":80,"outip":"58.1.2.3"}]}'
    (ep,) = parse_extraction_body(body, wall_now=WALL)
    assert ep.key == "1.2.3.4:80" and ep.ttl_s is None


def test_proxy_list_strings_with_an_expiry() -> None:
    body = '{"code":0,"data":{"proxy_list":["1.2.3.4:80,2024-05-01 12:00:20"]}}'
    (ep,) = parse_extraction_body(body, wall_now=WALL)
    assert ep.ttl_s == pytest.approx(20.0)
