// The Send and Templates editors: channel rows added, moved and removed in place, and a
// "fields-changed" event when the texts' variables may have changed (htmx then reloads the
// variable boxes). Plain script, no build step; without it the forms still post.
(function () {
  "use strict";

  function changed() {
    document.body.dispatchEvent(new CustomEvent("fields-changed"));
  }

  function renumber(list) {
    var rows = list.querySelectorAll("[data-channel-row]");
    for (var i = 0; i < rows.length; i++) {
      var n = String(i + 1);
      var position = rows[i].querySelector("[data-position]");
      if (position) position.textContent = n;
      var labelled = rows[i].querySelectorAll("[id]");
      for (var j = 0; j < labelled.length; j++) {
        var old = labelled[j].id;
        var fresh = old.replace(/-\d+$/, "-" + n);
        if (old === fresh) continue;
        var label = rows[i].querySelector('label[for="' + CSS.escape(old) + '"]');
        labelled[j].id = fresh;
        if (label) label.setAttribute("for", fresh);
      }
      var up = rows[i].querySelector('[data-row-op="up"]');
      var down = rows[i].querySelector('[data-row-op="down"]');
      if (up) up.disabled = i === 0;
      if (down) down.disabled = i === rows.length - 1;
    }
  }

  function showSubject(row) {
    var select = row.querySelector('select[name="channel"]');
    var subject = row.querySelector("[data-subject]");
    if (select && subject) subject.hidden = select.value !== "email";
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-row-op], [data-add-row]");
    if (!button) return;
    var form = button.closest("form");
    var list = form && form.querySelector("[data-channel-rows]");
    if (!list) return;
    if (button.hasAttribute("data-add-row")) {
      var template = form.querySelector("#channel-row-template");
      var row = template.content.firstElementChild.cloneNode(true);
      // The first channel the cascade does not have yet.
      var used = Array.prototype.map.call(list.querySelectorAll('select[name="channel"]'),
        function (s) { return s.value; });
      var select = row.querySelector('select[name="channel"]');
      for (var k = 0; k < select.options.length; k++) {
        if (used.indexOf(select.options[k].value) < 0) { select.selectedIndex = k; break; }
      }
      list.appendChild(row);
      renumber(list);
      showSubject(row);
      select.focus();
      changed();
      return;
    }
    var current = button.closest("[data-channel-row]");
    var op = button.getAttribute("data-row-op");
    if (op === "up" && current.previousElementSibling) {
      list.insertBefore(current, current.previousElementSibling);
    } else if (op === "down" && current.nextElementSibling) {
      list.insertBefore(current.nextElementSibling, current);
    } else if (op === "remove") {
      var next = current.nextElementSibling || current.previousElementSibling;
      current.remove();
      renumber(list);
      var focus = next ? next.querySelector("select") : form.querySelector("[data-add-row]");
      if (focus) focus.focus();
      changed();
      return;
    }
    renumber(list);
    button.focus();
    changed();
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target.hasAttribute || !target.hasAttribute("data-fields-changed")) return;
    var row = target.closest("[data-channel-row]");
    if (row) showSubject(row);
    changed();
  });

  // The variable boxes come back from the server with what was typed when they were asked
  // for; what was typed while the answer was on its way is kept.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var box = event.detail.target;
    if (!box || !box.hasAttribute("data-keep-values")) return;
    var kept = {};
    var inputs = box.querySelectorAll("input[name]");
    for (var i = 0; i < inputs.length; i++) kept[inputs[i].name] = inputs[i].value;
    box.keptValues = kept;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var box = event.detail.target;
    if (!box || !box.keptValues) return;
    var inputs = box.querySelectorAll("input[name]");
    for (var i = 0; i < inputs.length; i++) {
      var value = box.keptValues[inputs[i].name];
      if (value !== undefined && value !== "") inputs[i].value = value;
    }
    box.keptValues = null;
  });

  document.addEventListener("DOMContentLoaded", function () {
    var lists = document.querySelectorAll("[data-channel-rows]");
    for (var i = 0; i < lists.length; i++) renumber(lists[i]);
  });
})();
