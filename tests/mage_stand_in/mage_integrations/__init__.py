"""A stand-in for the top of Mage's `mage_integrations` package, which is not on the
package index: it holds only what the runner code of `mage-ai` imports from it while a
destination runs (the log constants), plus, once a test has put it there, the
`destinations/amazon_s3/__init__.py` that Mage runs (target-s3's shim)."""
