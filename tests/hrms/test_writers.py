"""The write-back writers (``Writer`` in shared/hrms/connectors/base.py) against their stand-ins: BambooHR training
records (bamboohr.py, local/bamboohr.py), Personio custom attributes (personio.py, local/personio.py) and HiBob
custom table entries (hibob.py, local/hibob.py).

What every writer must do, whatever its HRMS: accept a real target and name what is missing, write the record on
the wire as the HRMS documents it, find an earlier write again after a crash (a new writer) so the worker's
``find_written(...) or write(...)`` never writes twice, refuse for good (WriteRefused) what can never succeed, and
keep everything else retryable (a 503 on the write, throttling that outlasts the retries) without writing.
Retry-After is 0 in the faults: nothing here sleeps."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from local.bamboohr import BambooHRStandIn
from local.hibob import HiBobStandIn
from local.hrms_people import Workforce
from local.hrms_standin import Answer
from local.personio import PersonioStandIn
from shared import config
from shared.hrms.connectors import bamboohr, hibob, personio
from shared.hrms.connectors.base import TOKENS, ConnectorError, ConnectorSettings, Result, Writer, WriteRefused
from shared.hrms.connectors.personio import PersonioConnector
from shared.http import PACER, RetryPolicy

COMPLETION = Result("res-1", "completion", "Coaching programme: module 1", "2026-03-12", hours=1.5, credits=2.0)
ASSESSMENT = Result("res-2", "assessment", "Feedback assessment", "2026-03-14", score=90.0, hours=0.5)
OTHER = Result("res-3", "assessment", "Delegation assessment", "2026-04-02", score=72.5)

PERSONIO_TARGET = {"title": "dynamic_2001", "completed_on": "dynamic_2002", "score": "dynamic_2003"}
HIBOB_TARGET = {"table_id": "learning", "columns": {
    "title": "column_title", "completed_on": "column_date", "score": "column_score", "hours": "column_hours",
    "marker": "column_marker"}}


@pytest.fixture(autouse=True)
def loopback(isolated_settings, monkeypatch) -> Iterator[None]:
    """The outbound client may reach the stand-ins over http; no token or pacing crosses tests; HiBob's retries
    wait milliseconds (its policy waits at least a second when no Retry-After comes)."""
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    config.reset()
    TOKENS.forget()
    PACER.reset()
    monkeypatch.setattr(hibob, "RETRY", RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02))
    yield
    TOKENS.forget()
    PACER.reset()
    config.reset()


# --- the stand-ins, recording what the writers send ------------------------------------------------------------


class Recording:
    """Mixed into a stand-in: the JSON body of every write request it is sent (faulted ones too), auth excluded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, str, Any]] = []

    def _api_answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        if method in ("POST", "PATCH") and "/auth" not in target:
            self.sent.append((method, target, json.loads(body)))
        return super()._api_answer(method, target, headers, body)


class RecordingBambooHR(Recording, BambooHRStandIn):
    pass


class RecordingPersonio(Recording, PersonioStandIn):
    pass


class RecordingHiBob(Recording, HiBobStandIn):
    pass


@dataclass
class Hrms:
    """One HRMS under test: its running stand-in, the writer's settings and target, an employee, and where the
    writer's create (POST) or update (PATCH) goes."""

    standin: Any  # a Recording stand-in
    settings: ConnectorSettings
    target: dict[str, Any]
    employee: str
    make: Callable[[ConnectorSettings], Writer]
    write_method: str
    write_path: str
    stored: Callable[[], Any]  # what the HRMS holds for the employee, as the stand-in reads it back

    def writer(self) -> Writer:
        return self.make(self.settings)

    def write_requests(self) -> list[tuple[str, str, int]]:
        return [entry for entry in self.standin.requests_log
                if entry[0] == self.write_method and entry[1].split("?")[0] == self.write_path]

    def writes_made(self) -> int:
        return sum(1 for entry in self.write_requests() if 200 <= entry[2] < 300)


