"""Step Functions fixes on top of moto's engine (moto.stepfunctions.parser).

* `$$.Execution.StartTime` is a Python datetime in moto's context object: it
  reaches Lambda payloads as `2024-01-01T00:00:00.123456+00:00` and, if it ends
  up in an execution's output, DescribeExecution fails with a 500 (datetime is
  not JSON serializable). AWS gives a string like `2024-01-01T00:00:00.123Z`;
  make it so.
* AWS SDK integrations name CloudWatch Logs `cloudwatchlogs`
  (`arn:aws:states:::aws-sdk:cloudwatchlogs:describeLogGroups`), boto3 names it
  `logs`, and moto passes the name through: map it, and name its errors
  `CloudWatchLogs.<Code>` as AWS does. Its AWS SDK integrations also pass
  the parameters and the response through as they are, where AWS maps the
  PascalCase names of the definition (`LogGroupNamePrefix`, `$.NextToken`) to
  and from the API's own casing (`logGroupNamePrefix`, `nextToken`), and
  `states:startExecution` without a Name gets a UUID, not "None".
"""

from __future__ import annotations

import datetime
import uuid
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

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
        state_task_service_aws_sdk,
    )

    overrides = dict(state_task_service.StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES)
    overrides["cloudwatchlogs"] = "logs"
    state_task_service.StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES = overrides  # type: ignore[misc]
    state_task_service_aws_sdk._SERVICE_ERROR_NAMES["cloudwatchlogs"] = "CloudWatchLogs"
    # moto's port of the engine leaves the base class's request and response
    # mapping empty; fill it in for the two integrations the definitions use
    # (the Lambda one keeps its own handling).
    import botocore.session
    from botocore import xform_name
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn,
    )

    mapped = (state_task_service_sfn.StateTaskServiceSfn, state_task_service_aws_sdk.StateTaskServiceAwsSdk)
    session = botocore.session.get_session()

    def operation_model(self: Any, service_name: str | None, action_name: str | None) -> Any:
        if not isinstance(self, mapped):
            return None
        service = session.get_service_model(self._get_boto_service_name(service_name))
        action = self._get_boto_service_action(action_name)
        for name in service.operation_names:
            if xform_name(name) == action:
                return service.operation_model(name)
        return None

    def normalise_parameters(
        self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        model = operation_model(self, boto_service_name, service_action_name)
        if model is None:
            return
        if model.input_shape is not None:
            self._to_boto_request(parameters, model.input_shape)
        if model.name == "StartExecution" and not parameters.get("name"):
            # AWS names an unnamed execution with a UUID; moto would name every one "None".
            parameters["name"] = str(uuid.uuid4())

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        model = operation_model(self, boto_service_name, service_action_name)
        if model is not None and model.output_shape is not None:
            self._from_boto_response(response, model.output_shape)

    state_task_service.StateTaskService._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    state_task_service.StateTaskService._normalise_response = normalise_response  # type: ignore[method-assign]
