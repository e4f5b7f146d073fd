"""The per-address brake on failed authentication (api.throttle)."""

from __future__ import annotations

from herald.api.throttle import FailureThrottle, address_key


def test_a_burst_then_one_attempt_per_interval() -> None:
    throttle = FailureThrottle(burst=3, per_minute=6)  # one every 10 seconds after the burst
    assert [throttle.take("a", 0.0) for _ in range(3)] == [None, None, None]
    assert throttle.take("a", 0.0) == 10
    assert throttle.take("a", 4.0) == 6  # waiting counts
    assert throttle.take("a", 10.0) is None
    assert throttle.take("a", 10.0) == 10
    assert throttle.take("b", 10.0) is None  # another address has its own allowance


def test_an_attempt_given_back_is_not_a_failure() -> None:
    throttle = FailureThrottle(burst=2, per_minute=1)
    for _ in range(10):
        assert throttle.take("a", 0.0) is None
        throttle.give_back("a", 0.0)
    assert throttle.take("a", 0.0) is None
    assert throttle.take("a", 0.0) is None
    assert throttle.take("a", 0.0) == 60


def test_memory_is_bounded_forgetting_the_least_recent_address() -> None:
    throttle = FailureThrottle(burst=1, per_minute=1, max_addresses=100)
    throttle.take("first", 0.0)
    for i in range(100):
        throttle.take(f"10.0.0.{i}", 0.0)
    assert len(throttle._buckets) == 100
    assert throttle.take("first", 0.0) is None  # forgotten, so it starts afresh
    assert throttle.take("10.0.0.99", 0.0) == 60  # still remembered


def test_an_ipv6_client_is_counted_by_its_64_network() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"
    assert address_key(None) == "unknown"
