"""The v2 API's views, one blueprint per area; each is mounted at ``/v2`` and at
``/v2/<project_id>``."""
