// The prompt template change form of the admin, made comfortable for a curator (progressive enhancement: without
// this file the JSON textarea is the editor, and the server never depends on it):
// - the `variables` JSON becomes an editable table of rows, written back into the (hidden) textarea on each edit,
//   so the form still posts the same JSON and the server validates it as before;
// - errors land on the row at fault: the server's ("variables.2.max_length", from the page's json_script and
//   from each live check) and cheap checks made here (empty or duplicate name, min above max);
// - placeholders used in the prompts but not declared are offered as variables, unused variables are flagged;
// - a live panel (debounced POST to the admin's preview-draft endpoint) shows the exact prompt for sample inputs,
//   its token count, and the diff of every content field against the version in production.
// Untrusted text (prompts, inputs, model output, model names) only ever goes in through textContent.
(function () {
  "use strict";
  var area = document.getElementById("id_variables");
  if (!area || area.tagName !== "TEXTAREA" || !area.form) return;
  var form = area.form;
  var panel = document.getElementById("te-panel");
  var layout = document.getElementById("te-layout");
  var CONTENT = ["system_prompt", "user_template", "variables", "default_params", "length_variable",
    "output_format", "model_alias", "checks"];
  var PROMPTS = ["system_prompt", "user_template"];
  var PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;  // as generation/content/prompts.py finds them
  var NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
  var TYPES = ["text", "number", "choice"];
  var COLUMNS = ["Name", "Type", "Required", "Default", "Limits", "Choices", "Multiline", "Label", "Help", ""];
  var DEBOUNCE_MS = 400;

  var rows = [];          // {base: the variable as loaded (unknown keys kept), tr, msgs, inputs: {...}}
  var serverRows = {};    // row index -> {key ("" for the row) -> [messages]}, from the last server check
  var samples = {};       // sample inputs the curator typed, by variable name
  var sampleSignature = null;
  var serial = 0;
  var rowMode = false;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (attrs[key] === true) node.setAttribute(key, "");
      else if (attrs[key] !== false && attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, attrs[key]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function readJson(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function fieldValue(name) {
    var field = form.elements.namedItem(name);
    return field && typeof field.value === "string" ? field.value : "";
  }

  function parseVariables(text) {
    if (!text.trim()) return [];
    try {
      var value = JSON.parse(text);
      if (Array.isArray(value) && value.every(function (v) { return v && typeof v === "object" && !Array.isArray(v); })) {
        return value;
      }
    } catch (e) { /* not JSON: the textarea stays the editor */ }
    return null;
  }

  // --- the editor's own elements ----------------------------------------------------------------------------
  var editor = el("div", {"class": "te-editor", id: "te-editor"});
  var notice = el("p", {"class": "te-notice", id: "te-notice", hidden: true});
  var tableWrap = el("div", {"class": "te-table-wrap"});
  var table = el("table", {"class": "te-variables", id: "te-variables"});
  var caption = el("caption", {}, "Variables: the inputs of the template");
  var thead = el("thead");
  var headRow = el("tr");
  COLUMNS.forEach(function (label) {
    headRow.appendChild(label ? el("th", {scope: "col"}, label) : el("td"));
  });
  thead.appendChild(headRow);
  var tbody = el("tbody");
  table.appendChild(caption);
  table.appendChild(thead);
  table.appendChild(tbody);
  tableWrap.appendChild(table);
  var tools = el("div", {"class": "te-tools"});
  var addButton = el("button", {type: "button", "class": "button", id: "te-add"}, "Add a variable");
  var modeButton = el("button", {type: "button", "class": "button", id: "te-mode"}, "Edit as JSON");
  tools.appendChild(addButton);
  tools.appendChild(modeButton);
  var suggestions = el("div", {"class": "te-suggestions", id: "te-suggestions", "aria-live": "polite"});
  editor.appendChild(notice);
  editor.appendChild(tableWrap);
  editor.appendChild(tools);
  editor.appendChild(suggestions);
  (area.closest(".flex-container") || area).insertAdjacentElement("afterend", editor);

  // --- rows -------------------------------------------------------------------------------------------------
  function input(attrs, label) {
    var node = el(attrs.tag || "input", Object.assign({"aria-label": label}, attrs, {tag: null}));
    node.setAttribute("data-label", label);
    return node;
  }

  function asText(value) {
    return value === undefined || value === null ? "" : String(value);
  }

  function makeRow(spec) {
    var id = "te-row-" + (++serial);
    var tr = el("tr", {"class": "te-row", id: id});
    var msgs = el("tr", {"class": "te-row-messages", hidden: true});
    var msgCell = el("td", {colspan: COLUMNS.length});
    var errors = el("ul", {"class": "errorlist", id: id + "-errors"});
    var note = el("p", {"class": "te-unused", id: id + "-note", hidden: true});
    msgCell.appendChild(errors);
    msgCell.appendChild(note);
    msgs.appendChild(msgCell);
    var type = input({tag: "select", "data-key": "type"}, "Type");
    TYPES.forEach(function (t) { type.appendChild(el("option", {value: t}, t)); });
    var inputs = {
      name: input({type: "text", "data-key": "name", size: 14, autocomplete: "off", spellcheck: "false"}, "Name"),
      type: type,
      required: input({type: "checkbox", "data-key": "required"}, "Required"),
      "default": input({type: "text", "data-key": "default", size: 12}, "Default"),
      max_length: input({type: "number", "data-key": "max_length", min: 1, step: 1, placeholder: "max length"}, "Max length"),
      min: input({type: "number", "data-key": "min", step: "any", placeholder: "min"}, "Minimum"),
      max: input({type: "number", "data-key": "max", step: "any", placeholder: "max"}, "Maximum"),
      choices: input({tag: "textarea", "data-key": "choices", rows: 2, cols: 14, placeholder: "one per line"}, "Choices"),
      multiline: input({type: "checkbox", "data-key": "multiline"}, "Multiline"),
      label: input({type: "text", "data-key": "label", size: 12}, "Label"),
      help: input({type: "text", "data-key": "help", size: 16}, "Help")
    };
    var remove = el("button", {type: "button", "class": "te-remove"}, "Remove");
    var cells = [["name"], ["type"], ["required"], ["default"], ["max_length", "min", "max"], ["choices"], ["multiline"],
      ["label"], ["help"]];
    cells.forEach(function (keys) {
      var td = el("td", {"class": "te-cell-" + keys[0]});
      keys.forEach(function (key) { td.appendChild(inputs[key]); });
      tr.appendChild(td);
    });
    var last = el("td");
    last.appendChild(remove);
    tr.appendChild(last);

    inputs.name.value = asText(spec.name);
    type.value = TYPES.indexOf(spec.type) >= 0 ? spec.type : "text";
    inputs.required.checked = !!spec.required;
    inputs["default"].value = asText(spec["default"]);
    inputs.max_length.value = asText(spec.max_length);
    inputs.min.value = asText(spec.min);
    inputs.max.value = asText(spec.max);
    inputs.choices.value = Array.isArray(spec.choices) ? spec.choices.join("\n") : "";
    inputs.multiline.checked = !!spec.multiline;
    inputs.label.value = asText(spec.label);
    inputs.help.value = asText(spec.help);

    var row = {base: spec, tr: tr, msgs: msgs, errors: errors, note: note, inputs: inputs, remove: remove, id: id};
    remove.addEventListener("click", function () {
      var at = rows.indexOf(row);
      rows.splice(at, 1);
      tr.remove();
      msgs.remove();
      serverRows = {};  // the indices they name have moved
      changed(true);
      var next = rows[Math.min(at, rows.length - 1)];
      (next ? next.inputs.name : addButton).focus();
    });
    showForType(row);
    return row;
  }

  function showForType(row) {
    var kind = row.inputs.type.value;
    row.inputs.max_length.hidden = kind === "number";
    row.inputs.min.hidden = row.inputs.max.hidden = kind !== "number";
    row.inputs.choices.hidden = kind !== "choice";
    row.inputs.multiline.hidden = kind !== "text";
  }

  function label(row, index) {
    var name = row.inputs.name.value.trim() || "variable " + (index + 1);
    Object.keys(row.inputs).forEach(function (key) {
      row.inputs[key].setAttribute("aria-label", row.inputs[key].getAttribute("data-label") + " of " + name);
    });
    row.remove.setAttribute("aria-label", "Remove " + name);
  }

  function numberOrText(text) {
    var value = Number(text);
    return text.trim() !== "" && isFinite(value) ? value : text;
  }

  // The row as a variable: the keys the row shows for its type are rewritten, the others kept as loaded, and an
  // empty value keeps a loaded empty one (false, "") so that an untouched template posts what it loaded.
  function toVariable(row) {
    var out = Object.assign({}, row.base);
    var i = row.inputs;
    var kind = i.type.value;
    function put(key, value, empty) {
      if (!empty) out[key] = value;
      else if (key in row.base && (row.base[key] === "" || row.base[key] === false || row.base[key] === null)) {
        out[key] = row.base[key];
      } else delete out[key];
    }
    out.name = i.name.value.trim();
    if (!("type" in row.base) && kind === "text") delete out.type; else out.type = kind;
    put("required", true, !i.required.checked);
    var dflt = i["default"].value;
    put("default", kind === "number" ? numberOrText(dflt) : dflt, dflt.trim() === "");
    if (kind !== "number") put("max_length", numberOrText(i.max_length.value), i.max_length.value === "");
    if (kind === "number") {
      put("min", numberOrText(i.min.value), i.min.value === "");
      put("max", numberOrText(i.max.value), i.max.value === "");
    }
    if (kind === "choice") {
      var choices = i.choices.value.split("\n").map(function (c) { return c.trim(); }).filter(Boolean);
      put("choices", choices, !choices.length);
    }
    if (kind === "text") put("multiline", true, !i.multiline.checked);
    put("label", i.label.value, i.label.value.trim() === "");
    put("help", i.help.value, i.help.value.trim() === "");
    return out;
  }

  function variables() {
    return rowMode ? rows.map(toVariable) : (parseVariables(area.value) || []);
  }

  function addRow(spec, focus) {
    var row = makeRow(spec);
    rows.push(row);
    tbody.appendChild(row.tr);
    tbody.appendChild(row.msgs);
    if (focus) row.inputs.name.focus();
    return row;
  }

  function loadRows(list) {
    rows = [];
    tbody.textContent = "";
    list.forEach(function (spec) { addRow(spec, false); });
  }

  // --- checks shown on rows ---------------------------------------------------------------------------------
  function usedNames() {
    var used = {};
    PROMPTS.forEach(function (field) {
      var text = fieldValue(field);
      var match;
      PLACEHOLDER.lastIndex = 0;
      while ((match = PLACEHOLDER.exec(text)) !== null) used[match[1]] = true;
    });
    return used;
  }

  function clientErrors(list) {
    var counts = {};
    list.forEach(function (v) { counts[v.name] = (counts[v.name] || 0) + 1; });
    return list.map(function (v) {
      var errs = {};
      function add(key, message) { (errs[key] = errs[key] || []).push(message); }
      if (!v.name) add("name", "A name is needed.");
      else if (!NAME.test(v.name)) add("name", "Letters, digits and underscores, not starting with a digit.");
      else if (counts[v.name] > 1) add("name", "'" + v.name + "' is declared twice.");
      var kind = v.type || "text";
      if (kind === "number" && typeof v.min === "number" && typeof v.max === "number" && v.min > v.max) {
        add("min", "The minimum (" + v.min + ") is above the maximum (" + v.max + ").");
      }
      if (kind === "choice" && !(Array.isArray(v.choices) && v.choices.length)) add("choices", "Give at least one choice.");
      if (kind !== "number" && v.max_length !== undefined && !(Number.isInteger(v.max_length) && v.max_length >= 1)) {
        add("max_length", "A whole number, at least 1.");
      }
      return errs;
    });
  }

  function showRowMessages(list) {
    var used = usedNames();
    var extra = fieldValue("length_variable").trim();
    var checks = null;
    try { checks = JSON.parse(fieldValue("checks") || "{}"); } catch (e) { checks = null; }
    var source = checks && typeof checks.source === "string" ? checks.source : "";
    var own = clientErrors(list);
    rows.forEach(function (row, index) {
      label(row, index);
      var errs = {};
      [own[index], serverRows[String(index)] || {}].forEach(function (set) {
        Object.keys(set).forEach(function (key) {
          set[key].forEach(function (m) {
            errs[key] = errs[key] || [];
            if (errs[key].indexOf(m) < 0) errs[key].push(m);
          });
        });
      });
      row.errors.textContent = "";
      Object.keys(row.inputs).forEach(function (key) {
        row.inputs[key].removeAttribute("aria-invalid");
        row.inputs[key].removeAttribute("aria-describedby");
      });
      var keys = Object.keys(errs);
      keys.forEach(function (key) {
        errs[key].forEach(function (message) {
          var prefix = key && row.inputs[key] ? row.inputs[key].getAttribute("data-label") + ": " : "";
          row.errors.appendChild(el("li", {"data-key": key}, prefix + message));
        });
        var target = row.inputs[key] || row.inputs.name;
        target.setAttribute("aria-invalid", "true");
        target.setAttribute("aria-describedby", row.errors.id);
      });
      var name = list[index].name;
      var unused = name && NAME.test(name) && !used[name] && name !== extra && name !== source;
      row.note.hidden = !unused;
      row.note.textContent = unused ? "'" + name + "' is not used in either prompt." : "";
      if (unused) {
        var described = row.inputs.name.getAttribute("aria-describedby");
        row.inputs.name.setAttribute("aria-describedby", (described ? described + " " : "") + row.note.id);
      }
      row.tr.classList.toggle("te-invalid", keys.length > 0);
      row.tr.classList.toggle("te-flagged", !!unused);
      row.msgs.hidden = !keys.length && !unused;
    });
  }

  var offered = null;

  // Rebuilt only when what is missing changes: a prompt's change event (on blur) must not replace the button
  // that the curator is clicking.
  function showSuggestions(list) {
    var declared = {};
    list.forEach(function (v) { declared[v.name] = true; });
    var missing = rowMode ? Object.keys(usedNames()).filter(function (name) { return !declared[name]; }) : [];
    if (missing.join(" ") === offered) return;
    offered = missing.join(" ");
    suggestions.textContent = "";
    if (!missing.length) return;
    suggestions.appendChild(el("span", {}, "Used in the prompts but not declared: "));
    missing.forEach(function (name) {
      var button = el("button", {type: "button", "class": "button te-suggest", "data-name": name}, "Add variable " + name);
      button.addEventListener("click", function () {
        addRow({name: name, type: "text", required: true}, true);
        changed(true);
      });
      suggestions.appendChild(button);
    });
  }

  // --- writing back, and the live panel ---------------------------------------------------------------------
  function changed(edited) {
    var list = variables();
    if (rowMode && edited) {
      area.value = list.length ? JSON.stringify(list, null, 2) : "[]";
    }
    if (rowMode) showRowMessages(list);
    showSuggestions(list);
    buildSamples(list);
    schedule();
  }

  var sampleBox = document.getElementById("te-sample-fields");

  function standIn(v) {
    var kind = v.type || "text";
    if (v["default"] !== undefined && v["default"] !== null && v["default"] !== "") return String(v["default"]);
    if (kind === "choice") return v.required && Array.isArray(v.choices) && v.choices.length ? String(v.choices[0]) : "";
    if (kind === "number") {
      if (!v.required) return "";
      return String(typeof v.min === "number" ? v.min : typeof v.max === "number" ? v.max : 1);
    }
    return v.required ? "[" + v.name + "]" : "";
  }

  function buildSamples(list) {
    if (!sampleBox) return;
    var valid = list.filter(function (v) { return v.name && NAME.test(v.name); });
    var signature = JSON.stringify(valid.map(function (v) {
      return [v.name, v.type, v.choices, v["default"], v.multiline, v.required, v.label];
    }));
    if (signature === sampleSignature) return;
    sampleSignature = signature;
    sampleBox.textContent = "";
    if (!valid.length) {
      sampleBox.appendChild(el("p", {}, "No variables yet."));
      return;
    }
    var seen = {};
    valid.forEach(function (v) {
      if (seen[v.name]) return;
      seen[v.name] = true;
      var id = "te-sample-" + v.name;
      var wrap = el("div", {"class": "te-sample"});
      wrap.appendChild(el("label", {"for": id}, (v.label || v.name) + (v.required ? " (required)" : "")));
      var kind = v.type || "text";
      var field;
      if (kind === "choice") {
        field = el("select", {id: id});
        if (!v.required) field.appendChild(el("option", {value: ""}, "—"));
        (Array.isArray(v.choices) ? v.choices : []).forEach(function (c) {
          field.appendChild(el("option", {value: String(c)}, String(c)));
        });
      } else if (kind === "number") {
        field = el("input", {id: id, type: "number", step: "any"});
      } else if (v.multiline) {
        field = el("textarea", {id: id, rows: 3});
      } else {
        field = el("input", {id: id, type: "text"});
      }
      field.setAttribute("data-name", v.name);
      field.value = v.name in samples ? samples[v.name] : standIn(v);
      var message = el("span", {"class": "te-sample-error", id: id + "-error", hidden: true});
      field.addEventListener("input", function () {
        samples[v.name] = field.value;
        schedule();
      });
      field.addEventListener("change", function () {
        samples[v.name] = field.value;
        schedule();
      });
      wrap.appendChild(field);
      wrap.appendChild(message);
      sampleBox.appendChild(wrap);
    });
  }

  function sampleInputs() {
    var inputs = {};
    if (!sampleBox) return inputs;
    sampleBox.querySelectorAll("[data-name]").forEach(function (field) {
      inputs[field.getAttribute("data-name")] = field.value;
    });
    return inputs;
  }

  var timer = null;
  var sent = 0;
  var inFlight = null;
  var status = document.getElementById("te-status");
  var promptBox = document.getElementById("te-prompt");
  var errorBox = document.getElementById("te-preview-errors");
  var diffBox = document.getElementById("te-diff");
  var url = panel ? panel.getAttribute("data-preview-url") : null;
  var token = form.querySelector("input[name=csrfmiddlewaretoken]");

  function schedule() {
    if (!url) return;
    clearTimeout(timer);
    timer = setTimeout(check, DEBOUNCE_MS);
  }

  function check() {
    var content = {};
    CONTENT.forEach(function (name) { content[name] = fieldValue(name); });
    var number = ++sent;
    if (inFlight) inFlight.abort();
    inFlight = window.AbortController ? new AbortController() : null;
    panel.setAttribute("aria-busy", "true");
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": token ? token.value : ""},
      body: JSON.stringify({content: content, inputs: sampleInputs()}),
      signal: inFlight ? inFlight.signal : undefined
    }).then(function (response) {
      return response.json().then(function (data) { return {status: response.status, data: data}; });
    }).then(function (result) {
      if (number !== sent) return;  // a later edit's answer is on its way
      panel.removeAttribute("aria-busy");
      show(result.status, result.data || {});
    }).catch(function (error) {
      if (error && error.name === "AbortError") return;
      if (number !== sent) return;
      panel.removeAttribute("aria-busy");
      status.textContent = "The preview could not be updated (" + (error && error.message || "network error") + ").";
    });
  }

  function show(code, data) {
    var errors = data.errors || {};
    serverRows = {};
    errorBox.textContent = "";
    sampleBox.querySelectorAll("[data-name]").forEach(function (field) {
      field.removeAttribute("aria-invalid");
      field.removeAttribute("aria-describedby");
      var message = document.getElementById(field.id + "-error");
      message.hidden = true;
      message.textContent = "";
    });
    Object.keys(errors).forEach(function (key) {
      var parts = key.split(".");
      if (parts[0] === "variables" && /^\d+$/.test(parts[1] || "") && rowMode) {
        var at = serverRows[parts[1]] = serverRows[parts[1]] || {};
        var part = parts.slice(2).join(".");
        at[part] = (at[part] || []).concat(errors[key]);
        return;
      }
      if (parts[0] === "inputs" && parts[1]) {
        var field = document.getElementById("te-sample-" + parts[1]);
        if (field) {
          var message = document.getElementById(field.id + "-error");
          message.textContent = errors[key].join(" ");
          message.hidden = false;
          field.setAttribute("aria-invalid", "true");
          field.setAttribute("aria-describedby", message.id);
        }
        errors[key].forEach(function (m) { errorBox.appendChild(el("li", {}, "Sample " + parts[1] + ": " + m)); });
        return;
      }
      errors[key].forEach(function (m) { errorBox.appendChild(el("li", {}, (key === "__all__" ? "" : key + ": ") + m)); });
    });
    errorBox.hidden = !errorBox.childElementCount;
    if (rowMode) showRowMessages(variables());
    var preview = data.preview;
    if (preview) {
      if (typeof preview.prompt_tokens === "number") {
        status.textContent = preview.prompt_tokens + " prompt tokens + " + preview.max_new_tokens +
          " for the output of a " + preview.context_length + "-token context: " + (preview.fits ? "fits" : "too long");
        status.classList.toggle("te-too-long", !preview.fits);
      } else {
        status.textContent = "No model has published its tokenizer yet: the messages are shown without a token count.";
        status.classList.remove("te-too-long");
      }
      promptBox.textContent = preview.prompt_text || (preview.messages || []).map(function (m) {
        return m.role + ":\n" + m.content;
      }).join("\n\n");
    } else {
      status.textContent = code === 403 ? "Not allowed." : "Fix the errors below to see the preview.";
      status.classList.remove("te-too-long");
    }
    if (diffBox && data.diff) showDiff(data.diff);
  }

  function showDiff(diff) {
    diffBox.textContent = "";
    var changedFields = diff.fields.filter(function (f) { return f.changed; });
    if (!changedFields.length) {
      diffBox.appendChild(el("p", {"class": "te-same"}, "Same as production (v" + diff.against + ")."));
      return;
    }
    changedFields.forEach(function (f) {
      diffBox.appendChild(el("h4", {}, f.field));
      var pre = el("pre", {"class": "diff", "data-field": f.field});
      f.lines.forEach(function (line) {
        var kind = line.charAt(0) === "+" ? "add" : line.charAt(0) === "-" ? "del" : null;
        pre.appendChild(el("span", {"class": kind}, line));
        pre.appendChild(document.createTextNode("\n"));
      });
      diffBox.appendChild(pre);
    });
  }

  // --- modes and events -------------------------------------------------------------------------------------
  function toRows() {
    var list = parseVariables(area.value);
    if (list === null) {
      notice.textContent = "The variables are not a JSON list of objects: fix the JSON to edit them as rows.";
      notice.hidden = false;
      return false;
    }
    notice.hidden = true;
    loadRows(list);
    rowMode = true;
    area.hidden = true;
    tableWrap.hidden = false;
    addButton.hidden = false;
    modeButton.textContent = "Edit as JSON";
    return true;
  }

  function toJson() {
    rowMode = false;
    area.hidden = false;
    tableWrap.hidden = true;
    addButton.hidden = true;
    modeButton.textContent = "Edit as rows";
  }

  tbody.addEventListener("input", function (event) {
    var row = rows.find(function (r) { return r.tr.contains(event.target); });
    if (row && event.target === row.inputs.type) showForType(row);
    changed(true);
  });
  tbody.addEventListener("change", function (event) {
    if (event.target.type === "checkbox" || event.target.tagName === "SELECT") {
      var row = rows.find(function (r) { return r.tr.contains(event.target); });
      if (row) showForType(row);
      changed(true);
    }
  });
  addButton.addEventListener("click", function () {
    addRow({name: "", type: "text"}, true);
    changed(true);
  });
  modeButton.addEventListener("click", function () {
    if (rowMode) toJson();
    else if (toRows()) changed(false);
  });
  area.addEventListener("input", function () { if (!rowMode) changed(false); });
  CONTENT.forEach(function (name) {
    var field = form.elements.namedItem(name);
    if (!field || field === area) return;
    field.addEventListener("input", function () { changed(false); });
    field.addEventListener("change", function () { changed(false); });
  });

  serverRows = readJson("te-variable-errors") || {};
  if (!toRows()) toJson();
  if (panel) {
    panel.hidden = false;
    if (layout) layout.classList.add("te-on");
  }
  changed(false);
})();
