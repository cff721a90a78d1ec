"""The settings form's editor of one field, chosen by the field's kind: checkbox,
number, choice, text, path with a browse button, symbol list, key=value map, JSON text.

Each answers the node calls of :mod:`ui.dialogs.schema_form` (``value``, ``set_value``,
``targets``, ``local_problems``, ``show_problems``) and shows its problems in red right
under its input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, Final

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QFontDatabase, QKeyEvent, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.dialogs.schema_fields import FieldSpec, JsonPath, bound, format_number


def problem_text(lines: Sequence[str]) -> str:
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
        self.error_label.setText(problem_text(lines))
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
        # The range is the hint beside the field (and in the tooltip), not the placeholder
        # too: "not set; ≥ 1 ≥ 1" read as noise.
        self.line.setPlaceholderText(
            "not set" if spec.nullable else ("whole number" if self.integer else "number")
        )
        self.line.setToolTip(spec.tooltip())
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
            self.line.setText(format_number(value))
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
        low, _ = bound(self.spec.node, "minimum", "exclusiveMinimum")
        high, _ = bound(self.spec.node, "maximum", "exclusiveMaximum")
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
            ", ".join(f"{k}={format_number(v) if isinstance(v, float) else v}" for k, v in items)
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


__all__ = [
    "BoolEditor",
    "EnumEditor",
    "FieldEditor",
    "JsonEditor",
    "MappingEditor",
    "NumberEditor",
    "PathEditor",
    "StringListEditor",
    "TextEditor",
    "make_editor",
    "problem_text",
]
