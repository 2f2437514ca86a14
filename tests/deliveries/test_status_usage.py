"""The usage each status change records, by the ids of the table in services/core/meters.py."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.core.models import Delivery, DeliveryStatus
from services.deliveries.lifecycle import status_usage

AT = datetime(2026, 11, 3, 10, tzinfo=UTC)


def test_status_changes_have_documented_usage_ids():
    delivery = Delivery(id="dlv_1", tenant_id="ten_1", attempt=2)
    assert status_usage(delivery, DeliveryStatus.PLANNED, AT) == []
    [failed] = status_usage(delivery, DeliveryStatus.FAILED, AT)
    assert (failed.id, failed.meter, failed.quantity) == ("dlv_1:failed:2", "failed_attempts",
                                                          Decimal(1))  # fmt: skip
    [cancelled] = status_usage(delivery, DeliveryStatus.CANCELLED, AT)
    assert (cancelled.id, cancelled.meter) == ("dlv_1:cancelled", "cancellations")
    [delivered] = status_usage(delivery, DeliveryStatus.DELIVERED, AT)
    assert (delivered.id, delivered.meter) == ("dlv_1:delivered", "delivered")
