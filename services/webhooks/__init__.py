"""Webhooks to merchants: endpoints, signing, fan-out from the outbox, delivery with retries.

Events reach merchants only through the transactional outbox: `dispatch` turns committed
outbox rows into one message per subscribed endpoint, `delivery` sends each message
(signed as Standard Webhooks prescribes) until it is acknowledged or given up on.
"""
