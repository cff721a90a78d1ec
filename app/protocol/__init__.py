"""The data bridge's wire protocol, shared by the client link and the reference bridge."""
