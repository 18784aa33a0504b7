"""The daemon: supervision (`supervisor`), start-up store recovery (`storeopen`), periodic work
(`timers`, `housekeeping`), `watchdog`, `reload`, the control socket (`control_server`,
`commands`), rule `actions`, the `prometheus` endpoint and `sdnotify`."""

from gateway_agent.daemon.storeopen import open_store
from gateway_agent.daemon.supervisor import Daemon, run

__all__ = ["Daemon", "open_store", "run"]
