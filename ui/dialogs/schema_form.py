"""Settings forms generated from the JSON Schema of the settings, not written per field.

A field added to :mod:`app.config.schema` appears in the editor by itself: the editor is
chosen by the field's JSON type (checkbox, number, choice, text, path with a browse
button, symbol list, key=value map, JSON text, sub-forms for lists of objects), its label
is the title-cased key, and its tooltip is the field's description with default and
range. Only the core decides what is valid: the form builds the document, the settings
dialog asks :meth:`app.session.DesktopSession.validate`, and :meth:`SchemaForm.show_problems`
routes each ``path: value: rule`` line to the editor whose path it names.

Every node of the form (a field, a group, a list of sub-forms) answers the same few
calls (``value``, ``set_value``, ``targets``, ``local_problems``, ``show_problems``), so
the routing works at any depth.
"""

from __future__ import annotations

import copy
import html
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QKeyEvent,
    QPalette,
    QRegularExpressionValidator,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

JsonPath = tuple[str, ...]
Schema = dict[str, Any]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: No default known for a field (pydantic's ``default_factory`` leaves none in the schema).
MISSING: Final = _Missing()

_UNITS: Final = {"s": "(s)", "ms": "(ms)", "mb": "(MB)"}
_WORDS: Final = {"url": "URL", "id": "ID", "db": "DB", "tls": "TLS", "ca": "CA", "mt5": "MT5"}
_PATHLIKE_KEY: Final = re.compile(r"(^path$|_path$|_file$|_dir$|_db$|_bundle$|_log$)")


# --------------------------------------------------------------------------- the schema
def resolve(node: Schema, defs: Schema) -> Schema:
    """``node`` with its ``$ref`` followed; the referring node's own keys (description,
    default) win, since pydantic puts the field's description next to the ``$ref``."""
    seen = 0
    while "$ref" in node and seen < 32:
        target = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node


def field_label(key: str) -> str:
    """``ticks_per_symbol`` → ``Ticks Per Symbol``; ``interval_s`` → ``Interval (s)``."""
    parts = [p for p in key.split("_") if p]
    unit = ""
    if len(parts) > 1 and parts[-1].lower() in _UNITS:
        unit = " " + _UNITS[parts.pop().lower()]
    return " ".join(_WORDS.get(p.lower(), p[:1].upper() + p[1:]) for p in parts) + unit


def _show_default(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return _format_number(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "none"
    if isinstance(value, dict) and not value:
        return "none"
    if isinstance(value, str):
        return value or "empty"
    return json.dumps(value)


def _format_number(value: float) -> str:
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _bound(node: Schema, inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    if inclusive in node:
        return float(node[inclusive]), True
    if exclusive in node:
        return float(node[exclusive]), False
    return None, True


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One property of an object in the schema, with ``$ref`` and ``anyOf``-null unwrapped."""

    key: str
    node: Schema
    nullable: bool
    description: str
    default: Any
    defs: Schema

    @classmethod
    def of(cls, key: str, raw: Schema, defs: Schema, default: Any = MISSING) -> FieldSpec:
        node = resolve(raw, defs)
        nullable = False
        variants = node.get("anyOf")
        if isinstance(variants, list):
            others = [v for v in variants if v.get("type") != "null"]
            if len(others) == 1 and len(others) < len(variants):
                outer = {k: v for k, v in node.items() if k != "anyOf"}
                node = {**resolve(others[0], defs), **outer}
                nullable = True
        if "default" in raw:
            default = raw["default"]
        elif "default" in node:
            default = node["default"]
        return cls(key, node, nullable, str(node.get("description", "")), default, defs)

    @property
    def kind(self) -> str:
        """Which editor: bool, integer, number, enum, path, string, strings, mapping,
        json, object (a group of fields) or objects (a list of sub-forms)."""
        node, typ = self.node, self.node.get("type")
        if "enum" in node:
            return "enum"
        if typ == "boolean":
            return "bool"
        if typ in ("integer", "number"):
            return str(typ)
        if typ == "string":
            if node.get("format") == "path" or _PATHLIKE_KEY.search(self.key):
                return "path"
            return "string"
        if typ == "array":
            items = resolve(node.get("items", {}), self.defs)
            if items.get("type") == "string" and "enum" not in items:
                return "strings"
            if items.get("type") == "object" and items.get("properties"):
                return "objects"
            return "json"
        if typ == "object":
            if node.get("properties"):
                return "object"
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and extra.get("type") in ("number", "integer", "string"):
                return "mapping"
            return "json"
        return "json"

    @property
    def label(self) -> str:
        return field_label(self.key)

    def range_text(self) -> str:
        low, low_in = _bound(self.node, "minimum", "exclusiveMinimum")
        high, high_in = _bound(self.node, "maximum", "exclusiveMaximum")
        if low is None and high is None:
            return ""

        def show(v: float) -> str:
            return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:g}"

        if low is not None and high is not None:
            left = show(low) if low_in else f"above {show(low)}"
            return f"{left} … {show(high)}"
        if low is not None:
            return f"≥ {show(low)}" if low_in else f"> {show(low)}"
        assert high is not None
        return f"≤ {show(high)}" if high_in else f"< {show(high)}"

    def tooltip(self) -> str:
        lines = [self.description] if self.description else []
        extra = []
        if self.default is not MISSING:
            extra.append(f"Default: {_show_default(self.default)}")
        if rng := self.range_text():
            extra.append(f"Range: {rng}")
        if "enum" in self.node:
            extra.append("Choices: " + ", ".join(str(v) for v in self.node["enum"]))
        if self.kind == "strings":
            extra.append("Separate entries with commas or spaces.")
        if self.kind == "mapping":
            extra.append("Entries as KEY=VALUE, separated by commas.")
        if self.kind == "json":
            extra.append("JSON text; empty means none.")
        if extra:
            lines.append("\n".join(extra))
        return "\n\n".join(lines)


# --------------------------------------------------------------------------- nodes
def _problem_text(lines: Sequence[str]) -> str:
    return "\n".join(lines)


class FieldEditor(QWidget):
    """One field: its input widget(s) and, right under them, its problems in red."""

    edited = Signal()

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.setObjectName(f"field_{spec.key}")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        self._row = QHBoxLayout()
        self._row.setSpacing(4)
        outer.addLayout(self._row)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("fieldProblem")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        outer.addWidget(self.error_label)
        self.input: QWidget = self

    def _add_input(self, widget: QWidget, stretch: int = 1) -> None:
        widget.setToolTip(self.spec.tooltip())
        self._row.addWidget(widget, stretch)
        if self.input is self:
            self.input = widget
            self.setFocusProxy(widget)

    # ------------------------------------------------------------------ the node calls
    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def local_problem(self) -> str | None:
        """A problem the text has before the schema can even be asked (not JSON...)."""
        return None

    def targets(self, prefix: JsonPath) -> Iterator[tuple[JsonPath, QWidget]]:
        yield prefix, self

    def local_problems(self, prefix: JsonPath) -> Iterator[tuple[JsonPath, str]]:
        if (problem := self.local_problem()) is not None:
            yield prefix, problem

    def show_problems(self, lines: Sequence[str], colour: str) -> None:
        self.error_label.setText(_problem_text(lines))
        self.error_label.setStyleSheet(f"color: {colour};")
        self.error_label.setVisible(bool(lines))

    def problem_count(self) -> int:
        text = self.error_label.text()
        return len(text.splitlines()) if self.error_label.isVisibleTo(self) and text else 0


class TextEditor(FieldEditor):
    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.line = QLineEdit(self)
        self.line.setClearButtonEnabled(spec.nullable)
        if spec.nullable:
            self.line.setPlaceholderText("not set")
        self.line.textEdited.connect(self.edited)
        self._add_input(self.line)

    def value(self) -> Any:
        text = self.line.text()
        return None if self.spec.nullable and not text.strip() else text

    def set_value(self, value: Any) -> None:
        self.line.setText("" if value is None else str(value))


class PathEditor(TextEditor):
    """A path typed, or chosen with the "…" button (a non-blocking file dialog)."""

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.folder = spec.key.endswith("_dir")
        self.browse = QToolButton(self)
        self.browse.setText("…")
        self.browse.setToolTip(f"Choose a {'folder' if self.folder else 'file'} for {spec.label}")
        self.browse.clicked.connect(self._browse)
        self._row.addWidget(self.browse, 0)

    def _browse(self) -> None:
        dialog = QFileDialog(self, f"{self.spec.label}", self.line.text())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if self.folder:
            dialog.setFileMode(QFileDialog.FileMode.Directory)
            dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        else:
            dialog.setFileMode(QFileDialog.FileMode.AnyFile)
            dialog.setOption(QFileDialog.Option.DontConfirmOverwrite, True)
        dialog.fileSelected.connect(self._chosen)
        dialog.open()

    def _chosen(self, path: str) -> None:
        if path:
            self.line.setText(path)
            self.edited.emit()


class _NumberLine(QLineEdit):
    """Digits only; Up/Down step the value (PageUp/PageDown ten steps), within range."""

    def __init__(self, editor: NumberEditor) -> None:
        super().__init__(editor)
        self._editor = editor

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        steps = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_PageUp: 10,
            Qt.Key.Key_PageDown: -10,
        }.get(Qt.Key(event.key()))
        if steps is None:
            super().keyPressEvent(event)
            return
        self._editor.step(steps)


class NumberEditor(FieldEditor):
    """A line edit, not a spin box: a spin box silently refuses an out-of-range value,
    while the user should see the rule it breaks ("0 is below the minimum 1")."""

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.integer = spec.node.get("type") == "integer"
        self.line = _NumberLine(self)
        pattern = r"-?\d*" if self.integer else r"-?\d*\.?\d*([eE][-+]?\d*)?"
        self.line.setValidator(QRegularExpressionValidator(QRegularExpression(pattern), self.line))
        self.line.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.line.setMaximumWidth(160)
        placeholder = spec.range_text() or ("whole number" if self.integer else "number")
        self.line.setPlaceholderText(("not set; " if spec.nullable else "") + placeholder)
        self.line.textEdited.connect(self.edited)
        self._add_input(self.line, 0)
        if rng := spec.range_text():
            hint = QLabel(rng, self)
            hint.setObjectName("fieldRange")
            hint.setEnabled(False)  # drawn in the muted (disabled) text colour
            hint.setToolTip(spec.tooltip())
            self._row.addWidget(hint, 0)
        self._row.addStretch(1)

    def _parse(self) -> int | float | None:
        text = self.line.text().strip()
        try:
            return int(text) if self.integer else float(text)
        except ValueError:
            return None

    def value(self) -> Any:
        text = self.line.text().strip()
        if not text and self.spec.nullable:
            return None
        parsed = self._parse()
        return text if parsed is None else parsed

    def local_problem(self) -> str | None:
        text = self.line.text().strip()
        if not text and not self.spec.nullable:
            return "a number is needed" if not self.integer else "a whole number is needed"
        if text and self._parse() is None:
            return f"{text!r} is not a number"
        return None

    def set_value(self, value: Any) -> None:
        if value is None:
            self.line.setText("")
        elif isinstance(value, float):
            self.line.setText(_format_number(value))
        else:
            self.line.setText(str(value))

    def step(self, steps: int) -> None:
        current = self._parse()
        if current is None:
            current = self.spec.default if isinstance(self.spec.default, int | float) else 0
        if self.integer:
            new: float = int(current) + steps
        else:
            size = 10 ** math.floor(math.log10(abs(current))) / 10 if current else 0.1
            new = round(float(current) + steps * size, 10)
        low, _ = _bound(self.spec.node, "minimum", "exclusiveMinimum")
        high, _ = _bound(self.spec.node, "maximum", "exclusiveMaximum")
        if low is not None and new < low:
            new = low if "minimum" in self.spec.node else current
        if high is not None and new > high:
            new = high if "maximum" in self.spec.node else current
        self.set_value(int(new) if self.integer else float(new))
        self.edited.emit()


class BoolEditor(FieldEditor):
    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.box = QCheckBox(self)
        self.box.clicked.connect(self.edited)
        self._add_input(self.box)

    def value(self) -> Any:
        return self.box.isChecked()

    def set_value(self, value: Any) -> None:
        self.box.setChecked(bool(value))


class EnumEditor(FieldEditor):
    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.combo = QComboBox(self)
        if spec.nullable:
            self.combo.addItem("(not set)", None)
        for choice in spec.node.get("enum", []):
            self.combo.addItem(str(choice), choice)
        self.combo.activated.connect(self.edited)
        self._add_input(self.combo, 0)
        self._row.addStretch(1)

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        index = next((i for i in range(self.combo.count()) if self.combo.itemData(i) == value), -1)
        if index < 0:  # a value the schema does not list: show it, let validation say so
            self.combo.addItem(str(value), value)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)


class StringListEditor(FieldEditor):
    """Symbols and the like: one line, entries separated by commas or spaces."""

    _SPLIT: Final = re.compile(r"[,;\s]+")

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.line = QLineEdit(self)
        self.line.setPlaceholderText("comma or space separated")
        self.line.textEdited.connect(self.edited)
        self._add_input(self.line)

    def value(self) -> Any:
        items = [s for s in self._SPLIT.split(self.line.text()) if s]
        return None if self.spec.nullable and not items else items

    def set_value(self, value: Any) -> None:
        self.line.setText(", ".join(str(v) for v in value or []))


class MappingEditor(FieldEditor):
    """A small map (symbol → rate): ``KEY=VALUE`` entries separated by commas."""

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        extra = spec.node.get("additionalProperties", {})
        self.value_type = str(extra.get("type", "string"))
        self.line = QLineEdit(self)
        self.line.setPlaceholderText("none; e.g. EURUSD=500, GBPUSD=250")
        self.line.textEdited.connect(self.edited)
        self._add_input(self.line)

    def _entries(self) -> tuple[dict[str, Any], str | None]:
        out: dict[str, Any] = {}
        for raw in re.split(r"[,;\n]+", self.line.text()):
            entry = raw.strip()
            if not entry:
                continue
            key, sep, text = entry.partition("=")
            key, text = key.strip(), text.strip()
            if not sep or not key:
                return out, f"{entry!r} is not KEY=VALUE"
            if key in out:
                return out, f"{key} is listed twice"
            if self.value_type in ("number", "integer"):
                try:
                    out[key] = int(text) if self.value_type == "integer" else float(text)
                except ValueError:
                    return out, f"{key}: {text!r} is not a number"
            else:
                out[key] = text
        return out, None

    def value(self) -> Any:
        return self._entries()[0]

    def local_problem(self) -> str | None:
        return self._entries()[1]

    def set_value(self, value: Any) -> None:
        items = (value or {}).items()
        self.line.setText(
            ", ".join(f"{k}={_format_number(v) if isinstance(v, float) else v}" for k, v in items)
        )


class JsonEditor(FieldEditor):
    """Anything without a simpler editor (alert rules, TLS pins): JSON text, checked as
    it is typed; the schema's own rules come back from validation like any field's."""

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.text = QPlainTextEdit(self)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setTabChangesFocus(True)
        self.text.setPlaceholderText("empty: not set" if spec.nullable else "empty: none")
        lines = 6 if spec.node.get("type") == "array" else 3
        self.text.setFixedHeight(self.text.fontMetrics().lineSpacing() * lines + 12)
        self._loading = False
        self.text.textChanged.connect(self._changed)
        self._add_input(self.text)

    def _changed(self) -> None:
        if not self._loading:
            self.edited.emit()

    def _empty(self) -> Any:
        if self.spec.nullable:
            return None
        return [] if self.spec.node.get("type") == "array" else {}

    def _parsed(self) -> tuple[Any, str | None]:
        text = self.text.toPlainText().strip()
        if not text:
            return self._empty(), None
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"

    def value(self) -> Any:
        return self._parsed()[0]

    def local_problem(self) -> str | None:
        return self._parsed()[1]

    def set_value(self, value: Any) -> None:
        self._loading = True
        try:
            empty = value is None or value in ({}, [])
            self.text.setPlainText("" if empty else json.dumps(value, indent=2))
        finally:
            self._loading = False


_EDITORS: Final[dict[str, type[FieldEditor]]] = {
    "bool": BoolEditor,
    "integer": NumberEditor,
    "number": NumberEditor,
    "enum": EnumEditor,
    "path": PathEditor,
    "string": TextEditor,
    "strings": StringListEditor,
    "mapping": MappingEditor,
    "json": JsonEditor,
}


def make_editor(spec: FieldSpec, parent: QWidget | None = None) -> FieldEditor:
    return _EDITORS.get(spec.kind, JsonEditor)(spec, parent)


class ObjectForm(QWidget):
    """The fields of one object (a section, a group like ``backoff``, one terminal)."""

    edited = Signal()

    def __init__(
        self,
        node: Schema,
        defs: Schema,
        defaults: Any = None,
        parent: QWidget | None = None,
        *,
        only: Sequence[str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.node = node
        self.defaults = defaults if isinstance(defaults, dict) else {}
        self.children_by_key: dict[str, FieldEditor | ObjectForm | ObjectListEditor] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("formProblem")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        outer.addWidget(self.error_label)
        self.layout_form = QFormLayout()
        self.layout_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.layout_form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        outer.addLayout(self.layout_form)
        for key, raw in node.get("properties", {}).items():
            if only is not None and key not in only:
                continue
            spec = FieldSpec.of(key, raw, defs, self.defaults.get(key, MISSING))
            self._add(spec, defs)

    def _add(self, spec: FieldSpec, defs: Schema) -> None:
        child: FieldEditor | ObjectForm | ObjectListEditor
        if spec.kind == "object":
            child = ObjectForm(spec.node, defs, self.defaults.get(spec.key), self)
            box = QGroupBox(spec.label, self)
            box.setToolTip(spec.tooltip())
            inner = QVBoxLayout(box)
            inner.addWidget(child)
            self.layout_form.addRow(box)
        elif spec.kind == "objects":
            child = ObjectListEditor(spec, self.defaults.get(spec.key), self)
            self.layout_form.addRow(child)
        else:
            child = make_editor(spec, self)
            label = QLabel(spec.label, self)
            label.setToolTip(spec.tooltip())
            label.setBuddy(child.input)
            self.layout_form.addRow(label, child)
        child.edited.connect(self.edited)
        self.children_by_key[spec.key] = child

    def value(self) -> dict[str, Any]:
        return {key: child.value() for key, child in self.children_by_key.items()}

    def set_value(self, value: Any) -> None:
        doc = value if isinstance(value, dict) else {}
        for key, child in self.children_by_key.items():
            if key in doc:
                child.set_value(doc[key])

    def targets(self, prefix: JsonPath) -> Iterator[tuple[JsonPath, QWidget]]:
        yield prefix, self
        for key, child in self.children_by_key.items():
            yield from child.targets((*prefix, key))

    def local_problems(self, prefix: JsonPath) -> Iterator[tuple[JsonPath, str]]:
        for key, child in self.children_by_key.items():
            yield from child.local_problems((*prefix, key))

    def show_problems(self, lines: Sequence[str], colour: str) -> None:
        self.error_label.setText(_problem_text(lines))
        self.error_label.setStyleSheet(f"color: {colour};")
        self.error_label.setVisible(bool(lines))

    def problem_count(self) -> int:
        own = self.error_label.text()
        n = len(own.splitlines()) if self.error_label.isVisibleTo(self) and own else 0
        return n + sum(child.problem_count() for child in self.children_by_key.values())


class ObjectListEditor(QWidget):
    """A list of objects (the terminals): the items on the left, the selected one's
    sub-form on the right, Add and Remove below the list."""

    edited = Signal()

    def __init__(self, spec: FieldSpec, defaults: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.item_node = resolve(spec.node.get("items", {}), spec.defs)
        self.min_items = int(spec.node.get("minItems", 0))
        default_items = defaults if isinstance(defaults, list) else []
        self.item_default: dict[str, Any] = (
            copy.deepcopy(default_items[0])
            if default_items and isinstance(default_items[0], dict)
            else {}
        )
        self.forms: list[ObjectForm] = []
        self._colour = ""

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("listProblem")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        outer.addWidget(self.error_label)
        body = QHBoxLayout()
        outer.addLayout(body, 1)

        left = QVBoxLayout()
        self.list = QListWidget(self)
        self.list.setToolTip(spec.tooltip())
        self.list.setMaximumWidth(220)
        left.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        item_name = spec.label.rstrip("s").lower() or "item"
        self.add_button = QPushButton(f"Add {item_name}", self)
        self.add_button.setToolTip(f"Add a {item_name} with the default settings (Ctrl+Ins)")
        self.add_button.setShortcut("Ctrl+Ins")
        self.add_button.setAutoDefault(False)
        self.add_button.clicked.connect(self.add_item)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip(
            f"Remove the selected {item_name} (Ctrl+Del); Cancel undoes it"
        )
        self.remove_button.setShortcut("Ctrl+Del")
        self.remove_button.setAutoDefault(False)
        self.remove_button.clicked.connect(self.remove_current)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        left.addLayout(buttons)
        body.addLayout(left)

        self.stack = QStackedWidget(self)
        body.addWidget(self.stack, 1)
        self.list.currentRowChanged.connect(self._row_changed)
        self.stack.currentChanged.connect(self._stack_changed)

    # ------------------------------------------------------------------ items
    def _row_changed(self, row: int) -> None:
        if 0 <= row < self.stack.count():
            self.stack.setCurrentIndex(row)

    def _stack_changed(self, index: int) -> None:
        if self.list.currentRow() != index:
            self.list.setCurrentRow(index)

    def _new_form(self, value: dict[str, Any]) -> ObjectForm:
        form = ObjectForm(self.item_node, self.spec.defs, self.item_default, self.stack)
        form.set_value(value)
        form.edited.connect(self._item_edited)
        scroll = _scrolling(form)
        self.stack.addWidget(scroll)
        self.forms.append(form)
        self.list.addItem("")
        return form

    def _item_edited(self) -> None:
        self._relabel()
        self.edited.emit()

    def _relabel(self) -> None:
        for i, form in enumerate(self.forms):
            name = form.value().get("name") if "name" in form.children_by_key else None
            text = str(name) if name else f"#{i + 1}"
            item = self.list.item(i)
            if item is not None and item.text() != text:
                item.setText(text)
        self.remove_button.setEnabled(len(self.forms) > self.min_items)

    def _clear(self) -> None:
        while (page := self.stack.widget(0)) is not None:
            self.stack.removeWidget(page)
            page.deleteLater()
        self.list.clear()
        self.forms.clear()

    def add_item(self) -> None:
        value = copy.deepcopy(self.item_default)
        names = {f.value().get("name") for f in self.forms}
        if isinstance(value.get("name"), str):
            base, n = value["name"], 2
            while value["name"] in names:
                value["name"] = f"{base}-{n}"
                n += 1
        self._new_form(value)
        self._relabel()
        self.list.setCurrentRow(len(self.forms) - 1)
        self.edited.emit()

    def remove_current(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self.forms) or len(self.forms) <= self.min_items:
            return
        values = [f.value() for i, f in enumerate(self.forms) if i != row]
        self.set_value(values)
        self.list.setCurrentRow(min(row, len(self.forms) - 1))
        self.edited.emit()

    # ------------------------------------------------------------------ the node calls
    def value(self) -> list[dict[str, Any]]:
        return [form.value() for form in self.forms]

    def set_value(self, value: Any) -> None:
        items = [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
        current = max(self.list.currentRow(), 0)
        if len(items) != len(self.forms):
            self._clear()
            for item in items:
                self._new_form(item)
        else:
            for form, item in zip(self.forms, items, strict=True):
                form.set_value(item)
        self._relabel()
        if self.forms:
            self.list.setCurrentRow(min(current, len(self.forms) - 1))

    def targets(self, prefix: JsonPath) -> Iterator[tuple[JsonPath, QWidget]]:
        yield prefix, self
        for i, form in enumerate(self.forms):
            yield from form.targets((*prefix, str(i)))

    def local_problems(self, prefix: JsonPath) -> Iterator[tuple[JsonPath, str]]:
        for i, form in enumerate(self.forms):
            yield from form.local_problems((*prefix, str(i)))

    def show_problems(self, lines: Sequence[str], colour: str) -> None:
        self._colour = colour
        self.error_label.setText(_problem_text(lines))
        self.error_label.setStyleSheet(f"color: {colour};")
        self.error_label.setVisible(bool(lines))

    def mark_items(self) -> None:
        """Items with a problem are drawn in the error colour (after routing)."""
        for i, form in enumerate(self.forms):
            item = self.list.item(i)
            if item is None:
                continue
            if form.problem_count() > 0 and self._colour:
                item.setForeground(QColor(self._colour))
            else:
                item.setData(Qt.ItemDataRole.ForegroundRole, None)

    def problem_count(self) -> int:
        own = self.error_label.text()
        n = len(own.splitlines()) if self.error_label.isVisibleTo(self) and own else 0
        return n + sum(form.problem_count() for form in self.forms)


def _scrolling(widget: QWidget) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(widget)
    # The page's own background shows through, as for any other tab content.
    scroll.setBackgroundRole(QPalette.ColorRole.Window)
    scroll.viewport().setAutoFillBackground(False)
    widget.setAutoFillBackground(False)
    return scroll


# --------------------------------------------------------------------------- the form
Node = FieldEditor | ObjectForm | ObjectListEditor


@dataclass(slots=True)
class _Section:
    key: str | None  # None: the top-level scalars, gathered in one "General" tab
    node: Node
    page: QWidget
    title: str


class SchemaForm(QTabWidget):
    """The whole document, one tab per top-level section, each with "Restore defaults".

    Problems come in as the core phrases them (``pool.size: 0 is below the minimum 1``);
    each goes under the editor with the longest path that starts it, and the tab of a
    section with problems shows how many.
    """

    edited = Signal()

    def __init__(
        self, schema: Schema, defaults: dict[str, Any], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsSections")
        self.defs: Schema = schema.get("$defs", {})
        self.defaults = defaults
        self.sections: list[_Section] = []
        self._colour = "#e5484d"
        general: list[str] = []
        for key, raw in schema.get("properties", {}).items():
            spec = FieldSpec.of(key, raw, self.defs, defaults.get(key, MISSING))
            node: Node
            if spec.kind == "object":
                node = ObjectForm(spec.node, self.defs, defaults.get(key))
            elif spec.kind == "objects":
                node = ObjectListEditor(spec, defaults.get(key))
            else:
                general.append(key)
                continue
            self._add_section(key, spec.label, spec.description, node)
        if general:
            node = ObjectForm(schema, self.defs, defaults, only=general)
            self._add_section(None, "General", "Settings outside any section.", node)

    def _add_section(self, key: str | None, title: str, description: str, node: Node) -> None:
        page = QWidget(self)
        page.setObjectName(f"section_{key or 'general'}")
        layout = QVBoxLayout(page)
        if isinstance(node, ObjectForm):
            layout.addWidget(_scrolling(node), 1)
        else:
            layout.addWidget(node, 1)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        restore = QPushButton("Restore defaults", page)
        restore.setObjectName("restoreDefaults")
        restore.setAutoDefault(False)
        restore.setToolTip(
            f"Put every {title} setting back to its default (nothing is saved until Apply)"
        )
        section = _Section(key, node, page, title)
        restore.clicked.connect(lambda: self.restore_defaults(section))
        bottom.addWidget(restore)
        layout.addLayout(bottom)
        node.edited.connect(self.edited)
        index = self.addTab(page, title)
        self.setTabToolTip(index, description)
        self.sections.append(section)

    # ------------------------------------------------------------------ document
    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for section in self.sections:
            value = section.node.value()
            if section.key is None:
                assert isinstance(value, dict)
                doc.update(value)
            else:
                doc[section.key] = value
        return doc

    def set_document(self, doc: dict[str, Any]) -> None:
        for section in self.sections:
            if section.key is None:
                section.node.set_value(doc)
            elif section.key in doc:
                section.node.set_value(doc[section.key])

    def restore_defaults(self, section: _Section) -> None:
        if section.key is None:
            section.node.set_value(self.defaults)
        elif section.key in self.defaults:
            section.node.set_value(copy.deepcopy(self.defaults[section.key]))
        self.edited.emit()

    def section(self, key: str) -> _Section:
        return next(s for s in self.sections if s.key == key)

    # ------------------------------------------------------------------ problems
    def _targets(self) -> list[tuple[JsonPath, QWidget]]:
        out: list[tuple[JsonPath, QWidget]] = []
        for section in self.sections:
            if section.key is None:
                out.extend((p, t) for p, t in section.node.targets(()) if p)
            else:
                out.extend(section.node.targets((section.key,)))
        return out

    def local_problems(self) -> list[tuple[JsonPath, str]]:
        out: list[tuple[JsonPath, str]] = []
        for section in self.sections:
            prefix: JsonPath = () if section.key is None else (section.key,)
            out.extend(section.node.local_problems(prefix))
        return out

    def editor(self, path: str) -> FieldEditor:
        """The editor of a dotted settings path (``pool.size``, ``terminals.0.symbols``)."""
        wanted = tuple(path.split("."))
        for target_path, target in self._targets():
            if target_path == wanted and isinstance(target, FieldEditor):
                return target
        raise KeyError(path)

    def target_for(self, path: JsonPath) -> tuple[JsonPath, QWidget] | None:
        best: tuple[JsonPath, QWidget] | None = None
        for target_path, target in self._targets():
            if path[: len(target_path)] == target_path and (
                best is None or len(target_path) > len(best[0])
            ):
                best = (target_path, target)
        return best

    def show_problems(self, lines: Sequence[str], colour: str) -> list[tuple[str, str]]:
        """Put each problem under its field; the returned ``(path, line)`` pairs are all
        problems for a summary, the form's own parse errors first (they hide what the
        schema says about the same field: it was shown the text, not the intent)."""
        self._colour = colour
        targets = self._targets()
        routed: dict[int, list[str]] = {}
        summary: list[tuple[str, str]] = []
        local = self.local_problems()
        for where, message in local:
            found = self.target_for(where)
            if found is not None:
                routed.setdefault(id(found[1]), []).append(message)
            summary.append((".".join(where), f"{'.'.join(where)}: {message}"))
        for line in lines:
            path_text, _, rest = line.partition(": ")
            path: JsonPath = () if path_text == "(top level)" else tuple(path_text.split("."))
            if any(path[: len(lp)] == lp for lp, _ in local):
                continue
            found = self.target_for(path) if path else None
            if found is not None:
                target_path, target = found
                below = ".".join(path[len(target_path) :])
                routed.setdefault(id(target), []).append(f"{below}: {rest}" if below else rest)
            summary.append((path_text if found is not None else "", line))
        for _, target in targets:
            show = getattr(target, "show_problems", None)
            if show is not None:
                show(routed.get(id(target), []), colour)
        for _, target in targets:
            if isinstance(target, ObjectListEditor):
                target.mark_items()
        for index, section in enumerate(self.sections):
            count = section.node.problem_count()
            self.setTabText(index, f"{section.title} ({count})" if count else section.title)
            self.tabBar().setTabTextColor(index, QColor(colour) if count else QColor())
        return summary

    # ------------------------------------------------------------------ navigation
    def reveal(self, path: str) -> None:
        """Show and focus the editor of ``path`` (switch tab, select the list item)."""
        found = self.target_for(tuple(path.split("."))) if path else None
        if found is None:
            return
        widget = found[1]
        child: QWidget = widget
        parent = widget.parentWidget()
        while parent is not None and child is not self:
            if isinstance(parent, QStackedWidget):
                owner = parent.parentWidget()
                if isinstance(owner, QTabWidget):
                    owner.setCurrentWidget(child)
                else:
                    parent.setCurrentWidget(child)
            child, parent = parent, parent.parentWidget()
        parent = widget.parentWidget()
        while parent is not None:
            if isinstance(parent, QScrollArea):
                parent.ensureWidgetVisible(widget)
            parent = parent.parentWidget()
        widget.setFocus(Qt.FocusReason.OtherFocusReason)


def summary_html(problems: Sequence[tuple[str, str]], colour: str, limit: int = 6) -> str:
    """The problems as links (``path``) a click reveals; text escaped, never markup."""
    link = f'style="color: {html.escape(colour, quote=True)};"'
    shown = [
        f'<a href="{html.escape(path, quote=True)}" {link}>{html.escape(line)}</a>'
        if path
        else html.escape(line)
        for path, line in problems[:limit]
    ]
    if len(problems) > limit:
        shown.append(f"… and {len(problems) - limit} more")
    head = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    return f"<b>{head}; nothing can be saved until fixed:</b><br>" + "<br>".join(shown)


__all__ = [
    "MISSING",
    "FieldEditor",
    "FieldSpec",
    "ObjectForm",
    "ObjectListEditor",
    "SchemaForm",
    "field_label",
    "make_editor",
    "resolve",
    "summary_html",
]
