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
the routing works at any depth. The schema walking is in :mod:`ui.dialogs.schema_fields`,
the editor of one field in :mod:`ui.dialogs.field_editors`; this module assembles them
into groups, lists of sub-forms and the tabs of sections.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui.dialogs.field_editors import FieldEditor, make_editor, problem_text
from ui.dialogs.schema_fields import (
    MISSING,
    FieldSpec,
    JsonPath,
    Schema,
    field_label,
    resolve,
)


# --------------------------------------------------------------------------- nodes
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
        kind = node.get("properties", {}).get("kind", {})
        #: kind → the fields of that kind only (a terminal's seed, path, host ...).
        self.fields_by_kind: dict[str, list[str]] = kind.get("fields_by_kind", {})
        if self.fields_by_kind and "kind" in self.children_by_key:
            self.children_by_key["kind"].edited.connect(self.show_kind_fields)
            self.show_kind_fields()

    def show_kind_fields(self) -> None:
        """Only the fields of the selected kind are shown; the others keep their values
        (switching back shows them as they were) but do not clutter the form."""
        if not self.fields_by_kind:
            return
        kind = self.children_by_key["kind"].value()
        specific = {f for fields in self.fields_by_kind.values() for f in fields}
        mine = set(self.fields_by_kind.get(str(kind), ()))
        for key, child in self.children_by_key.items():
            if key in specific:
                self.layout_form.setRowVisible(child, key in mine)

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
        self.show_kind_fields()

    def targets(self, prefix: JsonPath) -> Iterator[tuple[JsonPath, QWidget]]:
        yield prefix, self
        for key, child in self.children_by_key.items():
            yield from child.targets((*prefix, key))

    def local_problems(self, prefix: JsonPath) -> Iterator[tuple[JsonPath, str]]:
        for key, child in self.children_by_key.items():
            yield from child.local_problems((*prefix, key))

    def show_problems(self, lines: Sequence[str], colour: str) -> None:
        self.error_label.setText(problem_text(lines))
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
        self.error_label.setText(problem_text(lines))
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
