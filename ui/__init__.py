"""The desktop window (PySide6 + pyqtgraph). It renders core state and sends intent back.

Built in a later issue; until then ``trading-client`` runs headless.
"""
