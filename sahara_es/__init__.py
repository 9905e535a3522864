"""sahara-es: an event-sourced data-processing cluster service."""

import warnings

__version__ = "0.1.0"

# The Cassandra driver imports its eventlet reactor whenever eventlet is installed (oslo.messaging
# brings it in); nothing here uses eventlet, so its deprecation notice at import is noise.
warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated", category=Warning)
