"""tradingsite.config: the environment, read once into a typed object, with clear errors."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradingsite import config

SECRET = "a-real-secret-key-for-these-tests-0123456789"


def env(**overrides: str) -> dict[str, str]:
    """The smallest production environment (a secret key), plus overrides."""
    return {"DJANGO_SECRET_KEY": SECRET, **overrides}


def refused(environment: dict[str, str]) -> str:
    """Load an environment that must be refused; return the message an operator would read."""
    with pytest.raises(ImproperlyConfigured) as caught:
        config.load(environment)
    return str(caught.value)


# --- the secret key -----------------------------------------------------------------------------


def test_production_without_a_secret_key_is_refused():
    message = refused({})

    assert "DJANGO_SECRET_KEY" in message
    assert "DJANGO_DEBUG" in message  # says what to do for local development


@pytest.mark.parametrize("debug", ["0", "false", "off", "no", ""])
def test_debug_off_without_a_secret_key_is_refused(debug):
    assert "DJANGO_SECRET_KEY" in refused({"DJANGO_DEBUG": debug})


def test_an_empty_secret_key_counts_as_missing():
    assert "DJANGO_SECRET_KEY" in refused({"DJANGO_SECRET_KEY": ""})


def test_debug_on_without_a_secret_key_uses_the_insecure_development_key():
    loaded = config.load({"DJANGO_DEBUG": "1"})

    assert loaded.debug is True
    assert loaded.secret_key == config.INSECURE_DEV_KEY


def test_a_given_secret_key_is_used():
    assert config.load(env()).secret_key == SECRET


# --- defaults -----------------------------------------------------------------------------------


def test_debug_is_off_by_default():
    assert config.load(env()).debug is False


def test_websocket_defaults_match_the_design():
    loaded = config.load(env())

    assert loaded.ws_heartbeat_interval == 30
    assert loaded.ws_max_connections_per_user == 5
    assert loaded.ws_message_queue_size == 100
    assert loaded.ws_reconnect_timeout == 60


def test_exchange_urls_default_to_binance():
    loaded = config.load(env())

    assert loaded.binance_ws_url == "wss://stream.binance.com:9443"
    assert loaded.binance_rest_url == "https://api.binance.com"


def test_market_defaults_to_binance_with_the_main_symbols():
    loaded = config.load(env())

    assert loaded.market_source == "binance"
    assert {"BTCUSDT", "ETHUSDT", "ADAUSDT"} <= set(loaded.market_symbols)


def test_allowed_hosts_default_to_local_addresses():
    assert "localhost" in config.load(env()).allowed_hosts


def test_no_database_url_leaves_the_choice_to_settings():
    assert config.load(env()).database_url == ""


@pytest.mark.parametrize(
    "name",
    [
        "WS_HEARTBEAT_INTERVAL",
        "WS_MAX_CONNECTIONS_PER_USER",
        "WS_MESSAGE_QUEUE_SIZE",
        "WS_RECONNECT_TIMEOUT",
        "MARKET_SYMBOLS",
        "MARKET_SOURCE",
        "DJANGO_DEBUG",
    ],
)
def test_an_empty_variable_means_its_default(name):
    assert config.load(env(**{name: ""})) == config.load(env())


def test_the_config_is_frozen():
    loaded = config.load(env())

    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.ws_heartbeat_interval = 1


# --- embedded or Redis --------------------------------------------------------------------------


def test_without_redis_url_the_system_is_embedded():
    loaded = config.load(env())

    assert loaded.redis_url is None
    assert loaded.embedded is True


def test_an_empty_redis_url_is_embedded():
    assert config.load(env(REDIS_URL="")).embedded is True


def test_with_redis_url_the_system_is_not_embedded():
    loaded = config.load(env(REDIS_URL="redis://127.0.0.1:6379/0"))

    assert loaded.redis_url == "redis://127.0.0.1:6379/0"
    assert loaded.embedded is False


# --- overrides ----------------------------------------------------------------------------------


def test_websocket_overrides_are_parsed_as_numbers():
    loaded = config.load(
        env(
            WS_HEARTBEAT_INTERVAL="5",
            WS_MAX_CONNECTIONS_PER_USER="2",
            WS_MESSAGE_QUEUE_SIZE="1000",
            WS_RECONNECT_TIMEOUT=" 15 ",
        )
    )

    assert loaded.ws_heartbeat_interval == 5
    assert loaded.ws_max_connections_per_user == 2
    assert loaded.ws_message_queue_size == 1000
    assert loaded.ws_reconnect_timeout == 15


def test_history_window_defaults_to_1000_events_and_900_seconds():
    loaded = config.load(env())

    assert (loaded.ws_history_size, loaded.ws_history_ttl) == (1000, 900)


def test_history_window_overrides_are_parsed():
    loaded = config.load(env(WS_HISTORY_SIZE="50", WS_HISTORY_TTL="60"))

    assert (loaded.ws_history_size, loaded.ws_history_ttl) == (50, 60)


def test_the_snapshot_budget_defaults_to_200_messages_a_second_per_user_and_can_be_lifted():
    assert config.load(env()).ws_snapshot_rate_per_user == 200
    assert config.load(env(WS_SNAPSHOT_RATE_PER_USER="100000")).ws_snapshot_rate_per_user == 100000
    assert config.load(env(WS_SNAPSHOT_RATE_PER_USER="")) == config.load(env())


@pytest.mark.parametrize("value", ["0", "-5", "many", "2.5"])
def test_a_snapshot_budget_that_is_not_a_positive_whole_number_is_refused(value):
    assert "WS_SNAPSHOT_RATE_PER_USER" in refused(env(WS_SNAPSHOT_RATE_PER_USER=value))


@pytest.mark.parametrize("name", ["WS_HISTORY_SIZE", "WS_HISTORY_TTL"])
@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_history_window_that_is_not_a_positive_whole_number_is_refused(name, value):
    assert name in refused(env(**{name: value}))


def test_rate_limit_overrides_are_parsed():
    loaded = config.load(env(WS_RATE_LIMIT_PER_SECOND="2.5", WS_RATE_LIMIT_BURST="4"))

    assert loaded.ws_rate_limit_per_second == 2.5
    assert loaded.ws_rate_limit_burst == 4


@pytest.mark.parametrize("value", ["1", "true", "True", "yes", "on", " ON "])
def test_debug_accepts_the_usual_true_spellings(value):
    assert config.load(env(DJANGO_DEBUG=value)).debug is True


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off"])
def test_debug_accepts_the_usual_false_spellings(value):
    assert config.load(env(DJANGO_DEBUG=value)).debug is False


def test_market_symbols_are_a_comma_list_upper_cased_and_trimmed():
    loaded = config.load(env(MARKET_SYMBOLS=" btcusdt, ETHUSDT ,,solusdt "))

    assert loaded.market_symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.mark.parametrize("value", ["simulator", "SIMULATOR", " Simulator "])
def test_market_source_simulator_is_accepted_in_any_case(value):
    assert config.load(env(MARKET_SOURCE=value)).market_source == "simulator"


def test_exchange_urls_can_point_at_a_local_exchange_without_a_trailing_slash():
    loaded = config.load(env(BINANCE_WS_URL="ws://127.0.0.1:9443/", BINANCE_REST_URL="http://127.0.0.1:9444/"))

    assert loaded.binance_ws_url == "ws://127.0.0.1:9443"
    assert loaded.binance_rest_url == "http://127.0.0.1:9444"


def test_allowed_hosts_are_a_comma_list():
    assert config.load(env(DJANGO_ALLOWED_HOSTS="example.com, .trading.test")).allowed_hosts == (
        "example.com",
        ".trading.test",
    )


def test_database_url_is_passed_through():
    url = "postgres://u:p@db:5432/trading"

    assert config.load(env(DATABASE_URL=url)).database_url == url


def test_load_reads_only_the_given_environment(monkeypatch):
    monkeypatch.setenv("WS_HEARTBEAT_INTERVAL", "7")

    assert config.load(env()).ws_heartbeat_interval == 30


def test_load_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", SECRET)
    monkeypatch.setenv("WS_HEARTBEAT_INTERVAL", "7")

    assert config.load().ws_heartbeat_interval == 7


# --- bad values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["WS_HEARTBEAT_INTERVAL", "WS_MAX_CONNECTIONS_PER_USER", "WS_MESSAGE_QUEUE_SIZE", "WS_RECONNECT_TIMEOUT"],
)
@pytest.mark.parametrize("value", ["abc", "5.5", "1e3", "ten"])
def test_a_non_number_names_the_variable_and_the_value(name, value):
    message = refused(env(**{name: value}))

    assert name in message
    assert value in message


@pytest.mark.parametrize(
    "name",
    ["WS_HEARTBEAT_INTERVAL", "WS_MAX_CONNECTIONS_PER_USER", "WS_MESSAGE_QUEUE_SIZE", "WS_RECONNECT_TIMEOUT"],
)
@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_number_below_one_names_the_variable(name, value):
    message = refused(env(**{name: value}))

    assert name in message
    assert "at least" in message


def test_a_bad_debug_flag_names_the_variable():
    message = refused(env(DJANGO_DEBUG="maybe"))

    assert "DJANGO_DEBUG" in message
    assert "maybe" in message


def test_an_unknown_market_source_names_the_variable_and_the_choices():
    message = refused(env(MARKET_SOURCE="kraken"))

    assert "MARKET_SOURCE" in message
    assert "binance" in message
    assert "simulator" in message


def test_a_non_numeric_rate_limit_names_the_variable():
    assert "WS_RATE_LIMIT_PER_SECOND" in refused(env(WS_RATE_LIMIT_PER_SECOND="fast"))


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_rate_limit_that_is_not_a_positive_number_names_the_variable(value):
    assert "WS_RATE_LIMIT_PER_SECOND" in refused(env(WS_RATE_LIMIT_PER_SECOND=value))


@pytest.mark.parametrize("value", ["BTCUSDT,BTC/USDT", "BTC-USDT", "BTCUSDT,ETH USDT"])
def test_a_malformed_market_symbol_names_the_variable(value):
    assert "MARKET_SYMBOLS" in refused(env(MARKET_SYMBOLS=value))


# --- graceful drain -----------------------------------------------------------------------------


def test_the_drain_lasts_at_most_ten_seconds_by_default():
    assert config.load(env()).drain_seconds == 10.0
    assert config.load(env(DRAIN_SECONDS="")).drain_seconds == 10.0


def test_the_drain_bound_is_read_in_seconds():
    assert config.load(env(DRAIN_SECONDS="2.5")).drain_seconds == 2.5


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_a_drain_bound_that_is_not_a_positive_number_names_the_variable(value):
    assert "DRAIN_SECONDS" in refused(env(DRAIN_SECONDS=value))
