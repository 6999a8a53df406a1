"""HRMS: the timer that queues due syncs, the hrms-sync worker, the hrms-writeback worker, and the end of
what kept failing."""

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(schedule="%HRMS_SCHEDULE_CHECK%", arg_name="timer", run_on_startup=False)
def hrms_schedule(timer: func.TimerRequest) -> None:
    from shared.hrms.schedule import queue_due_runs

    queue_due_runs()


@bp.queue_trigger(arg_name="msg", queue_name="%HRMS_SYNC_QUEUE%", connection="AzureWebJobsStorage")
def hrms_sync(msg: func.QueueMessage) -> None:
    from shared.hrms.engine import sync_message

    sync_message(msg.get_body().decode("utf-8"))


@bp.queue_trigger(arg_name="msg", queue_name="%HRMS_SYNC_QUEUE%-poison", connection="AzureWebJobsStorage")
def hrms_sync_poison(msg: func.QueueMessage) -> None:
    from shared.hrms.engine import fail_poisoned

    fail_poisoned(msg.get_body().decode("utf-8"))


@bp.queue_trigger(arg_name="msg", queue_name="%HRMS_WRITEBACK_QUEUE%", connection="AzureWebJobsStorage")
def hrms_writeback(msg: func.QueueMessage) -> None:
    from shared.hrms.writeback import write_message

    write_message(msg.get_body().decode("utf-8"))


@bp.queue_trigger(arg_name="msg", queue_name="%HRMS_WRITEBACK_QUEUE%-poison", connection="AzureWebJobsStorage")
def hrms_writeback_poison(msg: func.QueueMessage) -> None:
    from shared.hrms.writeback import fail_poisoned

    fail_poisoned(msg.get_body().decode("utf-8"))
