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

AWS's limits, which moto's engine does not enforce (each switchable through
`POST /_emulator/config`, see emulator_config.py and RULES.md):

* 256 KiB (262,144 bytes of UTF-8) on a state's input (on entering it, and a
  Task's effective input after Parameters), output and a Task's result:
  `States.DataLimitExceeded`, which `States.ALL` does not catch or retry
  (`sfnPayloadLimitBytes`).
* A Distributed Map assembles its children's outputs into its result (even
  with `ResultPath`/`OutputPath` null) and fails with
  `States.DataLimitExceeded` above the limit unless a `ResultWriter` is set;
  the ResultWriter writes `manifest.json`, `SUCCEEDED_0.json` and
  `FAILED_0.json` under `Prefix/<map run id>/`.
* 25,000 events per execution history; a Distributed Map child execution has
  its own history. Event number 25,000 may only be ExecutionSucceeded; any
  other event fails the execution (`sfnHistoryLimit`).
* StopExecution is final: DescribeExecution says ABORTED as soon as it
  returns (moto changed the status only when the stopped program unwound),
  and an error raised while it unwinds (a task in flight that then fails)
  does not turn it FAILED (moto's set_error replaced the stopped state).
* Distributed Map tolerated failures: by default one failed child fails the
  Map Run with `States.ExceedToleratedFailureThreshold` and the children still
  running are aborted; with `ToleratedFailureCount`/`ToleratedFailurePercentage`
  the Map Run fails only when a threshold is exceeded (either one, when both).
"""

from __future__ import annotations

import datetime
import json
import threading
import uuid
from typing import Any

import emulator_config


def aws_timestamp(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def install() -> None:
    install_fixes()
    install_payload_limit()
    install_history_limit()
    install_final_stop()
    install_distributed_map()
    install_iterative_map_workers()


def install_iterative_map_workers() -> None:
    """moto's Map workers take their next item by calling themselves
    (`_eval_pool` recurses once per item), so a worker that runs more items
    than Python's recursion limit (about 1,000) dies with RecursionError and
    the Map waits for it forever. A Distributed Map with MaxConcurrency 1
    over 1,000 groups hung that way. AWS runs up to 10,000 children a Map Run
    at a time and any number of items; here each worker loops instead."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iterator import (
        distributed_iterator_worker,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker,
    )

    def looping(open_job_frame: str, release: str, inline: bool) -> Any:
        def eval_pool(self: Any, job: Any, worker_frame: Any) -> None:
            while True:
                if job is None:
                    getattr(self._env, release)(worker_frame)
                    return
                job_frame = getattr(worker_frame, open_job_frame)()
                self._eval_job(env=job_frame, job=job)
                getattr(worker_frame, release)(job_frame)
                if isinstance(job.job_output, Exception) or self.stopped():
                    getattr(self._env, release)(worker_frame)
                    self._job_pool.close_job(job)
                    return
                next_job = self._job_pool.next_job()
                if next_job is None:
                    if inline:
                        # The last item's events are the source of the states after the Map.
                        worker_frame.event_history_context.source_event_id = (
                            job_frame.event_history_context.last_published_event_id
                        )
                    getattr(self._env, release)(worker_frame)
                    self._job_pool.close_job(job)
                    return
                self._job_pool.close_job(job)
                job = next_job

        return eval_pool

    iteration_worker.IterationWorker._eval_pool = looping("open_inner_frame", "close_frame", True)  # type: ignore[method-assign]
    distributed_iterator_worker.DistributedIteratorWorker._eval_pool = looping("open_frame", "delete_frame", False)  # type: ignore[method-assign]
    distributed_item_processor_worker.DistributedItemProcessorWorker._eval_pool = looping(  # type: ignore[method-assign]
        "open_inner_frame", "delete_frame", False
    )


