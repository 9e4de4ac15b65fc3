// The side panel of the pages that edit hips with a BoxTool (labelling and
// adjudication, templates/annotate/workspace.html): the hip list with a class
// chooser and a remove button per hip, the hint under it, the exclusion
// chooser, the problems that keep the work from being saved, the class legend
// and the key table of the help overlay.

import { el } from "../lib/dom.js";
import { CLASSES, CLASS_BY_VALUE, EXCLUSION_BY_VALUE, KEYS, SIDES, classColor } from "./vocabulary.js";

// The key table of the help overlay.
export function renderHelp(table, keys = KEYS) {
  table.replaceChildren(...keys.map(([key, what]) => el("tr", {}, el("td", {}, key), el("td", {}, what))));
}

// The six classes with their keys; ``active`` is the selected box's class.
export function renderClassLegend(list, { active = null, onPick = null } = {}) {
  list.replaceChildren(
    ...CLASSES.map((cls) =>
      el(
        "li",
        {
          class: cls.value === active ? "active" : "",
          "data-class": cls.value,
          title: onPick ? `Set the selected hip's class (${cls.key})` : null,
          style: onPick ? "cursor: pointer" : null,
          onclick: onPick ? () => onPick(cls.value) : null,
        },
        el("kbd", {}, cls.key),
        el("span", { class: "swatch", style: `--c: ${cls.color}` }),
        el("span", {}, cls.label),
      ),
    ),
  );
}

export function classSelect(value, onChange) {
  const select = el(
    "select",
    { "aria-label": "Class", onchange: () => { onChange(select.value || null); select.blur(); } },
    el("option", { value: "" }, "— class (1–6) —"),
    CLASSES.map((cls) => el("option", { value: cls.value, selected: cls.value === value }, `${cls.key} ${cls.label}`)),
  );
  if (!value) select.classList.add("missing");
  return select;
}

// The patient's right first.
function bySide(hips) {
  return [...hips].sort((a, b) => (a.side === b.side ? 0 : a.side === "right" ? -1 : 1));
}

// One panel over one tool. ``list`` (ul), ``empty`` (the hint under it, whose
// text in the template is the hint while there is no hip), ``excluded`` (the
// exclusion select), ``problems``; ``excludedHint`` follows the exclusion's
// words while the image is excluded.
export class HipPanel {
  constructor(tool, { list, empty, excluded, problems, readOnly = false, excludedHint = "" }) {
    this.tool = tool;
    this.list = list;
    this.empty = empty;
    this.excluded = excluded;
    this.problems = problems;
    this.readOnly = readOnly;
    this.emptyHint = empty.textContent.trim();
    this.excludedHint = excludedHint;
    excluded.addEventListener("change", () => {
      tool.setExcluded(excluded.value);
      excluded.blur();
    });
  }

  _row(hip, selected) {
    const tool = this.tool;
    const model = hip.source === "model";
    return el(
      "li",
      {
        class: hip === selected ? "selected" : "",
        "data-side": hip.side,
        "data-class": hip.hip_class || "",
        "data-source": model ? "model" : "manual",
        title: model ? "Accepted from a model proposal" : null,
        onclick: (event) => {
          if (event.target.closest("select, button")) return;
          tool.select(hip.key);
        },
      },
      el("span", { class: "swatch", style: `--c: ${classColor(hip.hip_class)}${model ? "; border-style: dashed" : ""}` }),
      el("span", { class: "side", title: `The patient's ${hip.side} hip` }, SIDES[hip.side]),
      this.readOnly
        ? el("span", {}, CLASS_BY_VALUE[hip.hip_class]?.label || "—")
        : classSelect(hip.hip_class, (value) => {
            tool.select(hip.key);
            if (value) tool.setClass(value, hip.key);
          }),
      this.readOnly
        ? null
        : el(
            "button",
            {
              type: "button",
              class: "remove",
              title: `Remove the ${hip.side} hip (Delete)`,
              "aria-label": `Remove the ${hip.side} hip`,
              onclick: () => tool.remove(hip.key),
            },
            "×",
          ),
    );
  }

  // Redraw from the tool's state; ``notices`` join the tool's problems.
  render({ notices = [] } = {}) {
    const tool = this.tool;
    const selected = tool.selected;
    const hips = bySide(tool.hips);
    this.list.replaceChildren(...hips.map((hip) => this._row(hip, selected)));
    this.empty.hidden = hips.length > 0;
    if (tool.excluded) {
      this.empty.hidden = false;
      const words = EXCLUSION_BY_VALUE[tool.excluded]?.label || tool.excluded;
      this.empty.textContent = `Excluded: ${words}.${this.excludedHint ? ` ${this.excludedHint}` : ""}`;
    } else {
      this.empty.textContent = this.emptyHint;
    }
    if (this.excluded.value !== tool.excluded) this.excluded.value = tool.excluded;
    const problems = [...tool.problems(), ...notices];
    this.problems.textContent = problems.join(" ");
    this.problems.hidden = problems.length === 0;
  }
}