def bamboohr_hrms(standin: RecordingBambooHR, employee: str = "1003") -> Hrms:
    settings = ConnectorSettings(standin.base_url, json.dumps({"api_key": standin.api_key}), pace=False)
    return Hrms(standin, settings, {"training_type_id": 12}, employee, bamboohr.writer, "POST",
                f"/api/v1/training/record/employee/{employee}", lambda: standin.training_records(employee))


def personio_hrms(standin: RecordingPersonio, employee: str = "1003") -> Hrms:
    credential = json.dumps({"client_id": standin.client_id, "client_secret": standin.client_secret})
    settings = ConnectorSettings(standin.base_url, credential, pace=False)
    return Hrms(standin, settings, dict(PERSONIO_TARGET), employee, personio.writer, "PATCH",
                f"/v1/company/employees/{employee}", lambda: standin.written_attributes(employee))


def hibob_hrms(standin: RecordingHiBob, employee: str = "1003") -> Hrms:
    settings = ConnectorSettings(standin.base_url, standin.credential, pace=False)
    return Hrms(standin, settings, json.loads(json.dumps(HIBOB_TARGET)), employee, hibob.writer, "POST",
                f"/v1/people/custom-tables/{employee}/learning", lambda: standin.table_entries(employee))


@pytest.fixture
def bamboo() -> Iterator[Hrms]:
    with RecordingBambooHR(Workforce(10), api_key="writer-test-key") as standin:
        yield bamboohr_hrms(standin)


@pytest.fixture
def persona() -> Iterator[Hrms]:
    with RecordingPersonio(Workforce(10)) as standin:
        yield personio_hrms(standin)


@pytest.fixture
def bob() -> Iterator[Hrms]:
    with RecordingHiBob(Workforce(10)) as standin:
        yield hibob_hrms(standin)


@pytest.fixture(params=["bamboohr", "personio", "hibob"])
def hrms(request) -> Hrms:
    return request.getfixturevalue({"bamboohr": "bamboo", "personio": "persona", "hibob": "bob"}[request.param])


def deliver(hrms: Hrms, result: Result) -> str:
    """What the hrms-writeback worker does with one message: a fresh writer, an earlier write found again or a
    new one made, the writer closed."""
    writer = hrms.writer()
    try:
        return writer.find_written(hrms.employee, result, hrms.target) or writer.write(hrms.employee, result,
                                                                                        hrms.target)
    finally:
        writer.close()


def nothing_stored(hrms: Hrms) -> bool:
    return not hrms.stored()


# --- every writer ------------------------------------------------------------------------------------------------


def test_check_target_accepts_a_target_the_hrms_has(hrms):
    writer = hrms.writer()
    try:
        assert writer.check_target(hrms.target) == hrms.target
    finally:
        writer.close()


def test_a_write_is_found_again_after_a_crash_and_never_made_twice(hrms):
    writer = hrms.writer()
    assert writer.find_written(hrms.employee, ASSESSMENT, hrms.target) is None
    record_id = writer.write(hrms.employee, ASSESSMENT, hrms.target)
    writer.close()  # the worker "crashes" here: the record id never reaches our database
    assert record_id
    assert hrms.writes_made() == 1
    assert deliver(hrms, ASSESSMENT) == record_id  # the redelivered message finds it: no second write
    assert deliver(hrms, ASSESSMENT) == record_id
    assert hrms.writes_made() == 1
    assert hrms.stored()


def test_another_result_is_not_mistaken_for_an_earlier_write(hrms):
    first = deliver(hrms, ASSESSMENT)
    writer = hrms.writer()
    try:
        assert writer.find_written(hrms.employee, OTHER, hrms.target) is None
    finally:
        writer.close()
    deliver(hrms, OTHER)
    assert hrms.writes_made() == 2
    assert first


