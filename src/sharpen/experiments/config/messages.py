"""Errors a person can act on: pydantic's messages rewritten to name the field as written
in the file, say what is allowed, and suggest the key they probably meant."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sharpen.errors import SharpenError


def _suggest(key: str, valid: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(d: dict[str, Any], valid: set[str], where: str, path: Path) -> None:
    for k in d:
        if k not in valid:
            raise SharpenError(f"{path}: unknown key {where}{k!r}{_suggest(k, valid)}")


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        by_loc: dict[str, list[tuple[str, Any]]] = {}
        for err in exc.errors():
            by_loc.setdefault(_clean_loc(err["loc"]), []).append((err["msg"], err.get("input")))
        msgs = []
        for loc, errs in by_loc.items():
            got = errs[0][1]
            got_s = "" if isinstance(got, dict) else f" (got {got!r})"
            if not loc:  # a whole-table check: its message names the key itself
                msgs.extend(f"field {where}{_plain_msg(m)}" for m, _ in errs)
            elif len(errs) == 1:
                msgs.append(f"field {where}{loc}: {_plain_msg(errs[0][0])}{got_s}")
            elif any("found using 'kind'" in m for m, _ in errs):  # a schedule, kind misspelt
                m = next(m for m, _ in errs if "found using 'kind'" in m)
                msgs.append(f"field {where}{loc}: a number, or a schedule whose "
                            f"{_plain_msg(m).removeprefix('schedule ')}")
            else:  # a union (a number or a schedule, an integer or "auto"): say what is allowed
                allowed = " or ".join(dict.fromkeys(_plain_msg(m).removeprefix("Input should be ")
                                                    for m, _ in errs))
                msgs.append(f"field {where}{loc}: expected {allowed}{got_s}")
        raise SharpenError(f"{path}: " + "; ".join(msgs)) from None


def _plain_msg(msg: str) -> str:

    msg = msg.removeprefix("Value error, ").replace(", unable to parse string as a number", "")
    bad = re.search(r"Input tag '([^']*)' found using 'kind' does not match any of the expected "
                    r"tags: (.*)", msg)
    if bad:  # a schedule with a misspelt kind
        kinds = [k.strip(" '") for k in bad.group(2).split(",")]
        return (f"schedule kind {bad.group(1)!r} is not one of {', '.join(kinds)}"
                f"{_suggest(bad.group(1), set(kinds))}")
    # a number-or-schedule key: say what a schedule looks like, not how pydantic parses it
    return msg.replace("a valid dictionary or object to extract fields from",
                       "a schedule table such as { kind = \"linear\", start = 0.1, end = 0.01 } "
                       "(kinds: constant, linear, step, cosine, piecewise, onecycle)")


def _clean_loc(loc: tuple) -> str:
    # drop pydantic's union-branch tags so the user sees only their own key names
    tags = {"float", "constant", "linear", "step", "cosine", "piecewise", "onecycle", "int"}
    keep = [str(p) for p in loc if str(p) not in tags and not str(p).startswith(
        ("literal[", "function-", "tagged-union[", "union["))]
    return ".".join(keep)