def install_fixes() -> None:
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

    # An inline Map iteration that fails with a `States.*` error (a child's
    # States.DataLimitExceeded, States.Timeout...) makes moto raise ValueError
    # ("Custom Error Names MUST NOT begin with the prefix 'States.'"), which
    # turns into States.Runtime; keep the error's own name.
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker

    def error_name_of(error_name: str | None) -> Any:
        if error_name is not None and error_name.startswith("States."):
            try:
                return StatesErrorName.from_name(error_name)
            except Exception:  # noqa: BLE001 - an unknown States.* name stays as moto had it
                pass
        return CustomErrorName(error_name=error_name)

    iteration_worker.CustomErrorName = error_name_of  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# 256 KiB payloads
# ---------------------------------------------------------------------------

DATA_LIMIT = "States.DataLimitExceeded"


def payload_size(value: Any) -> int:
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    text = value if isinstance(value, str) else to_json_str(value)
    return len(text.encode("utf-8"))


def within_payload_limit(value: Any) -> bool:
    """AWS: 256 KiB of data as a UTF-8 encoded string per state input/output and task result."""
    return payload_size(value) <= int(emulator_config.get("sfn_payload_limit_bytes"))


def data_limit_failure(env: Any, cause: str, event_type: Any = None) -> Exception:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    typ = StatesErrorNameType.StatesStatesDataLimitExceeded
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=typ),
            event_type=event_type or HistoryEventType.TaskFailed,
            event_details=EventDetails(
                executionFailedEventDetails=ExecutionFailedEventDetails(error=typ.to_name(), cause=cause)
            ),
        )
    )


def install_payload_limit() -> None:
    from moto.stepfunctions.parser import quotas
    from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
    from moto.stepfunctions.parser.asl.component.state import state as state_module
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    # The configurable limit, and <= (a payload of exactly 256 KiB is allowed).
    for module in (quotas, state_module, state_task_lambda, state_task_service):
        module.is_within_size_quota = within_payload_limit  # type: ignore[attr-defined]

    # A state's input when it is entered (execution input, a Map child's input).
    common = state_module.CommonStateField
    original_eval_body = common._eval_body

    def eval_body(self: Any, env: Any) -> None:
        if not within_payload_limit(env.states.get_input()):
            raise data_limit_failure(
                env,
                f"The state/task '{self.name}' received an input with a size exceeding the maximum number "
                "of bytes service limit.",
            )
        original_eval_body(self, env)

    common._eval_body = eval_body  # type: ignore[method-assign]

    # A Lambda Task's payload after Parameters.
    lam = state_task_lambda.StateTaskLambda
    original_lambda_parameters = lam._eval_parameters

    def lambda_parameters(self: Any, env: Any) -> dict:
        parameters = original_lambda_parameters(self, env)
        if not within_payload_limit(parameters.get("Payload")):
            raise data_limit_failure(
                env,
                f"The state/task '{self.resource.resource_arn}' input after Parameters has a size exceeding "
                "the maximum number of bytes service limit.",
            )
        return parameters

    lam._eval_parameters = lambda_parameters  # type: ignore[method-assign]

    # A service integration's parameters.
    svc = state_task_service.StateTaskService
    original_before = svc._before_eval_execution

    def before_eval_execution(self: Any, env: Any, resource_runtime_part: Any, raw_parameters: dict, state_credentials: Any) -> None:
        if not within_payload_limit(raw_parameters):
            raise data_limit_failure(
                env,
                f"The state/task '{self._get_sfn_resource()}' input after Parameters has a size exceeding "
                "the maximum number of bytes service limit.",
            )
        original_before(self, env, resource_runtime_part, raw_parameters, state_credentials)

    svc._before_eval_execution = before_eval_execution  # type: ignore[method-assign]

    # States.ALL neither catches nor retries States.DataLimitExceeded (AWS: a
    # terminal error); naming it explicitly in ErrorEquals still matches.
    decl = error_equals_decl.ErrorEqualsDecl
    original_equals = decl._eval_body

    def equals_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        if decl._STATE_ALL_ERROR in self.error_names and getattr(error_name, "error_name", None) == DATA_LIMIT:
            env.stack.pop()
            env.stack.append(False)
            return
        original_equals(self, env)

    decl._eval_body = equals_body  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# 25,000 history events per execution
