"""The retention timer: purges expired rows of every registered table (shared/retention.py)."""

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(schedule="%RETENTION_SCHEDULE%", arg_name="timer", run_on_startup=False)
def retention(timer: func.TimerRequest) -> None:
    from shared.retention import purge_expired

    purge_expired()
