"""The control room's alarm console: a web page over the gateways' MQTT topics.

One console process watches any number of sites through one broker: it subscribes to the retained
alarm, status, interlock and rescue topics of the gateway's MQTT contract (README.md and
docs/rules.md), keeps the board in memory (:class:`AlarmBoard`), pushes every change to the
browsers over server-sent events, and sends the operators' acknowledge, shelve, unshelve,
out-of-service and return commands to the gateways, each carrying the logged-in user. See
docs/console.md.
"""

from console._board import AlarmBoard, Delta, TitleBook
from console._users import ROLES, UserFile, UserFileError

__all__ = ["ROLES", "AlarmBoard", "Delta", "TitleBook", "UserFile", "UserFileError"]
