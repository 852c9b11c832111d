"""See mage_integrations/__init__.py: a stand-in, for the log constants only."""