def test_a_503_on_the_write_stays_retryable_and_writes_nothing(hrms):
    hrms.standin.fail_next(503, retry_after=0, path_contains=hrms.write_path)
    writer = hrms.writer()
    try:
        with pytest.raises(ConnectorError) as caught:
            writer.write(hrms.employee, ASSESSMENT, hrms.target)
    finally:
        writer.close()
    assert caught.value.retryable
    assert not isinstance(caught.value, WriteRefused)
    assert nothing_stored(hrms)
    assert [entry[2] for entry in hrms.write_requests()] == [503]  # a create is not repeated on a 5xx
    record_id = deliver(hrms, ASSESSMENT)  # the host retries the message: written once
    assert record_id
    assert hrms.writes_made() == 1


def test_a_throttled_write_is_retried_and_made_once(hrms):
    hrms.standin.fail_next(429, retry_after=0, path_contains=hrms.write_path)
    writer = hrms.writer()
    try:
        record_id = writer.write(hrms.employee, ASSESSMENT, hrms.target)  # a 429 is retried, a create too
    finally:
        writer.close()
    assert record_id
    created = 201 if hrms.write_path.startswith("/api/") else 200  # BambooHR answers 201
    assert [entry[2] for entry in hrms.write_requests()] == [429, created]
    assert hrms.writes_made() == 1
    assert deliver(hrms, ASSESSMENT) == record_id


def test_throttling_that_outlasts_the_retries_is_retryable_not_a_refusal(hrms):
    hrms.standin.fail_next(429, retry_after=0, count=20, path_contains=hrms.write_path)
    writer = hrms.writer()
    try:
        with pytest.raises(ConnectorError) as caught:
            writer.write(hrms.employee, ASSESSMENT, hrms.target)
    finally:
        writer.close()
    assert caught.value.retryable
    assert not isinstance(caught.value, WriteRefused)
    assert nothing_stored(hrms)
    assert hrms.writes_made() == 0


def test_a_failed_look_up_is_retried_like_any_read(hrms):
    hrms.standin.fail_next(503, retry_after=0, count=2, path_contains=hrms.write_path)
    writer = hrms.writer()
    try:
        assert writer.find_written(hrms.employee, ASSESSMENT, hrms.target) is None
    finally:
        writer.close()
    statuses = [entry[2] for entry in hrms.standin.requests_log if entry[0] == "GET"]
    assert statuses[-3:] == [503, 503, 200]


def test_an_unknown_employee_is_refused_for_good(hrms):
    writer = hrms.writer()
    try:
        with pytest.raises(WriteRefused):
            writer.find_written("99999", ASSESSMENT, hrms.target)
        with pytest.raises(WriteRefused) as caught:
            writer.write("99999", ASSESSMENT, hrms.target)
    finally:
        writer.close()
    assert not caught.value.retryable
    assert "99999" in str(caught.value)
    writes = [entry for entry in hrms.standin.requests_log if entry[0] == hrms.write_method and "/auth" not in entry[1]]
    assert [status for _, _, status in writes] == [404]  # asked once, refused, nothing written anywhere


# --- BambooHR: training records ----------------------------------------------------------------------------------


def test_bamboohr_check_target_names_the_training_types_it_has(bamboo):
    writer = bamboo.writer()
    try:
        assert writer.check_target({"training_type_id": "13"}) == {"training_type_id": 13}
        with pytest.raises(ConnectorError) as caught:
            writer.check_target({"training_type_id": 99})
        assert not caught.value.retryable
        assert "no training type 99" in str(caught.value)
        assert "12 (Coaching programme)" in str(caught.value)
        assert "13 (Assessment)" in str(caught.value)
        for malformed in ({}, {"training_type_id": "twelve"}, {"training_type_id": True}):
            with pytest.raises(ConnectorError, match="training_type_id"):
                writer.check_target(malformed)
    finally:
        writer.close()


