"""Bluetooth LE: what watches, trackers, bands and sensors broadcast, and what that reveals.

A BLE device is judged from its advertisements alone (nothing is sent to it): ``observe``
checks the recorded shape, ``adv`` decodes the documented payload formats into facts that the
identification rules read, ``privacy`` runs the scheme's Bluetooth checks over a capture that
spans time, ``devices`` turns a capture into rated :class:`~iotrate.models.Device` objects and
``live`` is the thin bleak adapter behind ``iotrate ble scan``. Everything past ``live`` runs
the same on a recording as on the air, which is what the tests replay.
"""
