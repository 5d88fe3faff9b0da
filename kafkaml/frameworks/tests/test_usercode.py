import subprocess
import sys

import pytest

from kafkaml.frameworks import ModelCodeError, chain_order
from kafkaml.frameworks.errors import ChainError
from kafkaml.frameworks.usercode import check_syntax, run_user_code


def test_syntax_error_reports_its_line_in_the_code_field() -> None:
    with pytest.raises(ModelCodeError) as caught:
        run_user_code("import math\n", "a = 1\nb = 2\nc = = 3\nd = 4\n")
    assert (caught.value.field, caught.value.line) == ("code", 3)
    assert "syntax error" in caught.value.message


def test_syntax_error_in_imports_names_the_imports_field() -> None:
    with pytest.raises(ModelCodeError) as caught:
        check_syntax("import math\nimport\n", "model = 1\n")
    assert (caught.value.field, caught.value.line) == ("imports", 2)


def test_exception_while_building_reports_the_innermost_user_line() -> None:
    code = "def make():\n    return {}['missing']\n\nx = 1\nmodel = make()\n"
    with pytest.raises(ModelCodeError) as caught:
        run_user_code("", code)
    assert caught.value.line == 2
    assert "KeyError" in caught.value.message


def test_failing_import_reports_the_imports_line() -> None:
    with pytest.raises(ModelCodeError) as caught:
        run_user_code("import math\nimport no_such_module_kafkaml\n", "model = 1\n")
    assert (caught.value.field, caught.value.line) == ("imports", 2)


def test_sys_exit_is_an_error_with_its_line() -> None:
    with pytest.raises(ModelCodeError) as caught:
        run_user_code("import sys\n", "x = 1\nsys.exit(4)\n")
    assert caught.value.line == 2
    assert "sys.exit(4)" in caught.value.message


def test_code_without_model_is_an_error() -> None:
    with pytest.raises(ModelCodeError, match="bind the name `model`"):
        run_user_code("", "x = 1\nx + 1\nmodule = 2\n")


def test_last_expression_is_bound_to_model_as_in_kafka_ml_distributed_code() -> None:
    namespace = run_user_code("", "base = 20\nbase + 1\n")
    assert namespace["model"] == 21


def test_explicit_model_binding_wins_over_the_last_expression() -> None:
    namespace = run_user_code("", "model = 'kept'\nmodel.upper()\n")
    assert namespace["model"] == "kept"


def test_chain_order_walks_parent_links_from_edge_to_cloud() -> None:
    assert chain_order({"cloud": None, "edge": "fog", "fog": "cloud"}) == ["edge", "fog", "cloud"]


@pytest.mark.parametrize(
    ("parents", "problem"),
    [
        ({"a": None, "b": None}, "exactly one top"),
        ({"top": None, "x": "top", "y": "top"}, "cannot branch"),
        ({"top": None, "x": "ghost"}, "not in the chain"),
        ({"top": None, "x": "y", "y": "x"}, "cycle"),
    ],
)
def test_chain_order_refuses_links_that_are_not_one_chain(
    parents: dict[str, str | None], problem: str
) -> None:
    with pytest.raises(ChainError, match=problem):
        chain_order(parents)


def test_importing_frameworks_and_the_executor_client_loads_no_ml_framework() -> None:
    probe = (
        "import sys, kafkaml.frameworks, mlcode_executor.client\n"
        "heavy = sorted({'tensorflow', 'torch', 'keras'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
