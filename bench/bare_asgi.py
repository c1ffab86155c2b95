"""The `bare-asgi` server of bench/idle_memory.py: daphne with an ASGI callable and nothing else.

    daphne bench.bare_asgi:application

No Django, no Channels: it accepts every WebSocket, answers a `subscribe_ticker` with a
`subscribed` ack and otherwise waits. What daphne, autobahn and Twisted alone keep per connection.
"""

import json


async def application(scope, receive, send):
    if scope["type"] == "websocket":
        while True:
            event = await receive()
            if event["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif event["type"] == "websocket.receive":
                symbols = json.loads(event.get("text") or "{}").get("symbols", [])
                ack = {"type": "subscribed", "stream": "ticker", "symbols": symbols}
                await send({"type": "websocket.send", "text": json.dumps(ack)})
            elif event["type"] == "websocket.disconnect":
                return
    elif scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
