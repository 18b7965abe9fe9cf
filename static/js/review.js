// Review page: keyboard shortcuts, the taxonomy combobox, active-time measurement.
// Everything here is an enhancement: the page works as plain forms without it.
(function () {
  "use strict";

  const IDLE_AFTER_MS = 60 * 1000;

  // ---- Active time: counted while the tab is visible and the reviewer did something recently.
  let activeMs = 0;
  let lastTick = Date.now();
  let lastActivity = Date.now();

  function tick() {
    const now = Date.now();
    if (document.visibilityState === "visible" && now - lastActivity < IDLE_AFTER_MS) {
      activeMs += now - lastTick;
    }
    lastTick = now;
    const field = document.querySelector("#review .active-seconds");
    if (field) field.value = String(Math.round(activeMs / 1000));
  }
  ["keydown", "mousemove", "mousedown", "scroll", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () { tick(); lastActivity = Date.now(); }, { passive: true });
  });
  document.addEventListener("visibilitychange", tick);
  setInterval(tick, 1000);

  function resetActiveTime() {
    const review = document.getElementById("review");
    activeMs = review ? Number(review.dataset.activeSeconds || 0) * 1000 : 0;
    lastTick = Date.now();
    lastActivity = Date.now();
  }

  // ---- Taxonomy combobox: built from the plain <select>, which keeps holding the value.
  function enhanceTaxonomy(root) {
    const select = root.querySelector(".taxonomy-select");
    if (!select || select.dataset.enhanced) return;
    select.dataset.enhanced = "1";
    const options = Array.from(select.options).map(function (o) { return { value: o.value, text: o.text }; });
    const listId = select.id + "-list";
    const wrap = document.createElement("div");
    wrap.className = "combobox";
    const input = document.createElement("input");
    input.type = "text";
    input.className = "combobox-input";
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", listId);
    input.setAttribute("aria-label", "Correct the subcategory: type to filter");
    input.placeholder = "Type to filter the subcategories…";
    const list = document.createElement("ul");
    list.id = listId;
    list.className = "combobox-list";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    const chosen = document.createElement("p");
    chosen.className = "combobox-chosen";
    chosen.setAttribute("aria-live", "polite");
    wrap.append(input, list, chosen);
    select.after(wrap);
    select.hidden = true;
    let active = -1;
    let shown = [];

    function describe() {
      const option = select.options[select.selectedIndex];
      chosen.textContent = option && option.value ? "Correction: " + option.text : "";
    }
    function render() {
      const needle = input.value.trim().toLowerCase();
      shown = options.filter(function (o) { return o.value && o.text.toLowerCase().includes(needle); });
      list.replaceChildren();
      shown.forEach(function (o, i) {
        const li = document.createElement("li");
        li.id = listId + "-" + o.value;
        li.setAttribute("role", "option");
        li.textContent = o.text; // text, never HTML
        li.setAttribute("aria-selected", String(i === active));
        li.addEventListener("mousedown", function (event) { event.preventDefault(); choose(i); });
        list.append(li);
      });
      if (active >= 0 && shown[active]) {
        input.setAttribute("aria-activedescendant", listId + "-" + shown[active].value);
        list.children[active].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }
    function open() { list.hidden = false; input.setAttribute("aria-expanded", "true"); render(); }
    function close() { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; }
    function choose(i) {
      if (!shown[i]) return;
      select.value = shown[i].value;
      input.value = "";
      close();
      describe();
    }
    input.addEventListener("input", function () { active = 0; open(); });
    input.addEventListener("focus", open);
    input.addEventListener("blur", close);
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown") { event.preventDefault(); if (list.hidden) open(); active = Math.min(active + 1, shown.length - 1); render(); }
      else if (event.key === "ArrowUp") { event.preventDefault(); active = Math.max(active - 1, 0); render(); }
      else if (event.key === "Enter") { event.preventDefault(); event.stopPropagation(); choose(active < 0 ? 0 : active); input.blur(); }
      else if (event.key === "Escape") { event.preventDefault(); close(); input.blur(); }
    });
    describe();
  }

  // ---- Answer rows: each fieldset.answer-row asks one thing (the verdict, an axis, one
  // response's safety). Its row key (data-row-key) selects it; an option key (data-key) answers
  // the selected row, which then hands on to the next, so a blind review is typed straight
  // through. A key the selected row lacks answers the first row that has it (x: both unsafe).
  let activeRow = 0;
  function answerRows() {
    return Array.from(document.querySelectorAll("#review-form .answer-row"));
  }
  function selectRow(index, focus) {
    const rows = answerRows();
    if (!rows.length) return false;
    activeRow = Math.max(0, Math.min(index, rows.length - 1));
    rows.forEach(function (row, i) { row.classList.toggle("is-active", i === activeRow); });
    const row = rows[activeRow];
    const radio = row.querySelector("input[type=radio]:checked") || row.querySelector("input[type=radio]");
    if (focus && radio) radio.focus();
    return true;
  }
  function answer(key) {
    const rows = answerRows();
    const selector = 'input[type="radio"][data-key="' + CSS.escape(key) + '"]';
    let index = rows[activeRow] && rows[activeRow].querySelector(selector) ? activeRow : -1;
    if (index < 0) index = rows.findIndex(function (row) { return row.querySelector(selector); });
    if (index < 0) return false;
    const radio = rows[index].querySelector(selector);
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    if (index < rows.length - 1) selectRow(index + 1, true);
    else { selectRow(index, false); radio.focus(); }
    return true;
  }
  function selectRowByKey(key) {
    const index = answerRows().findIndex(function (row) { return row.dataset.rowKey === key; });
    return index >= 0 && selectRow(index, true);
  }
  function focusHarm() {
    const rows = answerRows();
    const row = rows[activeRow] && rows[activeRow].querySelector(".harm-select")
      ? rows[activeRow] : rows.find(function (r) { return r.querySelector(".harm-select"); });
    if (!row) return false;
    row.querySelector(".harm-select").focus();
    return true;
  }
  document.addEventListener("change", function (event) {
    const row = event.target instanceof Element ? event.target.closest("#review-form .answer-row") : null;
    if (row) {
      const rows = answerRows();
      activeRow = rows.indexOf(row);
      rows.forEach(function (r) { r.classList.toggle("is-active", r === row); });
    }
  });
  // Esc leaves a harm menu for its row, where the shortcuts work again.
  document.addEventListener("keydown", function (event) {
    const select = event.target;
    if (event.key !== "Escape" || !(select instanceof HTMLSelectElement) || !select.classList.contains("harm-select")) return;
    event.preventDefault();
    const row = select.closest(".answer-row");
    selectRow(answerRows().indexOf(row), true);
  });

  // ---- The safe response a reviewer may write when both responses are unsafe: its area shows
  // while the answers say so (the verdict, or both responses' safety), and is disabled, so not
  // sent, while they do not. Its text is the reviewer's own: it is never read as HTML here.
  function checkedValue(name) {
    const radio = document.querySelector('#review-form input[name="' + name + '"]:checked');
    return radio ? radio.value : "";
  }
  function updateRewrite() {
    const area = document.querySelector("#review-form [data-rewrite]");
    if (!area) return;
    // One-preference campaigns say it with the verdict; two-axis ones (no verdict row) derive
    // "both unsafe" from the two responses' safety, as review_axes.single_preference does.
    const hasVerdict = document.querySelector('#review-form input[name="verdict"]');
    const both = hasVerdict
      ? checkedValue("verdict") === "both_unsafe"
      : ["left_safety", "right_safety"].every(function (name) { const v = checkedValue(name); return v && v !== "safe"; });
    area.hidden = !both;
    area.querySelector("textarea").disabled = !both;
  }
  document.addEventListener("change", function (event) {
    if (event.target instanceof Element && event.target.closest("#review-form")) updateRewrite();
  });
  function focusRewrite() {
    const text = document.querySelector("#review .rewrite-text");
    if (!text || text.disabled || text.closest("[hidden]")) return false;
    text.focus();
    return true;
  }
  // Esc leaves the text for the answer rows; Ctrl+Enter submits the text's form.
  document.addEventListener("keydown", function (event) {
    const text = event.target;
    if (!(text instanceof HTMLTextAreaElement) || !text.classList.contains("rewrite-text")) return;
    if (event.key === "Escape") {
      event.preventDefault();
      text.blur();
      if (!selectRow(activeRow, true)) document.getElementById("review")?.focus();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      tick();
      text.form?.requestSubmit();
    }
  });

  // ---- Shortcuts.
  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) &&
        !["radio", "checkbox"].includes(target.type));
  }
  function clickIn(selector) {
    const element = document.querySelector(selector);
    if (element) { element.click(); return true; }
    return false;
  }
  function submitForm(selector) {
    const form = document.querySelector(selector);
    if (!form) return false;
    tick();
    form.requestSubmit();
    return true;
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const dialog = document.getElementById("shortcuts");
    if (dialog && dialog.open) return; // the dialog handles Esc itself
    if (typing(event.target)) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    let handled = true;
    if (["0", "1", "2", "3", "x", "c"].includes(key)) {
      handled = answer(key);
    } else if (["v", "h", "l", "r"].includes(key)) {
      handled = selectRowByKey(key);
    } else if (key === "k") {
      handled = focusHarm();
    } else if (key === "w") {
      handled = focusRewrite();
    } else if (key === "Enter") {
      handled = submitForm("#review-form");
    } else if (key === "t") {
      const input = document.querySelector("#review .combobox-input");
      if (input) input.focus(); else handled = false;
    } else if (key === "f") {
      const flags = document.querySelector("#review .flags");
      if (flags) { flags.open = true; const first = flags.querySelector("input"); if (first) first.focus(); } else handled = false;
    } else if (key === "b") {
      handled = clickIn("#review .unblur-toggle");
    } else if (key === "z") {
      handled = clickIn("#review .zoom-toggle");
    } else if (key === "s") {
      handled = submitForm("#review .skip-form");
    } else if (key === "u") {
      handled = submitForm("#review .undo-form");
    } else if (key === "?") {
      if (dialog) dialog.showModal(); else handled = false;
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });
  document.addEventListener("click", function (event) {
    const target = event.target instanceof Element ? event.target.closest('[data-action="help"]') : null;
    const dialog = document.getElementById("shortcuts");
    if (target && dialog) dialog.showModal();
  });

  // ---- Each new pair (first load or an htmx swap) starts fresh.
  // An image revealed on the blind step stays revealed after the swap to the confirm step.
  const unblurred = new Set();
  document.addEventListener("change", function (event) {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.classList.contains("unblur-toggle")) return;
    const id = document.getElementById("review")?.dataset.assignment;
    if (box.checked) unblurred.add(id); else unblurred.delete(id);
  });

  let shownKey = "";
  function init() {
    const review = document.getElementById("review");
    if (!review) return;
    const key = review.dataset.assignment + ":" + review.dataset.step;
    if (key === shownKey) return;
    shownKey = key;
    const box = review.querySelector(".unblur-toggle");
    if (box && unblurred.has(review.dataset.assignment)) box.checked = true;
    enhanceTaxonomy(review);
    resetActiveTime();
    selectRow(0, false);
    updateRewrite();
    const first = answerRows()[0];
    const focusable = (first && first.querySelector("input[type=radio]:checked")) || review;
    if (focusable === review) review.setAttribute("tabindex", "-1");
    focusable.focus({ preventScroll: true });
    // The reveal arrives inside a swapped fragment, which screen readers do not announce:
    // a live region outside it repeats it.
    const announce = document.getElementById("review-announce");
    const reveal = review.querySelector(".reveal");
    if (announce) announce.textContent = reveal ? reveal.textContent.replace(/\s+/g, " ").trim() : "";
    review.dataset.ready = "1";
  }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSwap", init);
  document.addEventListener("htmx:afterSettle", init);
})();
