"""Change a dead letter's payload: dotted-path assignments, then validation before saving.

A receiver entry's payload keeps the raw notification XML; ``record.Field`` paths edit the
sObject field inside it (a ``null`` value leaves the field out, as Salesforce does). The
result is validated the way it will be read on requeue: the notification must parse and its
record must validate (an Opportunity's ``Amount`` a number); a worker payload carrying a
``record`` must validate as its ``sobject_type``.

A new payload may start from what the views showed, where secret-looking text is masked
(``o2c_workers.dlq.store.redacted``): ``restore_shown`` puts back every value that was left
as shown, so that an edit saves the exact data a requeue needs, never a mask.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from xml.etree.ElementTree import Element, ParseError, SubElement

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from o2c_workers.dlq.errors import InvalidEdit
from o2c_workers.dlq.models import DeadLetter
from o2c_workers.redact import MASK, is_masked_key

#: The path prefix that edits a field of a receiver entry's stored sObject.
RECORD = "record."


def parse_value(text: str) -> Any:
    """``45000`` → number, ``true`` → bool, ``null`` → None, ``{...}`` → JSON, else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise InvalidEdit(f"--set {text!r}: write field=value (dotted paths allowed)")
    return path.strip(), parse_value(value)


def set_path(data: Any, path: str, value: Any) -> Any:
    """A copy of ``data`` with ``value`` at the dotted ``path`` (list items by index)."""
    out = copy.deepcopy(data)
    parts = path.split(".")
    node = out
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            try:
                index = int(part)
                node[index]
            except (ValueError, IndexError):
                raise InvalidEdit(f"{path}: {part!r} is not an index of the list") from None
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise InvalidEdit(f"{path}: {'.'.join(parts[:depth]) or 'payload'} is not an object")
    return out


def _parse(raw: str) -> Element:
    root: Element = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True,
                                      forbid_external=True)
    return root


def _sobject(root: Element) -> Element:
    for child in root:
        if child.tag.endswith("}sObject") or child.tag == "sObject":
            return child
    raise InvalidEdit("the stored notification holds no sObject")


def set_record_field(raw: str, name: str, value: Any) -> str:
    """The notification XML with one sObject field set (or left out when ``value`` is None)."""
    try:
        root = _parse(raw)
    except (ParseError, DefusedXmlException) as exc:
        raise InvalidEdit(f"the stored notification does not parse: {exc}") from None
    sobject = _sobject(root)
    namespace = next((c.tag[1:].partition("}")[0] for c in sobject if c.tag.startswith("{")),
                     "urn:sobject.enterprise.soap.sforce.com")
    tag = f"{{{namespace}}}{name}"
    node = sobject.find(tag)
    if value is None:
        if node is not None:
            sobject.remove(node)
    else:
        if node is None:
            node = SubElement(sobject, tag)
        text = value if isinstance(value, str) else json.dumps(value)
        # A stored notification keeps its personal fields masked, edited or not.
        node.text = MASK if is_masked_key(name) else text
    return str(SafeET.tostring(root, encoding="unicode"))


def _leaves(node: Element, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Element]:
    """The fields of an sObject without children (relationship fields' too), by tag path."""
    out: dict[tuple[str, ...], Element] = {}
    for child in node:
        where = (*path, child.tag)
        out.update(_leaves(child, where) if len(child) else {where: child})
    return out


def _restore_fields(new: str, shown: str, stored: str) -> str:
    """A notification's XML with each sObject field left as shown put back as stored."""
    try:
        root = _parse(new)
        fields = _leaves(_sobject(root))
        before, exact = (_leaves(_sobject(_parse(xml))) for xml in (shown, stored))
    except (ParseError, DefusedXmlException, InvalidEdit):
        return new  # not a notification: the planner's validation judges it
    changed = False
    for path, node in fields.items():
        if path in before and path in exact and node.text == before[path].text \
                and node.text != exact[path].text:
            node.text, changed = exact[path].text, True
    return str(SafeET.tostring(root, encoding="unicode")) if changed else new


def restore_shown(new: Any, *, shown: Any, stored: Any) -> Any:
    """``new`` with every value left as the view ``shown`` it put back as ``stored``."""
    if new == shown:
        return copy.deepcopy(stored)
    if isinstance(new, dict) and isinstance(shown, dict) and isinstance(stored, dict):
        return {key: restore_shown(value, shown=shown[key], stored=stored[key])
                if key in shown and key in stored else value for key, value in new.items()}
    if (isinstance(new, list) and isinstance(shown, list) and isinstance(stored, list)
            and len(new) == len(shown) == len(stored)):
        return [restore_shown(n, shown=s, stored=t)
                for n, s, t in zip(new, shown, stored, strict=True)]
    if isinstance(new, str) and isinstance(shown, str) and isinstance(stored, str) \
            and shown != stored and new.lstrip().startswith("<"):
        return _restore_fields(new, shown, stored)
    return new


def apply_sets(entry: DeadLetter, payload: Any, assignments: list[tuple[str, Any]]) -> Any:
    for path, value in assignments:
        raw = payload.get("raw") if isinstance(payload, dict) else None
        if isinstance(raw, str) and path.startswith(RECORD):
            payload = {**payload, "raw": set_record_field(raw, path[len(RECORD):], value)}
        else:
            payload = set_path(payload, path, value)
    return payload


def validate(entry: DeadLetter, payload: Any) -> None:
    """Refuse a payload of another shape than the stored one; the planner checks the rest."""
    if type(payload) is not type(entry.payload) and entry.payload is not None:
        raise InvalidEdit(f"the payload was a {type(entry.payload).__name__}; "
                          f"it cannot become a {type(payload).__name__}")


def args_for(entry: DeadLetter, payload: Any) -> list[Any]:
    """A worker entry's task arguments after its payload changed (the payload is them)."""
    if len(entry.args) == 1:
        return [payload]
    return list(payload) if isinstance(payload, list) else entry.args
