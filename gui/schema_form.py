"""An argument form built from an EXAI tool's JSON input schema.

The agent fills some arguments itself (``agent/exai/arguments.py``): the file's hub
reference or path, the question and the content hash. Those show here read-only (the
question goes in the dialog's question box); every other property gets an input
widget by type, and only what the user set (or a required field) is sent, so the
server's own defaults apply to the rest.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

# The names the agent fills in, in its order of preference (mirrors agent/exai/arguments.py;
# a test keeps the two in step: the GUI only talks to the agent through the control API).
FILE_REF_NAMES = ("file_id", "file_ref", "file_reference", "file_key", "storage_path")
PATH_NAMES = ("file_path", "path", "filepath", "file")
PATH_LIST_NAMES = ("files", "file_paths", "absolute_file_paths")
QUESTION_NAMES = ("question", "prompt", "query", "message", "instructions", "request")
HASH_NAMES = ("sha256", "file_sha256", "sha256_hash", "content_hash", "file_hash")

MULTILINE_HINTS = ("prompt", "question", "instructions", "text", "content", "context")
INT_LIMIT = 2_147_483_647
FLOAT_LIMIT = 1e12
DEFAULT_TEXT = "default"
CHOOSE_TEXT = "— choose —"


class FormError(ValueError):
    """What the user must fix before the tool can run (a sentence for the dialog)."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    schema: Mapping[str, Any]
    required: bool
    role: str
    """``file`` / ``hash`` / ``question`` (filled by HubSync) or ``input`` (the user's)."""

    @property
    def description(self) -> str:
        return str(self.schema.get("description") or "")


def _first(names: Sequence[str], props: Mapping[str, Any]) -> str | None:
    return next((n for n in names if n in props), None)


def classify(schema: Mapping[str, Any]) -> list[FieldSpec]:
    """The schema's properties in order, each with the role the agent gives it."""
    raw = schema.get("properties")
    props: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    required = {str(r) for r in schema.get("required") or [] if isinstance(r, str)}
    roles: dict[str, str] = {}
    ref_name = _first(FILE_REF_NAMES, props)
    path_name = _first(PATH_NAMES, props)
    list_name = _first(PATH_LIST_NAMES, props)
    if ref_name:
        roles[ref_name] = "file"
    if path_name and (not ref_name or path_name in required):
        roles[path_name] = "file"
    if list_name and not ref_name and not path_name:
        roles[list_name] = "file"
    if question_name := _first(QUESTION_NAMES, props):
        roles[question_name] = "question"
    if hash_name := _first(HASH_NAMES, props):
        roles[hash_name] = "hash"
    return [
        FieldSpec(
            str(name),
            sub if isinstance(sub, Mapping) else {},
            name in required,
            roles.get(str(name), "input"),
        )
        for name, sub in props.items()
    ]