# ---------------------------------------------------------------------------

HISTORY_ERROR = "States.Runtime"


def install_history_limit() -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.eval import environment
    from moto.stepfunctions.parser.asl.eval.event import event_manager

    terminal = {
        HistoryEventType.ExecutionSucceeded,
        HistoryEventType.ExecutionFailed,
        HistoryEventType.ExecutionAborted,
        HistoryEventType.ExecutionTimedOut,
    }
    manager_cls = event_manager.EventManager
    original_add = manager_cls.add_event

    def add_event(
        self: Any,
        context: Any,
        event_type: Any,
        event_details: Any = None,
        timestamp: Any = None,
        update_source_event_id: bool = True,
    ) -> int:
        """AWS: when an execution has 24,999 events, event 25,000 must be
        ExecutionSucceeded; any other event fails the execution instead."""
        limit = emulator_config.get("sfn_history_limit")
        overflow = False
        with self._mutex:
            count = len(self._history_event_list)
            if event_type not in terminal:
                if getattr(self, "cwl_overflowed", False):
                    return count
                if limit is not None and count >= int(limit) - 1:
                    self.cwl_overflowed = True
                    overflow = True
        if overflow:
            owner = getattr(self, "cwl_owner", None)
            if owner is not None:
                details = ExecutionFailedEventDetails(
                    error=HISTORY_ERROR,
                    cause=f"The execution reached the maximum number of events in its history ({limit}).",
                )
                owner.cwl_history_error = details
                owner.set_error(details)
            return count
        return original_add(self, context, event_type, event_details, timestamp, update_source_event_id)

    manager_cls.add_event = add_event  # type: ignore[method-assign]

    env_cls = environment.Environment
    original_init = env_cls.__init__

    def env_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.event_manager.cwl_owner = self

    env_cls.__init__ = env_init  # type: ignore[method-assign]

    original_set_error = env_cls.set_error

    def set_error(self: Any, error: Any) -> None:
        # The history failure is final: a later error raised while the
        # execution unwinds does not replace it.
        locked = getattr(self, "cwl_history_error", None)
        original_set_error(self, locked if locked is not None else error)

    env_cls.set_error = set_error  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# StopExecution is final
# ---------------------------------------------------------------------------


def install_final_stop() -> None:
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.asl.eval import environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.backend import execution as backend_execution

    env_cls = environment.Environment

    def keep_stopped(name: str) -> None:
        original = getattr(env_cls, name)

        def final(self: Any, *args: Any, **kwargs: Any) -> None:
            # Under the lock set_stop takes, so a stop cannot slip in between.
            with self._state_mutex:
                if isinstance(self._program_state, ProgramStopped):
                    return
                original(self, *args, **kwargs)

        setattr(env_cls, name, final)

    keep_stopped("set_error")
    keep_stopped("set_timed_out")

    execution_cls = backend_execution.Execution
    original_stop = execution_cls.stop

    def stop(self: Any, stop_date: Any, error: Any, cause: Any) -> None:
        original_stop(self, stop_date=stop_date, error=error, cause=cause)
        worker = self.exec_worker
        env = getattr(worker, "env", None) if worker is not None else None
        if (
            env is not None
            and isinstance(env.program_state(), ProgramStopped)
            and self.exec_status == ExecutionStatus.RUNNING
        ):
            self.exec_status = ExecutionStatus.ABORTED
            self.stop_date = stop_date

    execution_cls.stop = stop  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# Distributed Map: tolerated failures, assembled result, ResultWriter, child histories
# ---------------------------------------------------------------------------


