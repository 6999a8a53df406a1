"""SCIM filters and sorts, evaluated by Postgres.

Contract (tests/scim/test_storage.py runs scim2-server's ScimStorageContract, which compares every
result with scim2-models' own evaluator):
- a filter compiles to one SQL condition over the stored resource (its JSON document and a few
  columns), with the semantics of ``ScimFilter.match``: strings compare by their comparison key
  (NFC, lowercase unless caseExact) in code point order; ``co``/``sw``/``ew`` apply to strings only,
  with ``%``, ``_`` and ``\\`` escaped; a comparison on a multi-valued attribute matches when any
  value does, and ``ne`` when no value is equal; ``eq null``/``ne null`` test absence; ``pr`` needs a
  non-empty value somewhere; ``and``/``or``/``not``; value paths (``emails[type eq "work"]``) test
  the entries one by one; ``meta.created``/``meta.lastModified`` compare as times;
- every leaf is coalesced to a boolean, so ``not`` never meets SQL's unknown;
- an attribute the resource type does not declare matches nothing;
- ``userName``, ``externalId``, ``id``, ``emails.value`` and group ``members.value`` equalities use
  indexes; everything else reads the document;
- a sort key is the value ``SearchRequest.sort_value`` gives: a multi-valued attribute sorts on its
  primary entry, or else its first; missing values come last ascending, first descending; ties go
  by id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from inspect import isclass
from typing import Any

from scim2_models import BaseModel, InvalidFilterException
from scim2_models.path.expressions import (
    STRING_OPERATORS,
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from scim2_models.path.resolution import (
    AttributeBinding,
    _resolve_filter_path,
    _validate_operator,
    _validate_value_selection,
    coerce_value,
)
from scim2_models.path.visitor import FilterVisitor
from scim2_models.resources.resource import Extension

META_COLUMNS = {"created": ("created", "timestamptz"), "lastModified": ("last_modified", "timestamptz")}


@dataclass(frozen=True, eq=False)
class Table:
    """How one resource type is stored: its table, alias, id column and indexed columns."""

    resource_type: str
    table: str
    alias: str
    id_column: str
    indexed_text: dict[str, tuple[str, bool]] = field(default_factory=dict)  # attribute -> (column, keyed)

    def column(self, name: str) -> str:
        return f"{self.alias}.{name}"


USERS = Table("User", "scim_users", "su", "user_id",
              {"userName": ("user_name_key", True), "externalId": ("external_id", False)})
GROUPS = Table("Group", "scim_groups", "sg", "group_id",
               {"displayName": ("display_name_key", True), "externalId": ("external_id", False)})


class Params:
    """Named query parameters, so that SQL can be assembled in any order."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"%({name})s"


def _like_pattern(value: str, op: CompareOperator) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if op == CompareOperator.co:
        return f"%{escaped}%"
    if op == CompareOperator.sw:
        return f"{escaped}%"
    return f"%{escaped}"


def _kind(target: Any) -> str:
    """The SQL family a SCIM attribute type compares in."""
    if not isclass(target):
        return "any"
    if issubclass(target, bool):
        return "boolean"
    if issubclass(target, (int, float, Decimal)):
        return "numeric"
    if issubclass(target, datetime):
        return "timestamptz"
    if issubclass(target, bytes):
        return "bytes"
    if issubclass(target, str):
        return "text"
    if issubclass(target, BaseModel):
        return "complex"
    return "any"


def typed(json_sql: str, kind: str) -> str:
    """The SQL value of a JSON value, in its attribute's type (NULL when absent or of another type)."""
    if kind == "boolean":
        return f"(CASE WHEN jsonb_typeof({json_sql}) = 'boolean' THEN ({json_sql})::boolean END)"
    if kind == "numeric":
        return f"(CASE WHEN jsonb_typeof({json_sql}) = 'number' THEN ({json_sql})::numeric END)"
    if kind == "timestamptz":
        return f"(CASE WHEN jsonb_typeof({json_sql}) = 'string' THEN ({json_sql} #>> '{{}}')::timestamptz END)"
    return f"(CASE WHEN jsonb_typeof({json_sql}) = 'string' THEN {json_sql} #>> '{{}}' END)"


