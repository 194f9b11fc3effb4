"""Step Functions fixes on top of moto's engine (moto.stepfunctions.parser).

* `$$.Execution.StartTime` is a Python datetime in moto's context object: it
  reaches Lambda payloads as `2024-01-01T00:00:00.123456+00:00` and, if it ends
  up in an execution's output, DescribeExecution fails with a 500 (datetime is
  not JSON serializable). AWS gives a string like `2024-01-01T00:00:00.123Z`;
  make it so.
"""

from __future__ import annotations

import datetime
from typing import Any


def aws_timestamp(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def install() -> None:
    from moto.stepfunctions.parser.backend import execution_worker

    original = execution_worker.ExecutionData

    def execution_data(**kwargs: Any) -> Any:
        start = kwargs.get("StartTime")
        if isinstance(start, datetime.datetime):
            kwargs["StartTime"] = aws_timestamp(start)
        return original(**kwargs)

    execution_worker.ExecutionData = execution_data  # type: ignore[assignment]

    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        state_task_lambda as stl,
    )

    original_from_error = stl.StateTaskLambda._from_error

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, ClientError):
            error = f"Lambda.{ex.response['Error'].get('Code') or 'Exception'}"
            cause = ex.response["Error"].get("Message") or str(ex)
            return stl.FailureEvent(
                env=env,
                error_name=stl.CustomErrorName(error),
                event_type=stl.HistoryEventType.LambdaFunctionFailed,
                event_details=stl.EventDetails(
                    lambdaFunctionFailedEventDetails=stl.LambdaFunctionFailedEventDetails(
                        error=error, cause=cause
                    )
                ),
            )
        return original_from_error(self, env, ex)

    stl.StateTaskLambda._from_error = from_error  # type: ignore[method-assign]
