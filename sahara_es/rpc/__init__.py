"""The message bus between API and engines (oslo.messaging over RabbitMQ; doc/bus.rst).

``bus``: the engines' wake-ups (``engine/wakeups.py``) as casts; ``announce``: the API's store
that casts when commands record requests; ``notifications``: Sahara's cluster notifications
through oslo.messaging's Notifier; ``settings``: what configures them, importable without
oslo.messaging. Without ``[DEFAULT] transport_url`` none of it runs: engines and clients
dispatch wake-ups in-process.
"""