def comparison_key(text_sql: str, binding: AttributeBinding) -> str:
    return text_sql if binding.case_exact else f"scim_key({text_sql})"


@dataclass(frozen=True)
class Scope:
    """Where attributes are read from: a stored resource, or one entry of a multi-valued attribute."""

    model: type[BaseModel]
    document: str  # SQL yielding the jsonb the model's attributes live in
    table: Table | None = None  # set for a whole stored resource
    urn_prefix: str = ""


class _Logic(FilterVisitor[str]):
    """``not``, ``and`` and ``or``, the same over resources and over entries."""

    def visit_not(self, node: Not) -> str:
        return f"(NOT {self.visit(node.expr)})"

    def visit_logical_expr(self, node: LogicalExpr) -> str:
        joiner = " AND " if node.op == LogicalOperator.and_ else " OR "
        return "(" + joiner.join(self.visit(term) for term in node.terms) + ")"


class FilterCompiler(_Logic):
    """Compiles a filter AST into one SQL condition (named placeholders, values in ``params``)."""

    def __init__(self, scope: Scope, params: Params) -> None:
        self.scope = scope
        self.params = params

    # --- resolving --------------------------------------------------------------------------------

    def _resolve(self, attr_path: AttrPath, *, for_comparison: bool) -> AttributeBinding | None:
        resolved = _resolve_filter_path(self.scope.model, attr_path, strict=False, for_comparison=for_comparison)
        if resolved is not None and self.scope.urn_prefix:
            resolved = resolved._nested_in(self.scope.urn_prefix)
        return resolved

    def _json_key(self, model: type[BaseModel], field_name: str) -> str:
        return self.params.add(model._scim_name(field_name))

    def _head(self, binding: AttributeBinding) -> str:
        """SQL for the head attribute's JSON value."""
        model = binding.model
        if isclass(model) and issubclass(model, Extension) and self.scope.table is not None:
            extension = self.params.add(str(model.__schema__))
            return f"({self.scope.document} -> {extension} -> {self._json_key(model, binding.field_name)})"
        if self.scope.table is not None and binding.field_name == "active" and self.scope.table is USERS:
            # An identity-store deactivation shows as active=false whatever the document says.
            return (f"(CASE WHEN u.status = 'inactive' THEN 'false'::jsonb "
                    f"ELSE {self.scope.document} -> 'active' END)")
        return f"({self.scope.document} -> {self._json_key(model, binding.field_name)})"

    def _sub(self, binding: AttributeBinding, entry_sql: str) -> str:
        sub_model = binding.field_type
        assert sub_model is not None
        assert binding.sub_field_name is not None
        return f"({entry_sql} -> {self._json_key(sub_model, binding.sub_field_name)})"

    def _special(self, binding: AttributeBinding) -> tuple[str, str] | None:
        """SQL and kind for attributes kept outside the document (id, meta, group members)."""
        table = self.scope.table
        if table is None:
            return None
        if binding.field_name == "id" and binding.sub_field_name is None:
            return f"{table.column(table.id_column)}::text", "text"
        if binding.field_name == "meta":
            sub = binding.field_type._scim_name(binding.sub_field_name) if binding.sub_field_name else None
            if sub in META_COLUMNS:
                column, kind = META_COLUMNS[sub]
                return table.column(column), kind
            if sub == "resourceType":
                return self.params.add(table.resource_type), "text"
            if sub == "version":
                return f"('W/\"' || {table.column('version')} || '\"')", "text"
            return "NULL::text", "text"
        return None

    def _is_members(self, binding: AttributeBinding) -> bool:
        return self.scope.table is GROUPS and binding.field_name == "members"

    def _members_entries(self) -> str:
        return (
            "(SELECT jsonb_build_object('value', m.user_id::text, 'type', 'User', '$ref', 'Users/' || m.user_id)"
            f" AS entry FROM group_memberships m WHERE m.group_id = {GROUPS.column('group_id')})"
        )

    def _entries(self, binding: AttributeBinding) -> str:
        """A FROM item yielding the entries of a multi-valued attribute as ``entry``."""
        if self._is_members(binding):
            return f"{self._members_entries()} AS entries"
        return f"scim_entries({self._head(binding)}) AS entries(entry)"

    # --- comparisons --------------------------------------------------------------------------------

    def _compare_scalar(self, value_sql: str, kind: str, binding: AttributeBinding, op: CompareOperator,
                        expected: Any, *, typed_already: bool = False) -> str:
        """One value against the expected one, as scim2-models' _compare does."""
        typed_sql = value_sql if typed_already else typed(value_sql, kind)
        if expected is None:
            absent = f"({typed_sql} IS NULL)"
            if op == CompareOperator.eq:
                return absent
            if op == CompareOperator.ne:
                return f"(NOT {absent})"
            return "FALSE"
        try:
            key = binding.comparable(expected)
        except ValueError:
            return "TRUE" if op == CompareOperator.ne else "FALSE"
        if op in STRING_OPERATORS:
            if kind != "text" or not isinstance(key, str):
                return "FALSE"
            pattern = self.params.add(_like_pattern(key, op))
            return f"coalesce({comparison_key(typed_sql, binding)} LIKE {pattern} ESCAPE '\\', false)"
        operand, left = self._operand(key, kind, binding, typed_sql)
        if operand is None:
            return "TRUE" if op == CompareOperator.ne else "FALSE"
        sql_op = {"eq": "=", "ne": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}[op.value]
        condition = f"coalesce({left} {sql_op} {operand}, false)"
        return f"(NOT {condition})" if op == CompareOperator.ne else condition

    def _operand(self, key: Any, kind: str, binding: AttributeBinding, typed_sql: str) -> tuple[str | None, str]:
        if kind == "text" or kind == "bytes":
            if not isinstance(key, str):
                return None, typed_sql
            return f"{self.params.add(key)} COLLATE \"C\"", f"{comparison_key(typed_sql, binding)} COLLATE \"C\""
        if kind == "boolean" and isinstance(key, bool):
            return f"{self.params.add(key)}::boolean", typed_sql
        if kind == "numeric" and isinstance(key, (int, float, Decimal)) and not isinstance(key, bool):
            return f"{self.params.add(key)}::numeric", typed_sql
        if kind == "timestamptz" and isinstance(key, datetime):
            return f"{self.params.add(key)}::timestamptz", typed_sql
        return None, typed_sql

    def visit_comparison(self, node: Comparison) -> str:
        binding = self._resolve(node.attr_path, for_comparison=True)
        if binding is None:
            return "FALSE"
        _validate_operator(binding, node.op)
        expected = coerce_value(binding, node.value, node.op)
        kind = _kind(binding.target_type)
        indexed = self._indexed(binding, node.op, expected)
        if indexed is not None:
            return indexed
        special = self._special(binding)
        if special is not None:
            value_sql, special_kind = special
            return self._compare_scalar(value_sql, special_kind, binding, node.op, expected, typed_already=True)
        if kind == "complex":
            # A complex attribute compared as a whole equals no value (scim2-models compares the model).
            present = f"({self._head(binding)} IS NOT NULL AND jsonb_typeof({self._head(binding)}) <> 'null')"
            if node.op == CompareOperator.ne:
                return "TRUE" if expected is not None else present
            return f"(NOT {present})" if (node.op == CompareOperator.eq and expected is None) else "FALSE"
        if binding.is_multivalued:
            return self._compare_entries(binding, kind, node.op, expected)
        json_sql = self._sub(binding, self._head(binding)) if binding.sub_field_name else self._head(binding)
        return self._compare_scalar(json_sql, kind, binding, node.op, expected)

    def _compare_entries(self, binding: AttributeBinding, kind: str, op: CompareOperator, expected: Any) -> str:
        """Any entry matches; for ne, no entry is equal. An absent list reads as one missing value."""
        entry = self._sub(binding, "entries.entry") if binding.sub_field_name else "entries.entry"
        head = self._head(binding) if not self._is_members(binding) else None
        if op == CompareOperator.ne:
            equal = self._compare_scalar(entry, kind, binding, CompareOperator.eq, expected)
            over_entries = f"NOT EXISTS (SELECT 1 FROM {self._entries(binding)} WHERE {equal})"
        else:
            matching = self._compare_scalar(entry, kind, binding, op, expected)
            over_entries = f"EXISTS (SELECT 1 FROM {self._entries(binding)} WHERE {matching})"
        if head is None:
            return over_entries
        missing = self._compare_scalar("NULL::jsonb", kind, binding, op, expected)
        return f"(CASE WHEN jsonb_typeof({head}) = 'array' THEN {over_entries} ELSE {missing} END)"

    def _indexed(self, binding: AttributeBinding, op: CompareOperator, expected: Any) -> str | None:
        """Equalities that indexes answer: userName, externalId, emails.value, members.value."""
        table = self.scope.table
        if table is None or op != CompareOperator.eq or not isinstance(expected, str):
            return None
        try:
            key = binding.comparable(expected)
        except ValueError:
            return "FALSE"
        name = binding.model._scim_name(binding.field_name)
        if binding.sub_field_name is None and name in table.indexed_text and binding.model is self.scope.model:
            column, _ = table.indexed_text[name]
            return f"({table.column(column)} = {self.params.add(key)})"
        if table is USERS and name == "emails" and binding.sub_field_name == "value":
            return (f"({table.column('user_id')} IN (SELECT e.user_id FROM scim_user_emails e"
                    f" WHERE e.tenant_id = {table.column('tenant_id')} AND e.value_key = {self.params.add(key)}))")
        if self._is_members(binding) and binding.sub_field_name == "value":
            try:
                member = uuid.UUID(expected)
            except ValueError:
                return "FALSE"
            return (f"EXISTS (SELECT 1 FROM group_memberships m WHERE m.group_id = {table.column('group_id')}"
                    f" AND m.user_id = {self.params.add(member)})")
        return None

    # --- presence, logic, value paths -----------------------------------------------------------------

    def visit_present(self, node: Present) -> str:
        binding = self._resolve(node.attr_path, for_comparison=False)
        if binding is None:
            return "FALSE"
        special = self._special(binding)
        if special is not None:
            return f"({special[0]} IS NOT NULL)"
        if self._is_members(binding):
            entry = self._sub(binding, "entries.entry") if binding.sub_field_name else "entries.entry"
            return f"EXISTS (SELECT 1 FROM {self._entries(binding)} WHERE scim_present({entry}))"
        head = self._head(binding)
        if binding.sub_field_name is None:
            return f"scim_present({head})"
        if binding.is_multivalued:
            entry = self._sub(binding, "entries.entry")
            return f"EXISTS (SELECT 1 FROM {self._entries(binding)} WHERE scim_present({entry}))"
        return f"scim_present({self._sub(binding, head)})"

    def visit_value_path(self, node: ValuePath) -> str:
        binding = self._resolve(node.attr_path, for_comparison=False)
        if binding is None:
            return "FALSE"
        _validate_value_selection(binding)
        entry_model = binding.field_type
        if self._is_members(binding) and isinstance(node.val_filter, Comparison):
            shortcut = self._indexed_member_selection(binding, node.val_filter)
            if shortcut is not None:
                return shortcut
        if isclass(entry_model) and issubclass(entry_model, BaseModel):
            inner = FilterCompiler(Scope(entry_model, "entries.entry", None, binding.urn), self.params).visit(
                node.val_filter)
        else:
            inner = _ScalarEntries(binding, self.params).visit(node.val_filter)
        selection = f"EXISTS (SELECT 1 FROM {self._entries(binding)} WHERE {inner})"
        value = _equal_value(node.val_filter)
        if self.scope.table is USERS and binding.field_name == "emails" and value is not None:
            # Entra's emails[type eq "work"].value eq "…": the email index narrows first.
            email_value = AttributeBinding(binding.model, "emails", binding.field_type, True, "value", str)
            indexed = self._indexed(email_value, CompareOperator.eq, value)
            if indexed is not None:
                return f"({indexed} AND {selection})"
        return selection

    def _indexed_member_selection(self, binding: AttributeBinding, comparison: Comparison) -> str | None:
        if comparison.attr_path.attr.lower() != "value" or comparison.attr_path.sub_attr:
            return None
        members_value = AttributeBinding(binding.model, binding.field_name, binding.field_type, True, "value", str)
        return self._indexed(members_value, comparison.op, comparison.value)


