"""``warehouse_refresh_sensor``: evaluates the analytics' and HTML archive's automation conditions.

Named and on by default, so a new instance refreshes them without a switch in the UI.
"""

import dagster as dg

from .archive import skype_html_archive
from .assets import skype_analytics

warehouse_refresh_sensor = dg.AutomationConditionSensorDefinition(
    "warehouse_refresh_sensor",
    target=dg.AssetSelection.assets(skype_analytics, skype_html_archive),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Refreshes the analytics views and the HTML archive once the loads in progress are done.",
)
