"""The console of every run: one line per message at or above CANDLE_LOG_LEVEL.

Dagster's default console logger prints every event of a run at DEBUG (one line per
materialised partition: thousands for a backfill) and a failed step with its whole stack trace.
Here a run's console gets one line per message, its first, from the level the user chose
(default WARNING); the Dagster UI keeps every event and every stack trace either way.
"""

import logging
import sys

import dagster as dg

from candle_pipeline.settings import DEFAULT_LOG_LEVEL, LOG_LEVELS, get_settings

LOGGER_NAME = "candle_pipeline.runs"
LINE_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class FirstLine(logging.Formatter):
    """A record's first line: what happened, without the stack trace Dagster appends."""

    def format(self, record: logging.LogRecord) -> str:
        first = record.getMessage().strip().splitlines()[0] if record.getMessage() else ""
        one_line = logging.makeLogRecord({**record.__dict__, "msg": first, "args": None})
        one_line.exc_info = one_line.exc_text = None
        return super().format(one_line)


@dg.logger(
    config_schema={
        "log_level": dg.Field(
            dg.Enum("LogLevel", [dg.EnumValue(level) for level in LOG_LEVELS]),
            default_value=DEFAULT_LOG_LEVEL,
        )
    },
    description="One line per message at or above CANDLE_LOG_LEVEL, on stderr.",
)
def one_line_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger(LOGGER_NAME, level=init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FirstLine(LINE_FORMAT))
    logger.addHandler(handler)
    return logger


CONSOLE = "console"
# Dagster starts only the loggers a run's config names: every run the project plans names this.
LOGGERS_RUN_CONFIG: dict[str, object] = {"loggers": {CONSOLE: {}}}


def console_loggers() -> dict[str, dg.LoggerDefinition]:
    """The loggers of every job: the one-line console at the configured level."""
    return {CONSOLE: one_line_console.configured({"log_level": get_settings().log_level})}