def test_bamboohr_posts_the_documented_record_and_returns_its_id(bamboo):
    writer = bamboo.writer()
    try:
        assert writer.find_written(bamboo.employee, COMPLETION, bamboo.target) is None  # BambooHR answers []
        record_id = writer.write(bamboo.employee, COMPLETION, bamboo.target)
    finally:
        writer.close()
    [(method, path, body)] = bamboo.standin.sent
    assert (method, path) == ("POST", bamboo.write_path)
    assert body == {"completed": "2026-03-12", "type": 12, "notes": "Coaching programme: module 1 [ec:res-1]",
                    "hours": 1.5, "credits": 2.0}
    assert type(body["type"]) is int
    [record] = bamboo.stored()
    assert record_id == str(record["id"])
    assert record | {"id": None} == {"id": None, "employeeId": bamboo.employee, "completed": "2026-03-12",
                                     "notes": "Coaching programme: module 1 [ec:res-1]", "instructor": None,
                                     "credits": "2", "hours": "1.5", "cost": None, "type": "12"}


def test_bamboohr_notes_carry_the_score_and_records_of_other_types_do_not_match(bamboo):
    record_id = deliver(bamboo, ASSESSMENT)
    assert bamboo.stored()[0]["notes"] == "Feedback assessment (score 90) [ec:res-2]"
    writer = bamboo.writer()
    try:
        assert writer.find_written(bamboo.employee, ASSESSMENT, {"training_type_id": 13}) is None
        assert writer.find_written(bamboo.employee, ASSESSMENT, bamboo.target) == record_id
    finally:
        writer.close()


def test_bamboohr_a_training_type_gone_since_the_check_is_refused_for_good(bamboo):
    writer = bamboo.writer()
    try:
        with pytest.raises(WriteRefused) as caught:
            writer.write(bamboo.employee, COMPLETION, {"training_type_id": 77})
    finally:
        writer.close()
    assert "400" in str(caught.value)
    assert "not an existing training type" in str(caught.value)
    assert nothing_stored(bamboo)


# --- Personio: custom attributes ---------------------------------------------------------------------------------


def test_personio_check_target_names_every_attribute_it_cannot_write(persona):
    writer = persona.writer()
    try:
        with pytest.raises(ConnectorError) as caught:
            writer.check_target({"title": "first_name", "grade": "dynamic_2001"})
        assert "unknown fields: grade" in str(caught.value)
        assert "not custom attributes: first_name" in str(caught.value)
        persona.standin.set_readable(["first_name", "dynamic_2001", "dynamic_2002"])  # 2003 not whitelisted
        with pytest.raises(ConnectorError) as caught:
            writer.check_target({**PERSONIO_TARGET, "hours": "dynamic_4242"})
        assert not caught.value.retryable
        assert str(caught.value).endswith("the credential may use: dynamic_2003, dynamic_4242")
    finally:
        writer.close()


def test_personio_patches_the_custom_attributes_and_they_read_back(persona):
    record_id = deliver(persona, ASSESSMENT)
    assert record_id == persona.employee  # the employee's attributes are the record
    [(method, path, body)] = persona.standin.sent
    assert (method, path) == ("PATCH", persona.write_path)
    assert body == {"employee": {"custom_attributes": {
        "dynamic_2001": "Feedback assessment", "dynamic_2002": "2026-03-14", "dynamic_2003": 90.0}}}
    assert persona.stored() == {"dynamic_2001": "Feedback assessment", "dynamic_2002": "2026-03-14",
                                "dynamic_2003": 90}
    with httpx.Client(base_url=persona.standin.base_url, timeout=10) as http:
        token = http.post("/v1/auth", json={"client_id": persona.standin.client_id,
                                            "client_secret": persona.standin.client_secret}).json()["data"]["token"]
        attributes = http.get(persona.write_path, headers={"Authorization": f"Bearer {token}"}).json()["data"][
            "attributes"]
    assert attributes["dynamic_2001"] == {"label": "Last programme completed", "value": "Feedback assessment",
                                          "type": "standard", "universal_id": None}
    assert attributes["dynamic_2003"]["value"] == 90  # a decimal written as 90.0 is served as 90: still found
    connector = PersonioConnector(persona.settings, sleep=lambda seconds: None)
    try:
        employee = next(employee for employee in connector.page(None).employees
                        if employee.hrms_id == persona.employee)
    finally:
        connector.close()
    assert employee.attributes["dynamic_2001"] == "Feedback assessment"  # the read sync sees the write too
    assert employee.attributes["dynamic_2002"] == "2026-03-14"