class MapRun:
    """What the emulator tracks of one Map Run."""

    def __init__(self, total: int, count: int, percentage: float, count_set: bool, pct_set: bool) -> None:
        self.lock = threading.Lock()
        self.total = total
        self.count = count
        self.percentage = percentage
        self.count_set = count_set
        self.pct_set = pct_set
        self.failed = 0
        self.breached = False
        self.active: set[Any] = set()
        self.results: list[dict[str, Any]] = []
        self.job_pool: Any = None
        self.parent_env: Any = None
        self.child_arn_base = ""
        self.child_state_machine_arn = ""

    def exceeded(self) -> bool:
        """AWS: the Map Run fails when the failed (or timed out) items exceed
        ToleratedFailureCount, or their share of all items exceeds
        ToleratedFailurePercentage; either one when both are set; with
        neither, any failure (the default tolerance is 0)."""
        if not self.count_set and not self.pct_set:
            return self.failed > 0
        if self.count_set and self.failed > self.count:
            return True
        if self.pct_set and self.total and self.failed * 100.0 / self.total > self.percentage:
            return True
        return False


def aws_now() -> str:
    return aws_timestamp(datetime.datetime.now(tz=datetime.timezone.utc))


def install_distributed_map() -> None:
    from moto.stepfunctions.parser.api import (
        ExecutionFailedEventDetails,
        ExecutionStartedEventDetails,
        HistoryEventExecutionDataDetails,
        HistoryEventType,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map import state_map as state_map_module
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as dic,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as dipw,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job import JobPool
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.max_concurrency import (
        DEFAULT_MAX_CONCURRENCY_VALUE,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
        ToleratedFailureCountDecl,
        ToleratedFailurePercentageDecl,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped, ProgramTimedOut
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    state_map = state_map_module.StateMap
    original_from_props = state_map.from_state_props

    def from_state_props(self: Any, state_props: Any) -> None:
        original_from_props(self, state_props)
        self.cwl_count_set = state_props.get(ToleratedFailureCountDecl) is not None
        self.cwl_pct_set = state_props.get(ToleratedFailurePercentageDecl) is not None

    state_map.from_state_props = from_state_props  # type: ignore[method-assign]

    original_map_execution = state_map._eval_execution

    def map_execution(self: Any, env: Any) -> None:
        env.cwl_map_ctx = {
            "has_writer": self.result_writer is not None,
            "count_set": getattr(self, "cwl_count_set", False),
            "pct_set": getattr(self, "cwl_pct_set", False),
            "label": self.label.label if self.label else self.name,
        }
        original_map_execution(self, env)

    state_map._eval_execution = map_execution  # type: ignore[method-assign]

    def threshold_failure(env: Any, run: MapRun) -> Exception:
        typ = StatesErrorNameType.StatesExceedToleratedFailureThreshold
        return FailureEventException(
            failure_event=FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=typ),
                event_type=HistoryEventType.MapRunFailed,
                event_details=EventDetails(
                    executionFailedEventDetails=ExecutionFailedEventDetails(
                        error=typ.to_name(),
                        cause=f"The specified tolerated failure threshold was exceeded: {run.failed} of "
                        f"{run.total} items failed.",
                    )
                ),
            )
        )

    def map_run(self: Any, env: Any, eval_input: Any) -> None:
        input_items = env.stack.pop()
        program = self._get_iteration_program()
        job_pool = JobPool(job_program=program, job_inputs=input_items)
        ctx = getattr(env, "cwl_map_ctx", None) or {}
        record = eval_input.map_run_record
        run = MapRun(
            total=len(input_items),
            count=int(eval_input.tolerated_failure_count or 0),
            percentage=float(eval_input.tolerated_failure_percentage or 0.0),
            count_set=bool(ctx.get("count_set")),
            pct_set=bool(ctx.get("pct_set")),
        )
        run.job_pool = job_pool
        run.parent_env = env
        sm_arn = env.states.context_object.context_object_data["StateMachine"]["Id"]
        label = ctx.get("label") or "Map"
        run.child_state_machine_arn = f"{sm_arn}/{label}"
        run.child_arn_base = sm_arn.replace(":stateMachine:", ":execution:", 1) + f"/{label}"
        record.cwl_run = run

        max_concurrency = record.max_concurrency
        workers = len(input_items) if max_concurrency == DEFAULT_MAX_CONCURRENCY_VALUE else max_concurrency
        for _ in range(workers):
            self._launch_worker(env=env, eval_input=eval_input, job_pool=job_pool)
        job_pool.await_jobs()
        worker_exception = job_pool.get_worker_exception()
        if worker_exception is not None:
            raise worker_exception
        outputs = [job.job_output for job in job_pool.get_closed_jobs()]
        if not ctx.get("has_writer") and not within_payload_limit(outputs):
            raise data_limit_failure(
                env,
                f"The state/task '{label}' returned a result with a size exceeding the maximum number of bytes "
                "service limit: a Distributed Map without a ResultWriter assembles its children's outputs.",
                HistoryEventType.MapRunFailed,
            )
        env.stack.append(outputs)

    dic.DistributedIterationComponent._map_run = map_run  # type: ignore[method-assign]

    def child_failed(run: MapRun) -> None:
        with run.lock:
            run.failed += 1
            if run.breached or not run.exceeded():
                return
            run.breached = True
            active = list(run.active)
        failure = threshold_failure(run.parent_env, run)
        pool = run.job_pool
        with pool._mutex:
            if pool._worker_exception is None:
                pool._worker_exception = failure
            pool._notify_on_termination()
        # AWS aborts the children still running when the Map Run fails.
        stop = datetime.datetime.now(tz=datetime.timezone.utc)
        for frame in active:
            frame.set_stop(stop_date=stop, cause="The Map Run failed.", error=HistoryEventType.MapRunFailed)

    def eval_job(self: Any, env: Any, job: Any) -> None:
        record = self._map_run_record
        run: MapRun | None = getattr(record, "cwl_run", None)
        record.item_counter.total.count()
        record.execution_counter.total.count()
        name = str(uuid.uuid4())
        result: dict[str, Any] = {
            "ExecutionArn": f"{run.child_arn_base}:{name}" if run else name,
            "Input": to_json_str(job.job_input),
            "InputDetails": {"Included": True},
            "Name": name,
            "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE",
            "StartDate": aws_now(),
            "StateMachineArn": run.child_state_machine_arn if run else "",
        }
        # A child workflow execution has its own history (and history limit).
        manager = EventManager()
        manager.cwl_owner = env
        env.event_manager = manager
        manager.add_event(
            context=env.event_history_context,
            event_type=HistoryEventType.ExecutionStarted,
            event_details=EventDetails(
                executionStartedEventDetails=ExecutionStartedEventDetails(
                    input=to_json_str(job.job_input),
                    inputDetails=HistoryEventExecutionDataDetails(truncated=False),
                )
            ),
            update_source_event_id=False,
        )
        status = "FAILED"
        error: str | None = None
        cause: str | None = None
        output: Any = None
        if run is not None:
            with run.lock:
                aborted_before_start = run.breached
                if not aborted_before_start:
                    run.active.add(env)
        else:
            aborted_before_start = False
        try:
            if aborted_before_start:
                status = "ABORTED"
            else:
                record.item_counter.running.count()
                record.execution_counter.running.count()
                env.states.context_object.context_object_data["Map"] = MapData(
                    Item=ItemData(Index=job.job_index, Value=job.job_input)
                )
                env.states.reset(job.job_input)
                env.stack.append(env.states.get_input())
                self._eval_input(env_frame=env)
                job.job_program.eval(env)
                end = env.program_state()
                if isinstance(end, ProgramError):
                    error = (end.error or {}).get("error")
                    cause = (end.error or {}).get("cause")
                elif isinstance(end, ProgramStopped):
                    status = "ABORTED"
                elif isinstance(end, ProgramTimedOut):
                    status = "TIMED_OUT"
                    error = "States.Timeout"
                else:
                    status = "SUCCEEDED"
                    output = env.states.get_input()
        except FailureEventException as exc:
            pair = exc.extract_error_cause_pair() or (None, None)
            error, cause = pair
        except Exception as exc:  # noqa: BLE001 - a child's crash is its failure
            error, cause = "States.Runtime", f"{type(exc).__name__}({exc})"
        finally:
            if run is not None:
                with run.lock:
                    run.active.discard(env)
            if not aborted_before_start:
                record.item_counter.running.offset(-1)
                record.execution_counter.running.offset(-1)
            result["Status"] = status
            result["StopDate"] = aws_now()
            if status == "SUCCEEDED":
                record.item_counter.succeeded.count()
                record.item_counter.results_written.count()
                record.execution_counter.succeeded.count()
                record.execution_counter.results_written.count()
                result["Output"] = to_json_str(output)
                result["OutputDetails"] = {"Included": True}
                manager.add_event(
                    context=env.event_history_context,
                    event_type=HistoryEventType.ExecutionSucceeded,
                    update_source_event_id=False,
                )
                job.job_output = output
            else:
                if status == "ABORTED":
                    record.item_counter.aborted.count()
                    record.execution_counter.aborted.count()
                    event = HistoryEventType.ExecutionAborted
                elif status == "TIMED_OUT":
                    record.item_counter.timed_out.count()
                    record.execution_counter.timed_out.count()
                    event = HistoryEventType.ExecutionTimedOut
                else:
                    record.item_counter.failed.count()
                    record.execution_counter.failed.count()
                    event = HistoryEventType.ExecutionFailed
                if error is not None:
                    result["Error"] = error
                if cause is not None:
                    result["Cause"] = cause
                manager.add_event(context=env.event_history_context, event_type=event, update_source_event_id=False)
                # A failed child contributes its execution record (AWS: unchanged, as with Transformation NONE).
                job.job_output = {k: v for k, v in result.items()}
                if run is not None and status in ("FAILED", "TIMED_OUT"):
                    child_failed(run)
            if run is not None:
                with run.lock:
                    run.results.append({"index": job.job_index, **result})

    dipw.DistributedItemProcessorWorker._eval_job = eval_job  # type: ignore[method-assign]

    s3_eval = resource_eval_s3.ResourceEvalS3

    def handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        """ResultWriter as AWS documents it: Prefix/<map run id>/manifest.json,
        SUCCEEDED_0.json and FAILED_0.json (JSON arrays of the children's
        execution records); the Map's result is the manifest's location."""
        parameters = env.stack.pop()
        env.stack.pop()  # the assembled outputs, not kept with a ResultWriter
        s3_client = s3_eval._get_s3_client(
            resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
        )
        record = env.map_run_record_pool_manager.get_all().pop()
        run: MapRun | None = getattr(record, "cwl_run", None)
        map_run_id = record.map_run_arn.split(":")[-1]
        prefix = parameters.get("Prefix", "") or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        bucket = parameters["Bucket"]
        base = f"{prefix}{map_run_id}/"
        results = sorted(run.results, key=lambda r: r["index"]) if run else []
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        groups = {
            "SUCCEEDED": [r for r in results if r["Status"] == "SUCCEEDED"],
            "FAILED": [r for r in results if r["Status"] != "SUCCEEDED"],
        }
        for status, records in groups.items():
            if not records:
                continue
            body = json.dumps([{k: v for k, v in r.items() if k != "index"} for r in records]).encode("utf-8")
            key = f"{base}{status}_0.json"
            s3_client.put_object(Bucket=bucket, Key=key, Body=body)
            files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": record.map_run_arn, "ResultFiles": files}
        key = f"{base}manifest.json"
        s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest, indent=2).encode("utf-8"))
        env.stack.append(
            {"MapRunArn": record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}}
        )

    s3_eval._handle_put_object = staticmethod(handle_put_object)  # type: ignore[assignment]
