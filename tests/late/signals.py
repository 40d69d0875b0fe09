"""A module nobody imports at start-up: its signal must be found when first sent."""

from django.dispatch import Signal

parcel_delivered = Signal()
