"""The ingest: radio frames in, committed readings, alerts and answers out.

Read `uplink.py` first (one uplink's steps in order); `loop.py` batches them into group commits.
"""

from gateway_agent.ingest.loop import Ingest, StoreCall
from gateway_agent.ingest.reading import WALL_CLOCK_VALID_AFTER
from gateway_agent.ingest.stage import PostCommit

__all__ = ["WALL_CLOCK_VALID_AFTER", "Ingest", "PostCommit", "StoreCall"]