def _equal_value(val_filter: FilterNode) -> str | None:
    """The string a value selection requires ``value`` to equal (alone or in an ``and``), if any."""
    terms = val_filter.terms if isinstance(val_filter, LogicalExpr) and val_filter.op == LogicalOperator.and_ else (
        val_filter,)
    for term in terms:
        if (isinstance(term, Comparison) and term.op == CompareOperator.eq and isinstance(term.value, str)
                and term.attr_path.attr.lower() == "value" and not term.attr_path.sub_attr):
            return term.value
    return None


class _ScalarEntries(_Logic):
    """A value filter over the entries of a multi-valued attribute that is not complex (``value`` is the entry)."""

    def __init__(self, binding: AttributeBinding, params: Params) -> None:
        self.binding = binding
        self.params = params
        self.compiler = FilterCompiler(Scope(binding.model, "NULL::jsonb"), params)

    def _targets_self(self, node: Comparison | Present) -> bool:
        return node.attr_path.attr.lower() == "value" and not node.attr_path.sub_attr

    def visit_comparison(self, node: Comparison) -> str:
        if not self._targets_self(node):
            return "FALSE"
        return self.compiler._compare_scalar(
            "entries.entry", _kind(self.binding.target_type), self.binding, node.op, node.value)

    def visit_present(self, node: Present) -> str:
        return "scim_present(entries.entry)" if self._targets_self(node) else "FALSE"

    def visit_value_path(self, node: ValuePath) -> str:
        return "FALSE"