def test_personio_a_later_result_overwrites_the_attributes(persona):
    deliver(persona, ASSESSMENT)
    deliver(persona, OTHER)
    assert persona.stored()["dynamic_2001"] == "Delegation assessment"
    assert persona.stored()["dynamic_2003"] == 72.5
    writer = persona.writer()
    try:
        assert writer.find_written(persona.employee, ASSESSMENT, persona.target) is None
        assert writer.find_written(persona.employee, OTHER, persona.target) == persona.employee
    finally:
        writer.close()


def test_personio_an_attribute_it_will_not_write_is_refused_for_good(persona):
    persona.standin.set_readable(["first_name", "dynamic_2001", "dynamic_2002"])  # unlisted since the check
    writer = persona.writer()
    try:
        with pytest.raises(WriteRefused) as caught:
            writer.write(persona.employee, ASSESSMENT, persona.target)
        assert "422" in str(caught.value)
        assert "dynamic_2003" in str(caught.value)
        with pytest.raises(WriteRefused, match="422"):  # a value the attribute's type refuses
            writer.write(persona.employee, ASSESSMENT, {"title": "dynamic_2002"})
    finally:
        writer.close()
    assert nothing_stored(persona)  # all or nothing: not even the whitelisted attributes


# --- HiBob: custom table entries ---------------------------------------------------------------------------------


def test_hibob_check_target_names_the_missing_table_or_columns(bob):
    writer = bob.writer()
    try:
        with pytest.raises(ConnectorError, match="no custom table 'trainings'"):
            writer.check_target({**HIBOB_TARGET, "table_id": "trainings"})
        columns = {**HIBOB_TARGET["columns"], "score": "column_grade", "credits": "column_credits"}
        with pytest.raises(ConnectorError) as caught:
            writer.check_target({"table_id": "learning", "columns": columns})
        assert not caught.value.retryable
        assert str(caught.value).endswith("has no column column_credits, column_grade")
        with pytest.raises(ConnectorError, match="marker"):
            writer.check_target({"table_id": "learning", "columns": {"title": "column_title"}})
    finally:
        writer.close()


def test_hibob_posts_an_entry_and_returns_its_id(bob):
    record_id = deliver(bob, ASSESSMENT)
    [(method, path, body)] = bob.standin.sent
    assert (method, path) == ("POST", bob.write_path)
    assert body == {"values": {"column_title": "Feedback assessment", "column_date": "2026-03-14",
                               "column_score": 90.0, "column_hours": 0.5, "column_marker": "[ec:res-2]"}}
    [entry] = bob.stored()
    assert record_id == str(entry["id"])
    assert entry["column_marker"] == "[ec:res-2]"


def test_hibob_an_answer_without_a_body_still_yields_the_entry_id():
    """HiBob documents no body for the create: the writer finds the entry it made by its marker."""
    with RecordingHiBob(Workforce(10), answer_created_entry=False) as standin:
        bob = hibob_hrms(standin)
        record_id = deliver(bob, COMPLETION)
        [entry] = bob.stored()
        assert record_id == str(entry["id"])
        assert bob.writes_made() == 1
        assert deliver(bob, COMPLETION) == record_id
        assert bob.writes_made() == 1


def test_hibob_a_column_gone_since_the_check_is_refused_for_good(bob):
    columns = {**HIBOB_TARGET["columns"], "credits": "column_credits"}
    writer = bob.writer()
    try:
        with pytest.raises(WriteRefused) as caught:
            writer.write(bob.employee, COMPLETION, {"table_id": "learning", "columns": columns})
        assert "400" in str(caught.value)
        assert "column_credits" in str(caught.value)
        with pytest.raises(WriteRefused, match="404"):
            writer.write(bob.employee, COMPLETION, {**HIBOB_TARGET, "table_id": "trainings"})
    finally:
        writer.close()
    assert nothing_stored(bob)
