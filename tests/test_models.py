import datetime

import pytest
from pydantic import ValidationError

from blocklearn.resources.models import MAX_CELL_CHARS, BlockSpec, Cell


def test_camel_case_wire_format_round_trips() -> None:
    wire = {
        "doc": {"cells": [{"kind": "markup", "contents": "x", "language": "", "outputs": ["o"]}]},
        "executedCell": {"kind": "code", "language": "bash", "contents": "ls", "outputs": []},
        "exitCode": 0,
        "executedAt": "2024-06-01T10:00:00Z",
        "genTraceId": "g",
        "execTraceIds": ["e1"],
        "evalMode": False,
        "suggestionStatus": "Accepted",
    }
    spec = BlockSpec.model_validate(wire)
    assert spec.executed_at == datetime.datetime(2024, 6, 1, 10, tzinfo=datetime.UTC)
    again = spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert again["execTraceIds"] == ["e1"]
    assert BlockSpec.model_validate(again) == spec


@pytest.mark.parametrize(
    ("wire", "where"),
    [
        ({"exitCode": "0"}, "exitCode"),
        ({"executedCell": {"kind": "shell", "contents": "ls"}}, "executedCell.kind"),
        ({"executedCell": {"kind": "code"}}, "executedCell.contents"),
        ({"executedAt": "yesterday"}, "executedAt"),
        ({"executedAt": "2024-06-01T10:00:00"}, "executedAt"),
        ({"unknownField": 1}, "unknownField"),
        ({"suggestionStatus": "Maybe"}, "suggestionStatus"),
        ({"executedCell": {"kind": "code", "contents": "x" * (MAX_CELL_CHARS + 1)}}, "executedCell.contents"),
        ({"executedCell": {"kind": "code", "contents": "a\x00b"}}, "executedCell.contents"),
    ],
)
def test_invalid_blocks_fail_with_the_field_named(wire: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as err:
        BlockSpec.model_validate(wire)
    locations = [".".join(str(p) for p in e["loc"]) for e in err.value.errors()]
    assert any(loc.startswith(where) for loc in locations), locations


def test_cells_default_to_no_language_and_no_outputs() -> None:
    cell = Cell.model_validate({"kind": "code", "contents": "ls"})
    assert cell.language == "" and cell.outputs == []
