"""Log intake: every source of HAProxy lines (HTTP bodies, syslog, files) into one ingestion path."""

from .group_commit import GroupCommitPolicy
from .logs import LogIntake, log_timezone
from .metrics import IntakeMetrics
from .syslog import DEFAULT_QUEUE_LINES, SyslogLimits, SyslogListener

__all__ = ["DEFAULT_QUEUE_LINES", "GroupCommitPolicy", "IntakeMetrics", "LogIntake", "SyslogLimits", "SyslogListener", "log_timezone"]