def compile_filter(filter_ast: FilterNode, model: type[BaseModel], table: Table, params: Params) -> str:
    """The SQL condition of a filter for one resource type (raises InvalidFilterException)."""
    try:
        return FilterCompiler(Scope(model, table.column("document"), table), params).visit(filter_ast)
    except InvalidFilterException:
        raise
    except (TypeError, ValueError) as error:
        raise InvalidFilterException(detail=str(error)) from error


def sort_key(binding: AttributeBinding | None, model: type[BaseModel], table: Table,
             params: Params) -> tuple[str, str]:
    """SQL for the sort value and its SQL type; NULL sorts as a missing value."""
    if binding is None:
        return "NULL::text", "text"
    compiler = FilterCompiler(Scope(model, table.column("document"), table), params)
    kind = _kind(binding.target_type)
    sql_type = {"numeric": "numeric", "boolean": "boolean", "timestamptz": "timestamptz"}.get(kind, "text")
    special = compiler._special(binding)
    if special is not None:
        value_sql, special_kind = special
        if special_kind == "text":
            return comparison_key(value_sql, binding) + ' COLLATE "C"', "text"
        return value_sql, sql_type
    if binding.is_multivalued:
        if compiler._is_members(binding):
            chosen = (f"(SELECT entries.entry FROM {compiler._entries(binding)}"
                      " ORDER BY entries.entry ->> 'value' LIMIT 1)")
        else:
            chosen = (f"(SELECT entries.entry FROM scim_entries({compiler._head(binding)}) WITH ORDINALITY"
                      " AS entries(entry, position)"
                      " ORDER BY (entries.entry -> 'primary' = 'true'::jsonb) IS TRUE DESC, entries.position LIMIT 1)")
        json_sql = compiler._sub(binding, chosen) if binding.sub_field_name else chosen
    else:
        head = compiler._head(binding)
        json_sql = compiler._sub(binding, head) if binding.sub_field_name else head
    value = typed(json_sql, kind if kind in ("boolean", "numeric", "timestamptz") else "text")
    if sql_type == "text":
        return comparison_key(value, binding) + ' COLLATE "C"', "text"
    return value, sql_type