def tool_schema(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An EXAI tool's input schema, as ``exai.tools`` lists it (empty when it has none)."""
    schema = tool.get("inputSchema")
    return schema if isinstance(schema, dict) else {}


def takes_file(schema: Mapping[str, Any]) -> bool:
    """Whether the agent can hand this tool a file (a reference, a path or a list of paths)."""
    return any(spec.role == "file" for spec in classify(schema))


def json_type(schema: Mapping[str, Any]) -> str:
    """The schema's main type (``["string", "null"]`` → ``string``); ``""`` when unknown."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else ""


class Input(ABC):
    """One user-editable argument; ``value`` gives ``(is_set, value)`` or raises FormError."""

    widget: QWidget

    def __init__(self, spec: FieldSpec) -> None:
        self.spec = spec
        self.touched = False

    def _touch(self, *_args: object) -> None:
        self.touched = True

    @abstractmethod
    def value(self) -> tuple[bool, Any]: ...

    @abstractmethod
    def set_value(self, value: Any) -> None:
        """Set as if the user typed it (tests, remembered choices)."""


class TextInput(Input):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        multiline = any(hint in spec.name.lower() for hint in MULTILINE_HINTS)
        default = spec.schema.get("default")
        hint = spec.description or spec.name
        if default not in (None, ""):
            hint = f"default: {default}"
        if multiline:
            box = QPlainTextEdit()
            box.setPlaceholderText(hint)
            box.setFixedHeight(64)
            box.textChanged.connect(self._touch)
            self.widget = box
            self._read: Callable[[], str] = box.toPlainText
            self._write: Callable[[str], None] = box.setPlainText
        else:
            line = QLineEdit()
            line.setPlaceholderText(hint)
            line.textEdited.connect(self._touch)
            self.widget = line
            self._read, self._write = line.text, line.setText

    def value(self) -> tuple[bool, Any]:
        text = self._read()
        return (bool(text.strip()), text)

    def set_value(self, value: Any) -> None:
        self._write(str(value))
        self.touched = True


class ChoiceInput(Input):
    """``enum``: a combo box; optional fields start on "default", required ones on a
    default value or "— choose —"."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        box = QComboBox()
        options = list(spec.schema.get("enum") or [])
        default = spec.schema.get("default")
        has_default = "default" in spec.schema and default in options
        if not spec.required:
            box.addItem(f"{DEFAULT_TEXT} ({default})" if has_default else DEFAULT_TEXT, None)
        elif not has_default:
            box.addItem(CHOOSE_TEXT, None)
        self._offset = box.count()
        for option in options:
            box.addItem(str(option), option)
        if spec.required and has_default:
            box.setCurrentIndex(options.index(default))
        box.activated.connect(self._touch)
        self.options = options
        self.widget = self.box = box

    def value(self) -> tuple[bool, Any]:
        index = self.box.currentIndex() - self._offset
        if index < 0:
            return (False, None)
        return (True, self.options[index])

    def set_value(self, value: Any) -> None:
        self.box.setCurrentIndex(self.options.index(value) + self._offset)
        self.touched = True


class NumberInput(Input):
    """``integer`` / ``number``: a spin box. An optional field keeps one step below its
    range for "default" (not sent)."""

    def __init__(self, spec: FieldSpec, integer: bool) -> None:
        super().__init__(spec)
        low, high = _bounds(spec.schema, integer)
        step = 1.0 if integer else 0.001
        default = _number(spec.schema.get("default"))
        self._unset: float | None = None
        if spec.required:
            start = default if default is not None else min(max(0.0, low), high)
        else:
            self._unset = start = low - step
            low = self._unset
        self.integer = integer
        if integer:
            spin = QSpinBox()
            spin.setRange(int(low), int(high))
            spin.setValue(int(start))
            spin.valueChanged.connect(self._touch)
            self.box: QSpinBox | QDoubleSpinBox = spin
        else:
            double = QDoubleSpinBox()
            double.setDecimals(3)
            double.setRange(low, high)
            double.setValue(start)
            double.valueChanged.connect(self._touch)
            self.box = double
        if self._unset is not None:
            shown = (
                f"{DEFAULT_TEXT} ({spec.schema.get('default')})"
                if default is not None
                else DEFAULT_TEXT
            )
            self.box.setSpecialValueText(shown)
        self.widget = self.box

    def value(self) -> tuple[bool, Any]:
        current = self.box.value()
        if self._unset is not None and current == self._unset:
            return (False, None)
        return (True, int(current) if self.integer else float(current))

    def set_value(self, value: Any) -> None:
        if isinstance(self.box, QSpinBox):
            self.box.setValue(int(value))
        else:
            self.box.setValue(float(value))
        self.touched = True


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _bounds(schema: Mapping[str, Any], integer: bool) -> tuple[float, float]:
    """The spin range from ``minimum``/``maximum`` (or the exclusive ones), clamped to what a
    spin box holds."""
    limit, step = (float(INT_LIMIT - 1), 1.0) if integer else (FLOAT_LIMIT, 0.001)
    low, high = -limit, limit
    if (value := _number(schema.get("minimum"))) is not None:
        low = value
    elif (value := _number(schema.get("exclusiveMinimum"))) is not None:
        low = value + step
    if (value := _number(schema.get("maximum"))) is not None:
        high = value
    elif (value := _number(schema.get("exclusiveMaximum"))) is not None:
        high = value - step
    return max(low, -limit), max(min(high, limit), max(low, -limit))


class FlagInput(Input):
    """``boolean``: a check box; an optional one is sent only once the user changed it."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        box = QCheckBox(spec.description[:80] if spec.description else "")
        box.setChecked(spec.schema.get("default") is True)
        box.toggled.connect(self._touch)
        self.widget = self.box = box

    def value(self) -> tuple[bool, Any]:
        return (self.spec.required or self.touched, self.box.isChecked())

    def set_value(self, value: Any) -> None:
        self.box.setChecked(bool(value))
        self.touched = True


class JsonInput(Input):
    """Arrays, objects and anything else: JSON typed in a line."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        line = QLineEdit()
        kind = json_type(spec.schema)
        example = {"array": '["a", "b"]', "object": '{"key": "value"}'}.get(kind, "a JSON value")
        line.setPlaceholderText(f"JSON, e.g. {example}")
        line.textEdited.connect(self._touch)
        self.kind = kind
        self.widget = self.line = line

    def value(self) -> tuple[bool, Any]:
        text = self.line.text().strip()
        if not text:
            return (False, None)
        try:
            parsed = json.loads(text)
        except ValueError:
            raise FormError(f"{self.spec.name}: not valid JSON") from None
        wanted = {"array": list, "object": dict}.get(self.kind)
        if wanted is not None and not isinstance(parsed, wanted):
            raise FormError(f"{self.spec.name}: expected a JSON {self.kind}")
        return (True, parsed)

    def set_value(self, value: Any) -> None:
        self.line.setText(json.dumps(value))
        self.touched = True


def make_input(spec: FieldSpec) -> Input:
    if isinstance(spec.schema.get("enum"), list) and spec.schema["enum"]:
        return ChoiceInput(spec)
    kind = json_type(spec.schema)
    if kind == "string":
        return TextInput(spec)
    if kind in ("integer", "number"):
        return NumberInput(spec, integer=kind == "integer")
    if kind == "boolean":
        return FlagInput(spec)
    return JsonInput(spec)


class SchemaForm(QWidget):
    """The rows of one tool's arguments. ``arguments()`` gives what to send."""

    def __init__(self, schema: Mapping[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.specs = classify(schema)
        self.inputs: dict[str, Input] = {}
        self.filled: dict[str, QLineEdit] = {}
        """Read-only rows the agent fills: file reference, path, hash."""
        self.question_field: FieldSpec | None = None
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for spec in self.specs:
            if spec.role == "question":
                self.question_field = spec
                continue
            if spec.role == "input":
                field = make_input(spec)
                self.inputs[spec.name] = field
                widget = field.widget
            else:
                widget = self.filled[spec.name] = _read_only(spec)
            widget.setToolTip(spec.description)
            layout.addRow(_label(spec), widget)
        if layout.rowCount() == 0:
            layout.addRow(QLabel("This tool takes no other arguments."))

    @property
    def takes_file(self) -> bool:
        return any(spec.role == "file" for spec in self.specs)

    def set_source(self, source: str) -> None:
        """Show where the file arguments come from."""
        for spec in self.specs:
            if spec.role == "file":
                self.filled[spec.name].setText(source or "choose a file")
                self.filled[spec.name].setCursorPosition(0)

    def show_file_ref(self, ref: str) -> None:
        """The hub reference the agent sent (known once the file is in the hub): in the
        tooltip; the field keeps the user's own path, not an internal hub key."""
        for spec in self.specs:
            if spec.role == "file" and spec.name in FILE_REF_NAMES:
                self.filled[spec.name].setToolTip(f"In the hub as {ref}")

    def arguments(self) -> dict[str, Any]:
        """The user's arguments; FormError names the required ones left empty."""
        args: dict[str, Any] = {}
        missing: list[str] = []
        for name, field in self.inputs.items():
            present, value = field.value()
            if present:
                args[name] = value
            elif field.spec.required:
                missing.append(name)
        if missing:
            raise FormError(
                f"Fill in the required field{'s' * (len(missing) > 1)}: {', '.join(missing)}"
            )
        return args


def _label(spec: FieldSpec) -> QLabel:
    label = QLabel(f"{spec.name} *" if spec.required else spec.name)
    if spec.required:
        font = label.font()
        font.setBold(True)
        label.setFont(font)
    label.setToolTip(spec.description)
    return label


def _read_only(spec: FieldSpec) -> QLineEdit:
    line = QLineEdit()
    line.setReadOnly(True)
    line.setStyleSheet("color: palette(placeholder-text);")
    if spec.role == "hash":
        line.setText("SHA-256 of the file (filled in by HubSync)")
    else:
        line.setToolTip(
            "Filled in by HubSync: the file goes to the hub first (if needed) and "
            "the tool gets its hub reference, user-files/<key>"
        )
    return line
