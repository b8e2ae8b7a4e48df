// The patient picker on "Preview and test": as you type, ask POST /patients/pick
// (JSON; the query never goes in a URL) and list what it finds; a click previews for
// that patient. Without JavaScript the Find button does the same through the server.
(function () {
  "use strict";
  var input = document.getElementById("q");
  var form = input && input.form;
  if (!form || !form.dataset.pickUrl) { return; }
  var token = form.querySelector("input[name=csrf_token]").value;
  var list = document.createElement("ul");
  list.className = "picked live";
  list.setAttribute("aria-label", "Patients found");
  list.setAttribute("aria-live", "polite");
  form.after(list);
  var timer = null;
  var asked = 0;

  function choose(externalId) {
    var chosen = document.createElement("form");
    chosen.method = "post";
    chosen.action = form.action;
    [["csrf_token", token], ["patient", externalId]].forEach(function (pair) {
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = pair[0];
      field.value = pair[1];
      chosen.appendChild(field);
    });
    document.body.appendChild(chosen);
    chosen.submit();
  }

  function show(patients, query) {
    list.replaceChildren();
    // The live answer replaces the server's, which was for what was typed before.
    document.querySelectorAll(".server-picked").forEach(function (old) { old.hidden = true; });
    if (!patients.length && query) {
      var none = document.createElement("li");
      none.textContent = "No patient's name or external id starts with that.";
      list.appendChild(none);
    }
    patients.forEach(function (p) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = p.name + " · " + p.external_id + (p.state ? " · " + p.state : "");
      button.addEventListener("click", function () { choose(p.external_id); });
      item.appendChild(button);
      list.appendChild(item);
    });
  }

  function ask() {
    var query = input.value.trim();
    var mine = ++asked;
    if (query.length < 2) { show([], ""); return; }
    fetch(form.dataset.pickUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify({ q: query })
    }).then(function (reply) {
      return reply.ok ? reply.json() : { patients: [] };
    }).then(function (answer) {
      if (mine === asked) { show(answer.patients, query); }
    });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(ask, 250);
  });
})();
