"""The constants `mage_ai.data_integrations.logger.utils.print_log_from_line` imports
from `mage_integrations.utils.logger.constants`, with Mage's values. The package is not
on the package index, so the tests carry these three names; everything else the tests
run is Mage's own code from `mage-ai`."""

LOG_LEVEL_ERROR = "ERROR"
LOG_LEVEL_EXCEPTION = "EXCEPTION"
TYPE_LOG = "LOG"
