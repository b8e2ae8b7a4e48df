// The campaign form's live part: as fields change, ask the server for the schedule in
// words, the audience's count and sample, and each field's error; show the schedule
// builder's fields for the kind chosen. The server decides everything; this only shows.
(function () {
  "use strict";
  const form = document.getElementById("studio-form");
  if (!form) return;
  const touched = new Set();
  let timer = null;
  let asked = 0;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function showKind() {
    const checked = form.querySelector("input[name=schedule_kind]:checked");
    const kind = checked ? checked.value : "yearly";
    form.querySelectorAll("[data-kind]").forEach(function (node) {
      node.hidden = node.dataset.kind.split(" ").indexOf(kind) < 0;
    });
  }

  function showErrors(errors) {
    form.querySelectorAll(".field-error").forEach(function (node) {
      const name = node.id.replace(/-error$/, "");
      if (!touched.has(name)) return; // a field not yet filled in is not told off
      const message = errors[name];
      node.hidden = !message;
      node.textContent = message || "";
      const input = form.querySelector("[name='" + name + "']");
      if (input) {
        if (message) input.setAttribute("aria-invalid", "true");
        else input.removeAttribute("aria-invalid");
      }
    });
  }

  function showSchedule(schedule) {
    const box = document.getElementById("schedule-words");
    box.replaceChildren();
    if (!schedule) {
      box.append(el("p", "Fix the schedule's fields to see it in words.", "hint"));
      return;
    }
    box.append(el("p", schedule.text, "schedule-text"));
    if (schedule.open) box.append(el("p", schedule.open, "open-occurrence"));
    box.append(el("p", "Next sends on the clinic's clock (" + schedule.zone + "):"));
    const list = el("ol");
    list.id = "next-occurrences";
    schedule.next.forEach(function (when) { list.append(el("li", when)); });
    if (!schedule.next.length) list.append(el("li", "none: the schedule has no date ahead"));
    box.append(list);
  }

  function showAudience(audience) {
    const box = document.getElementById("audience-count");
    box.replaceChildren();
    if (!audience) {
      box.append(el("p", "Fix the audience's fields to count it.", "hint"));
      return;
    }
    const count = el("p");
    count.id = "audience-total";
    count.append(el("span", String(audience.reached), "big"));
    const judged = audience.looked_at < audience.selected
      ? " of the first " + audience.looked_at + " (of " + audience.selected + ") selected patients"
      : " of " + audience.selected + " selected patients";
    count.append(document.createTextNode(judged + " would get a message today"));
    box.append(count);
    if (audience.excluded.length) {
      const table = el("table");
      table.id = "excluded";
      table.append(el("caption", "Left out, and why (patients, by reason on any channel)"));
      audience.excluded.forEach(function (row) {
        const tr = el("tr");
        tr.append(el("td", row.words));
        tr.append(el("td", String(row.patients), "num"));
        table.append(tr);
      });
      box.append(table);
    }
    if (audience.sample_in.length) {
      box.append(el("p", "Some who are in:"));
      const list = el("ul", undefined, "sample");
      list.id = "sample-in";
      audience.sample_in.forEach(function (p) {
        list.append(el("li", p.who + " — " + p.channels.join(", ")));
      });
      box.append(list);
    }
    if (audience.sample_out.length) {
      box.append(el("p", "Some who are left out:"));
      const list = el("ul", undefined, "sample");
      list.id = "sample-out";
      audience.sample_out.forEach(function (p) { list.append(el("li", p.who + " — " + p.why)); });
      box.append(list);
    }
  }

  function check() {
    const mine = ++asked;
    fetch(form.dataset.check, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRFToken": form.querySelector("[name=csrf_token]").value },
      credentials: "same-origin",
    })
      .then(function (reply) { return reply.ok ? reply.json() : null; })
      .then(function (answer) {
        if (!answer || mine !== asked) return; // a newer question is on its way
        showErrors(answer.errors);
        showSchedule(answer.schedule);
        showAudience(answer.audience);
        form.dataset.checked = String(mine);
      })
      .catch(function () { /* the form still saves; the live part waits for the next change */ });
  }

  function changed(event) {
    if (event.target && event.target.name) touched.add(event.target.name);
    if (event.target && event.target.name === "schedule_kind") showKind();
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  showKind();
  check();
})();
