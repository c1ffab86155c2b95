"""binance-connector (binance.spot.Spot and SpotWebsocketStreamClient) against the local exchange."""

from __future__ import annotations

import json
import threading

from _support import SYMBOLS, Seen, check_unsubscribed, done, urls, warm_up
from binance.spot import Spot
from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

KIND_OF = {"24hrTicker": "ticker", "trade": "trade", "depthUpdate": "depth"}


def rest_calls(rest_url: str) -> dict:
    client = Spot(base_url=rest_url)
    answers = {
        "ping": client.ping(),
        "time": client.time(),
        "exchangeInfo": client.exchange_info(symbols=list(SYMBOLS)),
        "depth": client.depth("BTCUSDT", limit=10),
        "trades": client.trades("BTCUSDT", limit=5),
        "aggTrades": client.agg_trades("BTCUSDT", limit=5),
        "klines": client.klines("BTCUSDT", "1m", limit=5),
        "avgPrice": client.avg_price("BTCUSDT"),
        "ticker/24hr": client.ticker_24hr("BTCUSDT"),
        "ticker/price": client.ticker_price("ETHUSDT"),
        "ticker/bookTicker": client.book_ticker("ETHUSDT"),
    }
    assert answers["ping"] == {} and isinstance(answers["time"]["serverTime"], int)
    microseconds = Spot(base_url=rest_url, time_unit="MICROSECOND").time()["serverTime"]
    assert microseconds > answers["time"]["serverTime"] * 500, "time_unit MICROSECOND was not honoured"
    assert [s["symbol"] for s in answers["exchangeInfo"]["symbols"]] == list(SYMBOLS)
    assert len(answers["depth"]["bids"]) == 10
    assert all(len(k) == 12 for k in answers["klines"]) and answers["klines"]
    assert answers["ticker/24hr"]["symbol"] == "BTCUSDT" and answers["ticker/price"]["symbol"] == "ETHUSDT"
    return {name: type(body).__name__ for name, body in answers.items()}


def streams(rest_url: str, ws_url: str) -> dict:
    seen = Seen()
    event_times: list[int] = []
    replies: dict = {}
    replied = threading.Condition()

    def on_message(_client, message: str) -> None:
        data = json.loads(message)
        payload = data.get("data", data)
        if "result" in data and "id" in data:
            with replied:
                replies[data["id"]] = data
                replied.notify_all()
        elif payload.get("e") in KIND_OF:
            event_times.append(payload["E"])
            seen.add(payload["s"], KIND_OF[payload["e"]], payload.get("t"))

    client = SpotWebsocketStreamClient(
        stream_url=ws_url, on_message=on_message, is_combined=True, time_unit="MICROSECOND"
    )
    try:
        names = [f"{s.lower()}@{k}" for s in SYMBOLS for k in ("ticker", "trade", "depth@100ms")]
        client.subscribe(stream=names, id=1)  # one message: Binance cuts more than 5 a second
        seen.wait_all()
        assert min(event_times) > 10**15, f"event times are not in microseconds: {event_times[:3]}"
        client.unsubscribe(stream=["ethusdt@trade"], id=2)
        with replied:
            assert replied.wait_for(lambda: 2 in replies, 45), "no reply to UNSUBSCRIBE"
        return check_unsubscribed(seen, rest_url)
    finally:
        client.stop()


if __name__ == "__main__":
    rest_url, ws_url = urls()
    warm_up(rest_url)
    models = rest_calls(rest_url)
    listening = streams(rest_url, ws_url)
    done("binance-connector", rest=models, subscriptions=listening)
