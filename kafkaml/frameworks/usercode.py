"""Running user model code (imports + code) and mapping its failures to lines of the user's text.

The two fields are compiled under their own file names, so a traceback tells which field and
which line failed; nothing is ever `eval`ed from anywhere but these two fields.
"""

from __future__ import annotations

import ast
import traceback
from typing import Any

from kafkaml.frameworks.errors import ModelCodeError

FILENAMES = {"imports": "<kafkaml imports>", "code": "<kafkaml code>"}


def run_user_code(imports: str, code: str) -> dict[str, Any]:
    """Execute `imports` then `code` in one fresh namespace and return it.

    The code must bind `model`. Kafka-ML's distributed convention (the last line is a bare
    expression that evaluates to the model) is honoured: when the code never assigns `model`
    at top level and ends with an expression, that expression is bound to `model`.
    Raises ModelCodeError with the field and line of the failure.
    """
    namespace: dict[str, Any] = {"__name__": "__kafkaml_model__", "__builtins__": __builtins__}
    _exec_field("imports", imports, namespace)
    _exec_field("code", code, namespace)
    if "model" not in namespace:
        raise ModelCodeError("the code must bind the name `model` to the model", line=None)
    return namespace


def check_syntax(imports: str, code: str) -> None:
    """Raise ModelCodeError for a syntax error in either field, without running anything."""
    for field, source in (("imports", imports), ("code", code)):
        _parse(field, source)


def error_from(exc: BaseException, *, context: str) -> ModelCodeError:
    """A ModelCodeError for `exc` raised while running user code, at its innermost user line.

    `context` says what was being done ("building the model", "calling model.loss_fn()").
    """
    field, line = _user_location(exc)
    if isinstance(exc, MemoryError):
        message = f"the model code exceeded the memory limit while {context}"
    elif isinstance(exc, SystemExit):
        call = getattr(exc, "call", f"sys.exit({exc.code!r})")
        message = f"the model code called {call} while {context}"
    else:
        message = f"{type(exc).__name__} while {context}: {exc}"
    return ModelCodeError(message, line=line, field=field)


def _exec_field(field: str, source: str, namespace: dict[str, Any]) -> None:
    tree = _parse(field, source)
    if field == "code":
        tree = _bind_last_expression(tree)
    compiled = compile(tree, FILENAMES[field], "exec")
    try:
        exec(compiled, namespace)
    except (Exception, SystemExit) as exc:
        raise error_from(exc, context=f"running the {field}") from None


def _parse(field: str, source: str) -> ast.Module:
    try:
        return ast.parse(source, filename=FILENAMES[field])
    except SyntaxError as exc:
        raise ModelCodeError(f"syntax error: {exc.msg}", line=exc.lineno, field=field) from None


def _bind_last_expression(tree: ast.Module) -> ast.Module:
    if not tree.body or not isinstance(tree.body[-1], ast.Expr) or _assigns_model(tree):
        return tree
    last = tree.body[-1]
    assign = ast.Assign(targets=[ast.Name(id="model", ctx=ast.Store())], value=last.value)
    tree.body[-1] = ast.copy_location(assign, last)
    return ast.fix_missing_locations(tree)


def _assigns_model(tree: ast.Module) -> bool:
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "model" for t in targets):
            return True
    return False


def _user_location(exc: BaseException) -> tuple[str, int | None]:
    """The field and line of the innermost traceback frame in user code ("code", None if none)."""
    found: tuple[str, int | None] = ("code", None)
    by_name = {name: field for field, name in FILENAMES.items()}
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in by_name:
            found = (by_name[frame.filename], frame.lineno)
    return found
