"""Monitoring: department change events, rules M1-M12 as files, alerts and the caseworker's follow-up.

See docs/monitoring.md. ``events`` (event kinds, reading outboxes), ``rules`` (the rule files),
``workdays`` (due dates in Chinese working days), ``alerts`` (the hub's alert store), ``reader`` (the monitor
that turns events into alerts through the gateway).
"""
